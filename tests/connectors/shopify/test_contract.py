"""The shared channel contract, run against the Shopify connector and its sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.shopify.client import ShopifyConnector
from connectors.shopify.settings import ShopifySettings
from tests.connectors.channel_contract import ChannelContract, contract_catalogue
from tests.connectors.shopify.support import no_wait
from tests.connectors.support import Spoiler


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
def channel(shopify: ShopifyConnector, sandbox: httpx.AsyncClient) -> ShopifyConnector:
    return shopify


def spoil(body: Any, orders: set[str]) -> None:
    """A line quantity of "oops" in the named orders of an Orders answer."""
    data = body.get("data") if isinstance(body, dict) else None
    connection = data.get("orders") if isinstance(data, dict) else None
    for order in connection.get("nodes") or [] if isinstance(connection, dict) else []:
        if isinstance(order, dict) and order.get("legacyResourceId") in orders:
            order["lineItems"]["nodes"][0]["quantity"] = "oops"


@pytest.fixture
async def spoiled(
    shop_app: Starlette, make_settings: Callable[..., ShopifySettings]
) -> AsyncIterator[tuple[ShopifyConnector, Spoiler]]:
    spoiler = Spoiler(httpx.ASGITransport(shop_app), spoil)
    connector = ShopifyConnector(make_settings(), transport=spoiler, sleep=no_wait)
    yield connector, spoiler
    await connector.aclose()


class TestShopifyContract(ChannelContract):
    unknown_ref = "gid://shopify/InventoryItem/999999999"


class TestShopifyContractOlderVersion(ChannelContract):
    """The same contract on 2025-10, where compare-and-set uses compareQuantity."""

    unknown_ref = "gid://shopify/InventoryItem/999999999"

    @pytest.fixture
    async def shopify(
        self, shop_app: Starlette, make_settings: Callable[..., ShopifySettings]
    ) -> AsyncIterator[ShopifyConnector]:
        connector = ShopifyConnector(
            make_settings(api_version="2025-10"), transport=httpx.ASGITransport(shop_app), sleep=no_wait
        )
        yield connector
        await connector.aclose()


SECOND_LOCATION = "gid://shopify/Location/2"


class TestShopifyContractSeveralLocations(ChannelContract):
    """The same contract with two sync locations: every item's units split between them."""

    unknown_ref = "gid://shopify/InventoryItem/999999999"

    @pytest.fixture
    async def sandbox(self, hooks: httpx.AsyncClient) -> httpx.AsyncClient:
        items = [
            {
                "sku": item.sku,
                "quantity": item.quantity // 2,
                "locations": {SECOND_LOCATION: item.quantity - item.quantity // 2},
            }
            | ({"parent": item.group} if item.group else {})
            for item in contract_catalogue()
        ]
        response = await hooks.post("/_sandbox/seed", json={"items": items})
        assert response.status_code == 201
        return hooks

    @pytest.fixture
    async def shopify(
        self, shop_app: Starlette, make_settings: Callable[..., ShopifySettings]
    ) -> AsyncIterator[ShopifyConnector]:
        settings = make_settings(location_ids=["gid://shopify/Location/1", SECOND_LOCATION])
        connector = ShopifyConnector(settings, transport=httpx.ASGITransport(shop_app), sleep=no_wait)
        yield connector
        await connector.aclose()
