"""Fixtures for the TikTok Shop tests: a sandbox shop, a hook client and a connected connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import MemoryTokenStore
from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.sandbox import create_app
from connectors.tiktok_shop.settings import TikTokShopSettings
from tests.connectors.tiktok_shop.support import (
    ACCESS_TOKEN,
    APP_KEY,
    APP_SECRET,
    BASE_URL,
    REFRESH_TOKEN,
    SHOP_CIPHER,
    no_wait,
)


@pytest.fixture
def make_settings() -> Callable[..., TikTokShopSettings]:
    def make(**overrides: Any) -> TikTokShopSettings:
        values: dict[str, Any] = {
            "type": "tiktok_shop",
            "name": "tiktok",
            "base_url": BASE_URL,
            "auth_base_url": BASE_URL,
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN,
            "refresh_token": REFRESH_TOKEN,
            "shop_cipher": SHOP_CIPHER,
            # Tests make hundreds of calls; the real default would add seconds of waiting.
            "rate_limit": 10_000,
            "burst": 10_000,
            "throttle_wait": "1ms",
        }
        return TikTokShopSettings(**(values | overrides))

    return make


@pytest.fixture
def tts_app() -> Starlette:
    return create_app(
        app_key=APP_KEY,
        app_secret=APP_SECRET,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        shop_cipher=SHOP_CIPHER,
        qps=100_000,
        seed=7,
    )


@pytest.fixture
async def hooks(tts_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(tts_app), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def token_store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
async def tts(
    tts_app: Starlette,
    make_settings: Callable[..., TikTokShopSettings],
    token_store: MemoryTokenStore,
) -> AsyncIterator[TikTokShopConnector]:
    connector = TikTokShopConnector(
        make_settings(), transport=httpx.ASGITransport(tts_app), sleep=no_wait, tokens=token_store
    )
    yield connector
    await connector.aclose()
