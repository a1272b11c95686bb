"""The shared channel contract, run against the TikTok Shop connector and its sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.settings import TikTokShopSettings
from tests.connectors.channel_contract import ChannelContract, contract_catalogue
from tests.connectors.support import Spoiler
from tests.connectors.tiktok_shop.support import no_wait


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
def channel(tts: TikTokShopConnector, sandbox: httpx.AsyncClient) -> TikTokShopConnector:
    return tts


def spoil(body: Any, orders: set[str]) -> None:
    """A line item whose sku_id is a number in the named orders (TikTok line items carry no quantity)."""
    data = body.get("data") if isinstance(body, dict) else None
    for order in (data or {}).get("orders") or [] if isinstance(data, dict) else []:
        if isinstance(order, dict) and order.get("id") in orders and order.get("line_items"):
            order["line_items"][0]["sku_id"] = 42


@pytest.fixture
async def spoiled(
    tts_app: Starlette, make_settings: Callable[..., TikTokShopSettings]
) -> AsyncIterator[tuple[TikTokShopConnector, Spoiler]]:
    spoiler = Spoiler(httpx.ASGITransport(tts_app), spoil)
    connector = TikTokShopConnector(make_settings(), transport=spoiler, sleep=no_wait)
    yield connector, spoiler
    await connector.aclose()


class TestTikTokShopContract(ChannelContract):
    unknown_ref = "1729389999999999999:1729399999999999999"


class TestTikTokShopContractNamedWarehouses(ChannelContract):
    """The same contract with warehouse_ids naming two warehouses each SKU's units are split between."""

    unknown_ref = "1729389999999999999:1729399999999999999"

    @pytest.fixture
    async def sandbox(self, hooks: httpx.AsyncClient) -> httpx.AsyncClient:
        items = [
            {
                "sku": item.sku,
                "warehouses": {"W-A": item.quantity // 2, "W-B": item.quantity - item.quantity // 2},
            }
            | ({"parent": item.group} if item.group else {})
            for item in contract_catalogue()
        ]
        response = await hooks.post("/_sandbox/seed", json={"items": items})
        assert response.status_code == 201
        return hooks

    @pytest.fixture
    async def tts(
        self, tts_app: Starlette, make_settings: Callable[..., TikTokShopSettings]
    ) -> AsyncIterator[TikTokShopConnector]:
        connector = TikTokShopConnector(
            make_settings(warehouse_ids=["W-B", "W-A"]), transport=httpx.ASGITransport(tts_app), sleep=no_wait
        )
        yield connector
        await connector.aclose()
