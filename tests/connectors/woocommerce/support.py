"""Constants and helpers shared by the WooCommerce tests (fixtures live in conftest.py)."""

from __future__ import annotations

BASE_URL = "http://woo.test"
KEY = "ck_0123456789abcdef"
SECRET = "cs_fedcba9876543210"
WEBHOOK_SECRET = "whsec-sandbox"


async def no_wait(_: float) -> None:
    """Retries keep their logic in tests but not their waiting."""
