"""The shared channel contract, run against the TikTok Shop connector and its sandbox."""

from __future__ import annotations

import httpx
import pytest

from connectors.tiktok_shop.client import TikTokShopConnector
from tests.connectors.channel_contract import ChannelContract, contract_catalogue


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


class TestTikTokShopContract(ChannelContract):
    unknown_ref = "1729389999999999999:1729399999999999999"
