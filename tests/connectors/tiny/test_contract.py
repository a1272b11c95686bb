"""The ERP contract (connectors/base.py) held by the Tiny connector against its sandbox, beyond the
shared suite (test_shared_contract.py): paging, the change feed's overlap, deposits, reservations,
restarts with and without syncd's records, two polls at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.base import MemoryErpRecordStore, Movement, StockRecord
from syncd.errors import ConnectorError
from tests.connectors.tiny.conftest import Connect
from tests.connectors.tiny.support import FakeTime, handle, relay


def sale(key: str, sku: str, units: int = 1) -> Movement:
    return Movement(key=key, sku=sku, delta=-units, reason="sale", reference=key.rsplit(":", 1)[0])


def cancel(key: str, sku: str, units: int = 1) -> Movement:
    return Movement(f"{key}:cancel", sku, units, "cancellation", key.rsplit(":", 1)[0])


async def seed(hooks: httpx.AsyncClient, items: dict[str, int], **extra: object) -> None:
    body = {"items": [{"sku": s, "quantity": q} for s, q in items.items()], **extra}
    assert (await hooks.post("/_sandbox/seed", json=body)).status_code == 201


async def on_hand(hooks: httpx.AsyncClient) -> dict[str, float]:
    return {row["sku"]: row["on_hand"] for row in (await hooks.get("/_sandbox/stock")).json()}


async def test_read_stock_follows_every_page(erp, hooks) -> None:
    """read_stock returns every SKU of a catalogue longer than two pages of 100."""
    await seed(hooks, {f"CT-{n:04d}": n % 9 for n in range(1, 231)})

    records = await erp.read_stock()

    assert sorted(records, key=lambda r: r.sku) == [StockRecord(f"CT-{n:04d}", n % 9) for n in range(1, 231)]


async def test_read_stock_of_an_empty_account(erp) -> None:
    """An account without products reads as an empty list, not an error."""
    assert await erp.read_stock() == []


async def test_stock_changes_returns_later_changes_only(connect: Connect, hooks, clock: FakeTime) -> None:
    """Passing the cursor back yields the SKUs changed since (not the others), then nothing new."""
    erp = connect(change_overlap="0s")
    await seed(hooks, {f"SKU-{i}": 10 for i in range(12)})
    clock.now += 60
    first = await erp.stock_changes(None)
    assert len(first.records) == 12 and first.cursor is not None
    clock.now += 600
    await hooks.post(
        "/_sandbox/stock", json=[{"sku": "SKU-3", "quantity": 4}, {"sku": "SKU-7", "quantity": 0}]
    )
    clock.now += 60

    second = await erp.stock_changes(first.cursor)
    clock.now += 600
    third = await erp.stock_changes(second.cursor)

    assert sorted(second.records, key=lambda r: r.sku) == [StockRecord("SKU-3", 4), StockRecord("SKU-7", 0)]
    assert third.records == []


async def test_stock_changes_read_again_what_changed_just_before_the_cursor(
    erp, hooks, clock: FakeTime
) -> None:
    """A change stamped within the overlap before the cursor (a late write) is still picked up."""
    await seed(hooks, {"A": 1, "B": 1})
    clock.now += 600
    first = await erp.stock_changes(None)
    await hooks.post("/_sandbox/stock", json={"sku": "B", "quantity": 6})  # same second as the read
    clock.now += 3600

    assert (await erp.stock_changes(first.cursor)).records == [StockRecord("B", 6)]


async def test_a_recorded_sale_lowers_on_hand(erp, hooks, clock: FakeTime) -> None:
    """A sale recorded as a Tiny order lowers the on-hand read back, and shows in the change feed."""
    await seed(hooks, {"A": 5, "B": 5})
    clock.now += 600
    page = await erp.stock_changes(None)
    clock.now += 600

    assert await erp.record_movements([sale("shop:1:1", "B", 2)]) == ["shop:1:1"]

    assert (await erp.stock_changes(page.cursor)).records == [StockRecord("B", 3)]


async def test_a_movement_recorded_twice_applies_once(erp, hooks, app) -> None:
    """Sending the same movement key again is acknowledged but makes no second order."""
    await seed(hooks, {"A": 10})
    movement = sale("shop:100:1", "A", 3)

    assert await erp.record_movements([movement]) == ["shop:100:1"]
    assert await erp.record_movements([movement]) == ["shop:100:1"]

    assert (await on_hand(hooks))["A"] == 7
    assert len(handle(app).account.orders) == 1


async def test_a_duplicate_key_in_one_batch_applies_once(erp, hooks, app) -> None:
    """Two movements with the same key in one call count once."""
    await seed(hooks, {"A": 10})

    acknowledged = await erp.record_movements([sale("shop:1:1", "A", 2), sale("shop:1:1", "A", 2)])

    assert acknowledged == ["shop:1:1", "shop:1:1"]
    assert (await on_hand(hooks))["A"] == 8


async def test_an_unknown_sku_is_refused_and_the_rest_go_on(erp, hooks) -> None:
    """A movement for a SKU Tiny does not have is left out; the batch's others are recorded."""
    await seed(hooks, {"A": 10})

    acknowledged = await erp.record_movements([sale("shop:1:1", "NOPE"), sale("shop:1:2", "A")])

    assert acknowledged == ["shop:1:2"]
    assert (await on_hand(hooks))["A"] == 9


async def test_a_cancellation_reverses_the_sale_once(erp, hooks, app) -> None:
    """Cancelling a recorded sale gives its units back; a second cancellation changes nothing."""
    await seed(hooks, {"A": 10})
    await erp.record_movements([sale("shop:7:1", "A", 4)])

    assert await erp.record_movements([cancel("shop:7:1", "A", 4)]) == ["shop:7:1:cancel"]
    assert await erp.record_movements([cancel("shop:7:1", "A", 4)]) == ["shop:7:1:cancel"]

    assert (await on_hand(hooks))["A"] == 10
    assert [o.situacao for o in handle(app).account.orders.values()] == [2]


async def test_a_restart_does_not_record_a_sale_again(connect: Connect, hooks, app) -> None:
    """A new connector on the same records acknowledges a posted sale without a second order."""
    await seed(hooks, {"A": 10})
    await connect().record_movements([sale("shop:9:1", "A")])

    assert await connect().record_movements([sale("shop:9:1", "A")]) == ["shop:9:1"]
    assert len(handle(app).account.orders) == 1


async def test_a_lost_ledger_still_finds_the_order_in_tiny(connect: Connect, hooks, app) -> None:
    """Even without syncd's record, the look-up before sending finds the order: no second one."""
    await seed(hooks, {"A": 10})
    await connect().record_movements([sale("shop:9:1", "A")])

    again = connect(records=MemoryErpRecordStore())

    assert await again.record_movements([sale("shop:9:1", "A")]) == ["shop:9:1"]
    assert len(handle(app).account.orders) == 1


@pytest.mark.parametrize(
    ("deposits", "expected"),
    [(None, 7), ([1], 5), ([2], 2), ([3], 40), ([1, 3], 45)],
)
async def test_on_hand_sums_the_configured_deposits(connect: Connect, hooks, deposits, expected) -> None:
    """On-hand is the sum over the configured deposits; by default those Tiny does not set aside."""
    await seed(
        hooks,
        {},
        deposits=[{"id": 2, "nome": "Loja"}, {"id": 3, "nome": "Avariados", "desconsiderar": True}],
    )
    for deposit, quantity in ((1, 5), (2, 2), (3, 40)):
        await hooks.post("/_sandbox/stock", json={"sku": "A", "quantity": quantity, "deposit": deposit})

    assert await connect(deposits=deposits).read_stock() == [StockRecord("A", expected)]


async def test_a_deposit_the_account_lacks_is_named_with_the_ones_it_has(connect: Connect, hooks) -> None:
    """A configured deposit id Tiny does not list stops the read with a clear error, not 0 units."""
    await seed(hooks, {"A": 5}, deposits=[{"id": 2, "nome": "Loja"}])

    with pytest.raises(
        ConnectorError,
        match=r"deposits \[9\] .*not in the Tiny account; its deposits: 1 \(Geral\), 2 \(Loja\)",
    ):
        await connect(deposits=[2, 9]).read_stock()


async def test_units_reserved_by_other_orders_are_not_on_hand(erp, hooks) -> None:
    """An order another channel put into Tiny reserves units: on-hand is what is still available."""
    await seed(hooks, {"A": 10})
    await hooks.post("/_sandbox/orders", json={"sku": "A", "quantity": 3})

    assert await erp.read_stock() == [StockRecord("A", 7)]


async def test_posting_an_orders_stock_leaves_on_hand_unchanged(erp, hooks, app) -> None:
    """When the seller invoices syncd's order (stock posted), on-hand stays where the sale put it."""
    await seed(hooks, {"A": 10})
    await erp.record_movements([sale("shop:1:1", "A", 2)])
    order_id = next(iter(handle(app).account.orders))
    handle(app).account.post_stock(handle(app).account.orders[order_id])

    assert await erp.read_stock() == [StockRecord("A", 8)]
    rows = (await hooks.get("/_sandbox/stock")).json()
    assert (rows[0]["saldo"], rows[0]["reservado"]) == (8, 0)


async def test_two_polls_recording_the_same_sale_at_once_make_one_order(connect: Connect, hooks, app) -> None:
    """The order poll and the ERP poll may offer the same sale at the same moment: one order."""
    await seed(hooks, {"A": 10})
    movement = sale("shop:300:1", "A", 1)

    async def slow_network(request, forward):
        await asyncio.sleep(0.005)  # answers take a while, so the two calls interleave
        return await forward(request)

    erp = connect(transport=relay(app, slow_network))

    results = await asyncio.gather(erp.record_movements([movement]), erp.record_movements([movement]))

    assert results == [["shop:300:1"], ["shop:300:1"]]
    assert len(handle(app).account.orders) == 1
