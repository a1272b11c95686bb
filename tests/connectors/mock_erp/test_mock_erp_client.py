"""MockErpConnector against the mock ERP sandbox, in process (ASGI transport, no sockets)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from connectors.base import Movement, StockRecord
from connectors.mock_erp.sandbox import ErpSandbox
from syncd.errors import AuthError, TransientError


def sale(key: str, sku: str, units: int = 1) -> Movement:
    return Movement(key=key, sku=sku, delta=-units, reason="sale", reference=key.rsplit(":", 1)[0])


async def test_read_stock_follows_every_page(connect, sandbox: ErpSandbox) -> None:
    """read_stock returns every SKU when the ERP needs several pages to list them."""
    sandbox.db.set_stock((f"SKU-{i:03}", i) for i in range(25))
    erp = connect(page_size=10)

    records = await erp.read_stock()

    assert sorted(records, key=lambda r: r.sku) == [StockRecord(f"SKU-{i:03}", i) for i in range(25)]
    assert sandbox.calls["GET /api/v1/stock"] == 3


async def test_read_stock_of_an_empty_erp(erp) -> None:
    """An ERP without SKUs reads as an empty list, not an error."""
    assert await erp.read_stock() == []


async def test_stock_changes_returns_only_later_changes(connect, sandbox: ErpSandbox) -> None:
    """Passing back the cursor yields only SKUs changed since, across pages, then nothing."""
    sandbox.db.set_stock((f"SKU-{i}", 10) for i in range(12))
    erp = connect(page_size=5)

    first = await erp.stock_changes(None)
    assert len(first.records) == 12
    sandbox.db.set_stock([("SKU-3", 4), ("SKU-7", 0)])
    second = await erp.stock_changes(first.cursor)
    third = await erp.stock_changes(second.cursor)

    assert second.records == [StockRecord("SKU-3", 4), StockRecord("SKU-7", 0)]
    assert third.records == []
    assert third.cursor == second.cursor


async def test_stock_changes_include_applied_movements(erp, sandbox: ErpSandbox) -> None:
    """A movement the ERP applies shows up in the change feed with the new on-hand."""
    sandbox.db.set_stock([("A", 5), ("B", 5)])
    page = await erp.stock_changes(None)

    await erp.record_movements([sale("shop:1:1", "B", 2)])

    assert (await erp.stock_changes(page.cursor)).records == [StockRecord("B", 3)]


async def test_movement_recorded_twice_applies_once(erp, sandbox: ErpSandbox) -> None:
    """Sending the same movement key again is acknowledged but changes on-hand only once."""
    sandbox.db.set_stock([("A", 10)])
    movement = sale("shop:100:1", "A", 3)

    assert await erp.record_movements([movement]) == ["shop:100:1"]
    assert await erp.record_movements([movement]) == ["shop:100:1"]

    assert sandbox.db.stock() == {"A": 7}
    assert [m["key"] for m in sandbox.db.movements()] == ["shop:100:1"]


async def test_duplicate_key_within_one_batch_applies_once(erp, sandbox: ErpSandbox) -> None:
    """Two movements with the same key in one call count once."""
    sandbox.db.set_stock([("A", 10)])

    acknowledged = await erp.record_movements([sale("shop:1:1", "A", 2), sale("shop:1:1", "A", 2)])

    assert acknowledged == ["shop:1:1", "shop:1:1"]
    assert sandbox.db.stock() == {"A": 8}


async def test_unknown_sku_is_left_out_and_logged(erp, sandbox: ErpSandbox) -> None:
    """A movement for a SKU the ERP lacks is not acknowledged and is logged; the others apply."""
    sandbox.db.set_stock([("A", 10)])

    with capture_logs() as logs:
        acknowledged = await erp.record_movements([sale("shop:1:1", "GHOST"), sale("shop:1:2", "A")])

    assert acknowledged == ["shop:1:2"]
    assert sandbox.db.stock() == {"A": 9}
    rejected = [e for e in logs if e["event"] == "erp.movement_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["sku"] == "GHOST" and rejected[0]["key"] == "shop:1:1"
    assert "unknown SKU" in rejected[0]["reason"]


async def test_movement_below_zero_is_refused(erp, sandbox: ErpSandbox) -> None:
    """The ERP refuses a sale that would make on-hand negative and keeps its stock."""
    sandbox.db.set_stock([("A", 1)])

    with capture_logs():
        assert await erp.record_movements([sale("shop:1:1", "A", 2)]) == []

    assert sandbox.db.stock() == {"A": 1}


async def test_rejected_key_can_be_sent_again_later(erp, sandbox: ErpSandbox) -> None:
    """A refused key is not remembered, so it applies once the SKU exists."""
    with capture_logs():
        assert await erp.record_movements([sale("shop:1:1", "LATE")]) == []
    sandbox.db.set_stock([("LATE", 4)])

    assert await erp.record_movements([sale("shop:1:1", "LATE")]) == ["shop:1:1"]
    assert sandbox.db.stock() == {"LATE": 3}


async def test_many_movements_are_sent_in_chunks(erp, sandbox: ErpSandbox) -> None:
    """More movements than one request may carry are split, and all are acknowledged."""
    sandbox.db.set_stock([("A", 5000)])
    movements = [sale(f"shop:{i}:1", "A") for i in range(1200)]

    acknowledged = await erp.record_movements(movements)

    assert acknowledged == [m.key for m in movements]
    assert sandbox.calls["POST /api/v1/movements"] == 3
    assert sandbox.db.stock() == {"A": 3800}


async def test_no_movements_makes_no_call(erp, sandbox: ErpSandbox) -> None:
    """Recording nothing returns nothing without a request."""
    assert await erp.record_movements([]) == []
    assert sandbox.calls["total"] == 0


async def test_imported_orders_reports_only_what_the_erp_imported(erp, sandbox: ErpSandbox) -> None:
    """Of the refs asked, only those marked imported come back; none by default."""
    refs = [f"shop:{i}" for i in range(150)]
    assert await erp.imported_orders(refs) == set()

    sandbox.db.mark_imported(["shop:3", "shop:120", "other:9"])

    assert await erp.imported_orders(refs) == {"shop:3", "shop:120"}
    assert await erp.imported_orders([]) == set()


async def test_wrong_api_key_is_an_auth_error(connect, sandbox: ErpSandbox) -> None:
    """A refused API key raises AuthError, is not retried, and the key is not in the message."""
    erp = connect(api_key="not-the-key-9d2c")

    with pytest.raises(AuthError) as caught:
        await erp.read_stock()

    assert "401" in str(caught.value)
    assert "not-the-key-9d2c" not in str(caught.value)
    assert sandbox.calls["total"] == 1


async def test_server_errors_are_retried_until_success(connect, sandbox: ErpSandbox) -> None:
    """Injected 500s are retried and the call succeeds once the ERP recovers."""
    sandbox.db.set_stock([("A", 2)])
    waits: list[float] = []

    async def recover_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            sandbox.faults.error_rate = 0.0

    erp = connect(sleep=recover_while_waiting, retry_attempts=4)
    sandbox.faults.error_rate = 1.0

    assert await erp.read_stock() == [StockRecord("A", 2)]
    assert len(waits) == 2
    assert sandbox.calls["GET /api/v1/stock"] == 3


async def test_persistent_errors_raise_transient_after_all_attempts(connect, sandbox: ErpSandbox) -> None:
    """An ERP that keeps failing raises TransientError after exactly retry_attempts tries."""
    erp = connect(retry_attempts=3)
    sandbox.faults.error_rate = 1.0

    with pytest.raises(TransientError) as caught:
        await erp.record_movements([sale("shop:1:1", "A")])

    assert "500" in str(caught.value)
    assert sandbox.calls["POST /api/v1/movements"] == 3
