"""The shared channel contract, run against the WooCommerce connector and its sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.settings import WooCommerceSettings
from tests.connectors.channel_contract import ChannelContract, contract_catalogue
from tests.connectors.support import Spoiler
from tests.connectors.woocommerce.support import no_wait


@pytest.fixture
async def sandbox(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    items = [
        {"sku": item.sku, "quantity": item.quantity} | ({"parent": item.group} if item.group else {})
        for item in contract_catalogue()
    ]
    response = await hooks.post("/_sandbox/seed", json={"items": items})
    assert response.status_code == 201
    return hooks


@pytest.fixture
def channel(woo: WooCommerceConnector, sandbox: httpx.AsyncClient) -> WooCommerceConnector:
    return woo


def spoil(body: Any, orders: set[str]) -> None:
    """A line quantity of "oops" in the named orders of an orders list."""
    for order in body if isinstance(body, list) else []:
        if isinstance(order, dict) and str(order.get("id")) in orders and "line_items" in order:
            order["line_items"][0]["quantity"] = "oops"


@pytest.fixture
async def spoiled(
    woo_app: Starlette, make_settings: Callable[..., WooCommerceSettings]
) -> AsyncIterator[tuple[WooCommerceConnector, Spoiler]]:
    spoiler = Spoiler(httpx.ASGITransport(woo_app), spoil)
    connector = WooCommerceConnector(make_settings(), transport=spoiler, sleep=no_wait)
    yield connector, spoiler
    await connector.aclose()


class TestWooCommerceContract(ChannelContract):
    unknown_ref = "p:999999"
