"""The shared ERP contract, run against the mock ERP connector and its sandbox."""

from __future__ import annotations

import httpx
import pytest

from connectors.mock_erp.client import MockErpConnector
from tests.connectors.erp_contract import ErpContract, contract_stock


@pytest.fixture
async def erp_sandbox(client: httpx.AsyncClient) -> httpx.AsyncClient:
    rows = [{"sku": sku, "on_hand": units} for sku, units in contract_stock().items()]
    response = await client.post("/_sandbox/stock", json=rows)
    assert response.status_code == 200
    return client


@pytest.fixture
def contract_erp(connect, erp_sandbox: httpx.AsyncClient) -> MockErpConnector:
    connector: MockErpConnector = connect(page_size=100)
    return connector


class TestMockErpContract(ErpContract):
    @pytest.fixture
    def erp(self, contract_erp: MockErpConnector) -> MockErpConnector:
        return contract_erp
