"""The shared channel contract, run against the WooCommerce connector and its sandbox."""

from __future__ import annotations

import httpx
import pytest

from connectors.woocommerce.client import WooCommerceConnector
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
def channel(woo: WooCommerceConnector, sandbox: httpx.AsyncClient) -> WooCommerceConnector:
    return woo


class TestWooCommerceContract(ChannelContract):
    unknown_ref = "p:999999"
