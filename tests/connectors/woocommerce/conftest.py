"""Fixtures for the WooCommerce tests: a sandbox store, a hook client and a connected connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.sandbox import create_app
from connectors.woocommerce.settings import WooCommerceSettings
from tests.connectors.woocommerce.support import BASE_URL, KEY, SECRET, WEBHOOK_SECRET, no_wait


@pytest.fixture
def make_settings() -> Callable[..., WooCommerceSettings]:
    def make(**overrides: Any) -> WooCommerceSettings:
        values: dict[str, Any] = {
            "type": "woocommerce",
            "name": "webstore",
            "base_url": BASE_URL,
            "consumer_key": KEY,
            "consumer_secret": SECRET,
            "webhook_secret": WEBHOOK_SECRET,
            # Tests make hundreds of calls; the real default would add seconds of waiting.
            "rate_limit": 10_000,
            "burst": 10_000,
        }
        return WooCommerceSettings(**(values | overrides))

    return make


@pytest.fixture
def woo_app() -> Starlette:
    return create_app(consumer_key=KEY, consumer_secret=SECRET, seed=7)


@pytest.fixture
async def hooks(woo_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(woo_app), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def woo(
    woo_app: Starlette, make_settings: Callable[..., WooCommerceSettings]
) -> AsyncIterator[WooCommerceConnector]:
    connector = WooCommerceConnector(make_settings(), transport=httpx.ASGITransport(woo_app), sleep=no_wait)
    yield connector
    await connector.aclose()
