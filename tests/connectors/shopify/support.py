"""Constants and helpers shared by the Shopify tests (fixtures live in conftest.py)."""

from __future__ import annotations

BASE_URL = "http://shop.test"
TOKEN = "shpat_0123456789abcdef"
WEBHOOK_SECRET = "shpss-sandbox-secret"


async def no_wait(_: float) -> None:
    """Retries and bucket waits keep their logic in tests but not their waiting."""
