"""Fixtures for the Shopify tests: a sandbox shop, a hook client and a connected connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.shopify.client import ShopifyConnector
from connectors.shopify.sandbox import create_app
from connectors.shopify.settings import ShopifySettings
from tests.connectors.shopify.support import BASE_URL, TOKEN, WEBHOOK_SECRET, no_wait


@pytest.fixture
def make_settings() -> Callable[..., ShopifySettings]:
    def make(**overrides: Any) -> ShopifySettings:
        values: dict[str, Any] = {
            "type": "shopify",
            "name": "shopify",
            "base_url": BASE_URL,
            "access_token": TOKEN,
            "webhook_secret": WEBHOOK_SECRET,
            # Tests make hundreds of calls; the real default would add seconds of waiting.
            "rate_limit": 10_000,
            "burst": 10_000,
        }
        return ShopifySettings(**(values | overrides))

    return make


@pytest.fixture
def shop_app() -> Starlette:
    # A roomy bucket: the contract suite is about behaviour, throttling has its own tests.
    return create_app(access_token=TOKEN, bucket_size=1_000_000, restore_rate=1_000_000, seed=7)


@pytest.fixture
async def hooks(shop_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(shop_app), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def shopify(
    shop_app: Starlette, make_settings: Callable[..., ShopifySettings]
) -> AsyncIterator[ShopifyConnector]:
    connector = ShopifyConnector(make_settings(), transport=httpx.ASGITransport(shop_app), sleep=no_wait)
    yield connector
    await connector.aclose()
