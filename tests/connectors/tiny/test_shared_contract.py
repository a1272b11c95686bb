"""The shared ERP contract (tests/connectors/erp_contract.py), run against Tiny and its sandbox."""

from __future__ import annotations

import httpx
import pytest

from tests.connectors.erp_contract import ErpContract, contract_stock


@pytest.fixture
async def erp_sandbox(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    rows = [{"sku": sku, "on_hand": units} for sku, units in contract_stock().items()]
    response = await hooks.post("/_sandbox/stock", json=rows)
    assert response.status_code == 200
    return hooks


class TestTinyContract(ErpContract):
    pass
