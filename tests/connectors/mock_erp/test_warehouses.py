"""Warehouses of the mock ERP: on-hand sums the configured ones, sales are taken from them, and a
name the ERP lacks is a clear error. Against the sandbox, and scripted answers for odd ones."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import Movement, StockRecord
from connectors.mock_erp.client import MockErpConnector
from connectors.mock_erp.sandbox import ErpSandbox
from syncd.errors import ConnectorError
from tests.connectors.mock_erp.conftest import Connect, erp_settings, no_sleep


def sale(key: str, sku: str, units: int = 1) -> Movement:
    return Movement(key=key, sku=sku, delta=-units, reason="sale", reference=key.rsplit(":", 1)[0])


@pytest.fixture
async def stocked(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A: 5 in main, 3 in store, 40 in damaged; B: 2 in damaged only."""
    rows = [
        {"sku": "A", "on_hand": 5},
        {"sku": "A", "on_hand": 3, "warehouse": "store"},
        {"sku": "A", "on_hand": 40, "warehouse": "damaged"},
        {"sku": "B", "on_hand": 2, "warehouse": "damaged"},
    ]
    assert (await client.post("/_sandbox/stock", json=rows)).status_code == 200
    return client


async def levels(client: httpx.AsyncClient, sku: str) -> dict[str, int]:
    rows = (await client.get("/_sandbox/stock")).json()
    found: dict[str, int] = next(row for row in rows if row["sku"] == sku)["warehouses"]
    return found


@pytest.mark.parametrize(
    ("warehouses", "expected"),
    [
        (None, [StockRecord("A", 48), StockRecord("B", 2)]),
        (["main", "store"], [StockRecord("A", 8), StockRecord("B", 0)]),
        (["store"], [StockRecord("A", 3), StockRecord("B", 0)]),
    ],
    ids=["all", "two", "one"],
)
async def test_on_hand_sums_the_configured_warehouses(
    stocked: httpx.AsyncClient, connect: Connect, warehouses: list[str] | None, expected: list[StockRecord]
) -> None:
    """On-hand is the sum over the configured warehouses (all when unset); a SKU in none of them reads 0."""
    erp = connect(warehouses=warehouses)

    assert sorted(await erp.read_stock(), key=lambda r: r.sku) == expected
    assert sorted((await erp.stock_changes(None)).records, key=lambda r: r.sku) == expected


async def test_a_sale_is_taken_from_the_counted_warehouses_in_order(
    stocked: httpx.AsyncClient, connect: Connect
) -> None:
    """A sale takes units from the configured warehouses in their order, never from an uncounted one."""
    erp = connect(warehouses=["store", "main"])

    assert await erp.record_movements([sale("shop:1:1", "A", 4)]) == ["shop:1:1"]

    assert await levels(stocked, "A") == {"main": 4, "store": 0, "damaged": 40}
    assert sorted(await erp.read_stock(), key=lambda r: r.sku) == [StockRecord("A", 4), StockRecord("B", 0)]


async def test_a_sale_above_the_counted_units_is_refused(
    stocked: httpx.AsyncClient, connect: Connect
) -> None:
    """Units in an uncounted warehouse do not make a sale possible: it is refused and nothing moves."""
    erp = connect(warehouses=["main", "store"])

    assert await erp.record_movements([sale("shop:1:1", "A", 9), sale("shop:2:1", "B", 1)]) == []
    assert await levels(stocked, "A") == {"main": 5, "store": 3, "damaged": 40}


async def test_a_compensation_goes_back_to_the_first_counted_warehouse(
    stocked: httpx.AsyncClient, connect: Connect
) -> None:
    """A positive movement (a cancelled settled sale) adds to the first configured warehouse."""
    erp = connect(warehouses=["store", "main"])
    back = Movement(key="shop:1:1:undo", sku="A", delta=2, reason="cancellation", reference="shop:1")

    assert await erp.record_movements([back]) == ["shop:1:1:undo"]
    assert await levels(stocked, "A") == {"main": 5, "store": 5, "damaged": 40}


async def test_an_unknown_warehouse_is_a_clear_error(
    stocked: httpx.AsyncClient, connect: Connect, sandbox: ErpSandbox
) -> None:
    """A configured name the ERP lacks fails the first read and write, naming it and the ERP's warehouses."""
    erp = connect(warehouses=["main", "shop-floor"])

    with pytest.raises(
        ConnectorError, match=r"\['shop-floor'\] .*not in the ERP; its warehouses: main, store, damaged"
    ):
        await erp.read_stock()
    with pytest.raises(ConnectorError, match="shop-floor"):
        await erp.record_movements([sale("shop:1:1", "A")])
    assert sandbox.calls["POST /api/v1/movements"] == 0


@pytest.mark.parametrize(
    ("warehouses", "message"),
    [(["main", "main"], "more than once"), ([], "warehouses"), ([""], "warehouses")],
    ids=["twice", "empty", "blank"],
)
def test_bad_warehouse_settings_are_refused(warehouses: list[str], message: str) -> None:
    """Warehouses are non-empty names, each given once."""
    with pytest.raises(ValidationError, match=message):
        erp_settings(warehouses=warehouses)


# ---------------------------------------------------------------------------- scripted answers


def scripted(items: list[dict[str, Any]], **overrides: Any) -> MockErpConnector:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/warehouses":
            return httpx.Response(200, json={"warehouses": [{"name": "main"}, {"name": "store"}]})
        return httpx.Response(200, json={"items": items, "cursor": "9", "next_page_token": None})

    settings = erp_settings(**({"warehouses": ["main", "store"]} | overrides))
    return MockErpConnector(settings, transport=httpx.MockTransport(handle), sleep=no_sleep)


async def test_a_warehouse_missing_from_an_item_holds_none_of_it() -> None:
    """An item that lists only some of the configured warehouses counts 0 for the others."""
    erp = scripted([{"sku": "A", "on_hand": 9, "seq": 1, "warehouses": {"store": 4, "elsewhere": 5}}])

    assert await erp.read_stock() == [StockRecord("A", 4)]
    await erp.aclose()


async def test_an_item_without_its_warehouses_is_quarantined() -> None:
    """With warehouses configured, an item without the per-warehouse units is quarantined, the others kept."""
    erp = scripted(
        [
            {"sku": "A", "on_hand": 9, "seq": 1},
            {"sku": "B", "on_hand": 1, "seq": 2, "warehouses": {"main": 1}},
            {"sku": "C", "on_hand": 1, "seq": 3, "warehouses": {"main": "lots"}},
        ]
    )

    page = await erp.stock_changes(None)

    assert page.records == [StockRecord("B", 1)]
    assert [(q.ref, "warehouses" in q.reason) for q in page.quarantined] == [("A", True), ("C", True)]
    await erp.aclose()
