"""The shared ERP contract, run against the Bling connector and its sandbox (both recording modes)."""

from __future__ import annotations

import httpx
import pytest

from connectors.bling.client import BlingConnector
from tests.connectors.bling.conftest import Connect, authorise
from tests.connectors.erp_contract import ErpContract, contract_stock


@pytest.fixture
async def erp_sandbox(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    rows = [{"sku": sku, "on_hand": units} for sku, units in contract_stock().items()]
    response = await hooks.post("/_sandbox/stock", json=rows)
    assert response.status_code == 200
    return hooks


class TestBlingOrdersContract(ErpContract):
    @pytest.fixture
    async def erp(self, connect: Connect, erp_sandbox: httpx.AsyncClient) -> BlingConnector:
        connector = connect(record_as="order", store_id=55)
        await authorise(connector, erp_sandbox)
        return connector


class TestBlingMovementsContract(ErpContract):
    @pytest.fixture
    async def erp(self, connect: Connect, erp_sandbox: httpx.AsyncClient) -> BlingConnector:
        connector = connect(record_as="movement", deposits=[1])
        await authorise(connector, erp_sandbox)
        return connector
