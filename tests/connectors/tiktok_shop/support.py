"""Constants and helpers shared by the TikTok Shop tests (fixtures live in conftest.py)."""

from __future__ import annotations

BASE_URL = "http://tiktok.test"
APP_KEY = "6a1b2c3d4e5f"
APP_SECRET = "sandbox-app-secret-0123"
ACCESS_TOKEN = "TTP_sandbox-access"
REFRESH_TOKEN = "TTP_sandbox-refresh"
SHOP_CIPHER = "ROW_sandboxCipher"


async def no_wait(_: float) -> None:
    """Retries keep their logic in tests but not their waiting."""
