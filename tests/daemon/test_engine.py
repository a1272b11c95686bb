"""The engine against the mock ERP and WooCommerce sandboxes: reconcile, orders, settlement, drift."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from syncd.core import DriftCause
from tests.daemon.conftest import World

pytestmark = pytest.mark.asyncio


async def test_first_reconcile_sets_every_listing_to_its_target(world: World) -> None:
    """After one reconcile the web store shows on-hand minus safety stock for every SKU."""
    erp = {f"SKU-{i:03d}": i % 17 for i in range(150)}
    await world.seed(erp, {sku: 99 for sku in erp})
    report = await world.engine.reconcile()
    assert report.errors == []
    listings = await world.shop_listings()
    assert listings == {sku: max(0, qty - 1) for sku, qty in erp.items()}
    runs = world.store.recent_runs(1)
    assert runs[0].kind == "reconcile" and runs[0].error is None
    assert runs[0].counts["pushes_sent"] == 150


async def test_second_reconcile_pushes_nothing(world: World) -> None:
    """Planning again right after a reconcile was applied yields no pushes (convergence)."""
    await world.seed({"A": 5, "B": 9}, {"A": 0, "B": 0})
    await world.engine.reconcile()
    again = await world.engine.reconcile()
    assert again.pushes == [] and again.drift == []


async def test_sale_reserves_then_settles_through_the_erp(world: World) -> None:
    """A web-store sale is reserved, posted to the ERP once, and settled after the ERP reflects it."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    assert (await world.purchase("A", 3)).status_code == 201
    await world.engine.poll_orders()
    await world.engine.poll_orders()  # the overlap window re-reads the order: counted once
    assert world.store.reserved_by_sku() == {"A": 3}  # posted lines count until the ERP reflects them
    assert (await world.erp_stock())["A"] == 7
    lines = world.store.lines_in_state("posted")
    assert [(line.sku, line.quantity) for line in lines] == [("A", 3)]
    await world.engine.poll_erp()
    assert world.store.lines_in_state("posted") == []
    assert len(world.store.lines_in_state("settled")) == 1
    assert (await world.shop_listings())["A"] == 6  # 7 on hand - 1 safety


async def test_manual_edit_on_the_channel_is_drift_and_corrected(world: World) -> None:
    """A quantity changed by hand in the shop admin is recorded as drift and set back."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    await world.shop.post("/_sandbox/listings", json={"sku": "A", "quantity": 40})
    report = await world.engine.reconcile()
    assert [(d.sku, d.expected, d.observed, d.cause) for d in report.drift] == [
        ("A", 9, 40, DriftCause.MANUAL_EDIT)
    ]
    assert (await world.shop_listings())["A"] == 9
    recorded = world.store.recent_drift(5)
    assert recorded[0].cause == "manual_edit" and recorded[0].correction == 9


async def test_an_edit_the_next_write_overwrites_is_reported_by_the_read_before_it(world: World) -> None:
    """A quantity raised by hand between reconciles, then overwritten by syncd's next write (the
    ERP's stock changed): the read before that write saw it, and reports it as a manual edit with
    the write as its correction; no reconcile has to catch it."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    await world.shop.post("/_sandbox/listings", json={"sku": "A", "quantity": 40})
    await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 8})
    await world.engine.poll_erp()
    await world.engine.drain_fast_path()
    assert (await world.shop_listings())["A"] == 7
    [recorded] = [d for d in world.store.recent_drift(5) if d.cause != "unknown_baseline"]
    assert (recorded.channel, recorded.sku, recorded.cause) == ("webstore", "A", "manual_edit")
    assert (recorded.expected, recorded.observed, recorded.correction) == (9, 40, 7)


async def test_a_level_no_order_explains_is_a_manual_edit(world: World) -> None:
    """A channel showing fewer units than it could, with no order to explain it, was edited by hand."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    await world.shop.post("/_sandbox/listings", json={"sku": "A", "quantity": 6})
    report = await world.engine.reconcile()
    # Lower than it could be: a missed order or an edit. It waits for a poll covering the read.
    assert report.drift == []
    await world.engine.reconcile()  # no order came: decided as this run begins
    edits = [(d.cause, d.expected, d.observed) for d in world.store.recent_drift(5) if d.cause == "manual_edit"]
    assert edits == [("manual_edit", 9, 6)]


async def test_a_sale_reported_before_the_read_is_no_drift(world: World) -> None:
    """A purchase whose order is in the ledger by the read is what the read shows: no drift."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    assert (await world.shop.post("/_sandbox/purchase", json={"sku": "A", "quantity": 2})).status_code == 201
    report = await world.engine.reconcile()
    assert report.drift == []


async def test_sku_unknown_to_the_erp_is_unmapped_not_zeroed(world: World) -> None:
    """A listing whose SKU the ERP does not know keeps its quantity and is reported unmapped."""
    await world.seed({"A": 4}, {"A": 4, "GHOST": 12})
    await world.engine.reconcile()
    assert (await world.shop_listings())["GHOST"] == 12
    statuses = {row.sku: row.status for row in world.store.listings("webstore")}
    assert statuses == {"A": "ok", "GHOST": "unmapped"}


async def test_malformed_erp_answer_fails_the_cycle_and_leaves_the_ledger(world: World) -> None:
    """A truncated ERP body fails the cycle, is recorded on the run, and changes no on-hand figure."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    before = {sku: row.on_hand for sku, row in world.store.skus().items()}

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"items": [{"sku": "A", "on_hand": 1')

    world.erp_wire.override = httpx.MockTransport(broken)
    await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 0})
    report = await world.engine.reconcile()
    assert report.errors and "erp" in report.errors[0]
    assert {sku: row.on_hand for sku, row in world.store.skus().items()} == before
    run = world.store.recent_runs(1)[0]
    assert run.error and "JSON" in run.error
    assert world.engine.health["erp"].failing


async def test_cancellation_releases_the_reservation(world: World) -> None:
    """A cancelled order's reserved line is released and the channel's restock is not counted twice."""
    await world.seed({"A": 10}, {"A": 10})
    world.engine.erp.record_movements = _never_acknowledge  # type: ignore[method-assign]
    await world.engine.reconcile()
    order = (await world.purchase("A", 2)).json()["order_id"]
    await world.engine.poll_orders()
    assert world.store.reserved_by_sku() == {"A": 2}
    await world.shop.post(f"/_sandbox/orders/{order}/cancel")
    await world.engine.poll_orders()
    assert world.store.reserved_by_sku() == {}
    report = await world.engine.reconcile()
    assert (await world.shop_listings())["A"] == 9
    assert all(d.cause != DriftCause.MANUAL_EDIT for d in report.drift)


async def _never_acknowledge(movements):  # type: ignore[no-untyped-def]
    return []


async def test_channel_down_does_not_stop_the_cycle(world: World) -> None:
    """With the web store failing, the reconcile records the error and still reads the ERP."""
    await world.seed({"A": 10}, {"A": 10})
    await world.shop.post("/_sandbox/faults", json={"error_rate": 1.0})
    report = await world.engine.reconcile()
    assert any("webstore" in e for e in report.errors)
    assert world.store.skus()["A"].on_hand == 10
    assert world.engine.health["webstore"].failing and not world.engine.health["erp"].failing
    reasons = world.engine.readiness(max_age=__import__("datetime").timedelta(minutes=5))
    assert any(r.startswith("webstore") for r in reasons)


async def test_dry_run_changes_nothing(world: World) -> None:
    """A dry-run reconcile reports the plan but leaves the channel, the ERP and the ledger alone."""
    await world.seed({"A": 10, "B": 3}, {"A": 0, "B": 0})
    report = await world.engine.reconcile(dry_run=True)
    assert sorted((p.sku, p.target) for p in report.pushes) == [("A", 9), ("B", 2)]
    assert await world.shop_listings() == {"A": 0, "B": 0}
    assert world.store.skus() == {} and world.store.listings() == [] and world.store.recent_runs() == []


async def test_pending_push_is_not_queued_twice_and_drains_later(world: World) -> None:
    """While the channel is down, pushes wait in the outbox; replanning adds none; they drain on recovery."""
    await world.seed({"A": 10, "B": 4}, {"A": 0, "B": 0})
    await world.engine.reconcile()  # reads the listings while the channel is up
    await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 20})
    await world.shop.post("/_sandbox/faults", json={"error_rate": 1.0})
    first = await world.engine.poll_erp()
    assert [(p.sku, p.target) for p in first.pushes] == [("A", 19)]
    assert [(p.sku, p.target) for p in world.store.pending_pushes("webstore")] == [("A", 19)]
    again = await world.engine.push_skus(["A"])
    assert again.pushes == []
    assert len(world.store.pending_pushes("webstore")) == 1
    await world.shop.post("/_sandbox/faults", json={"error_rate": 0.0})
    await world.engine.flush()
    assert (await world.shop_listings())["A"] == 19
    assert world.store.pending_pushes() == []


async def test_erp_down_from_the_start_marks_nothing_unmapped(world: World) -> None:
    """If the ERP has never answered, listings are not called unmapped and nothing is pushed."""
    await world.seed({"A": 10}, {"A": 10})
    world.erp_wire.override = httpx.MockTransport(lambda request: httpx.Response(503))
    report = await world.engine.reconcile()
    assert report.pushes == [] and any("erp" in e for e in report.errors)
    assert {row.status for row in world.store.listings()} == {"ok"}
    assert (await world.shop_listings()) == {"A": 10}


async def test_sale_the_erp_refuses_is_offered_again_later_not_on_every_flush(world: World) -> None:
    """More sold than the ERP holds: the ERP refuses the movement. The line keeps counting as
    reserved; it is offered again after a back-off rather than on every flush, and once the ERP
    has the stock it is recorded."""
    await world.seed({"A": 1}, {"A": 3})
    engine = world.engine
    start = engine.clock()
    engine.clock = lambda: start
    calls: list[list[str]] = []
    record = engine.erp.record_movements

    async def counting(movements):  # type: ignore[no-untyped-def]
        calls.append([m.key for m in movements])
        return await record(movements)

    engine.erp.record_movements = counting
    assert (await world.purchase("A", 2)).status_code == 201
    await engine.poll_orders()
    assert len(calls) == 1 and world.store.reserved_by_sku() == {"A": 2}
    assert (await world.erp_stock())["A"] == 1  # refused: nothing recorded
    await engine.poll_orders()
    assert len(calls) == 1  # backing off
    await world.erp.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 5}]})
    engine.clock = lambda: start + timedelta(seconds=11)
    await engine.poll_orders()
    assert len(calls) == 2
    assert (await world.erp_stock())["A"] == 3
    assert [line.sku for line in world.store.lines_in_state("posted")] == ["A"]
