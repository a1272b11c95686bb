"""Units a SKU has likely sold but not yet reported are held back from every channel, and come
back once sales stop arriving."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from connectors.base import OrderLine
from syncd.store import ListingRow, PushRow
from tests.daemon.conftest import Shops
from tests.daemon.test_fast_path import sale_lines


async def test_a_burst_holds_back_its_unreported_units_until_it_stops(make_shops: Any) -> None:
    """10 units reported within the window at 2 s of lag: 10 / 5 s x 2 s = 4 units held back."""
    shops: Shops = await make_shops(
        {"safety_stock": 0, "hold_in_flight": True, "auto_threshold": {"default_latency": "2s"}}, {"A": 50}
    )
    await shops.engine.reconcile()
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 36}  # 50 - 10 reported - 4 likely in flight
    # Sales stopped: after the window nothing is in flight any more and the units return.
    later = shops.engine.clock() + timedelta(seconds=6)
    shops.engine.clock = lambda: later
    await shops.engine.replan_all()
    assert await shops.listings("outlet") == {"A": 40}


async def test_off_counts_only_reported_sales(make_shops: Any) -> None:
    """With hold_in_flight off, a burst lowers the other channel by the reported sales only."""
    shops: Shops = await make_shops({"safety_stock": 0, "hold_in_flight": False}, {"A": 50})
    await shops.engine.reconcile()
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 40}


async def test_a_single_quiet_sale_holds_nothing(make_shops: Any) -> None:
    """One unit in the window at 2 s of lag rounds to 0: normal trade is not held back."""
    shops: Shops = await make_shops(
        {"safety_stock": 0, "hold_in_flight": True, "auto_threshold": {"default_latency": "2s"}}, {"A": 50}
    )
    await shops.engine.reconcile()
    assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 49}


async def test_in_low_stock_mode_units_likely_sold_are_not_handed_out_again(make_shops: Any) -> None:
    """Low-stock mode: `main` sells out its 10 in a burst and a restock brings 4 units, but
    10 / 5 s x 2 s = 4 units are likely sold and not reported yet, so none goes back on sale;
    once the window has passed they do, without a sale to trigger it."""
    shops: Shops = await make_shops(
        {
            "safety_stock": 0,
            "low_stock_threshold": 20,
            "hold_in_flight": True,
            "auto_threshold": {"default_latency": "2s"},
        },
        {"A": 10},
    )
    shops.engine.sold_out.recheck_delay = timedelta(seconds=0.05)
    await shops.engine.reconcile()
    assert await shops.listings("main") == {"A": 10}  # priority 1 takes the whole low stock
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    await shops.erp.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 4}]})
    start = shops.engine.clock()
    await shops.engine.poll_erp()
    await shops.engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 0}
    shops.engine.clock = lambda: start + timedelta(seconds=6)
    await asyncio.sleep(0.2)  # the re-check fires by itself
    await shops.engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 4}


async def test_a_listing_seen_sold_out_is_believed_at_zero_and_refilled(make_shops: Any) -> None:
    """syncd believes `main` still holds 3 units (say, sales it counted as made before its last
    write), but the channel shows 0. The check that follows a burst reads it; a second look once
    any late sale would have been reported still finds it at 0, so it is taken as 0 from the
    first read on and the units go back on sale instead of waiting for the next reconcile."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 20}, {"A": 3})
    engine = shops.engine
    await engine.reconcile()
    assert await shops.listings("main") == {"A": 3}
    await shops.shops["main"].post("/_sandbox/listings", json={"sku": "A", "quantity": 0})
    start = engine.clock()
    await engine.verify_sold_out({"A"})
    await engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 0}  # first look: its last sales may be on their way
    engine.clock = lambda: start + timedelta(seconds=6)
    await engine.verify_sold_out({"A"})
    await engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 3}
    row = shops.engine.store.listings("main", skus=["A"])[0]
    assert (row.last_pushed, row.sold_since_push) == (3, 0)


async def test_units_in_flight_can_start_low_stock_mode_and_the_split_follows_priority(
    make_shops: Any,
) -> None:
    """22 units, threshold 10: `main` sells 10 in a burst. Reported, 12 are left (above the
    threshold), but 4 more are likely sold, so the SKU is in low-stock mode; the split is still
    a split of what is reported, by priority: `main` (priority 1) keeps its 12, `outlet` gets 0."""
    shops: Shops = await make_shops(
        {
            "safety_stock": 0,
            "low_stock_threshold": 10,
            "hold_in_flight": True,
            "auto_threshold": {"default_latency": "2s"},
        },
        {"A": 22},
    )
    await shops.engine.reconcile()
    assert await shops.listings("main") == {"A": 22} and await shops.listings("outlet") == {"A": 22}
    await asyncio.sleep(1.1)  # order times are whole seconds: sell after the write's second
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 12}
    assert await shops.listings("outlet") == {"A": 0}


async def test_a_sale_whose_webhook_was_lost_keeps_its_unit_off_sale_until_the_poll_finds_it(
    make_shops: Any,
) -> None:
    """`main` sells all 6 units, but the webhook of the last sale is lost: syncd believes it still
    shows 1. A read finds it at 0; that unit may be the lost sale or a sale counted before a
    write, and only an order poll can tell. The check after the burst polls first: it finds the
    sale, so no unit goes back on sale anywhere (without the poll, the unit would be offered
    again and sold twice)."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 20}, {"A": 6})
    engine = shops.engine
    await engine.reconcile()
    assert await shops.listings("main") == {"A": 6} and await shops.listings("outlet") == {"A": 0}
    await asyncio.sleep(1.1)  # order times are whole seconds: sell after the write's second
    for _ in range(6):
        assert (await shops.buy("main", "A")).status_code == 201
    lines = sorted(await sale_lines(shops, "main"), key=lambda line: line.order_id)
    engine.touch(engine.ingest(lines[:5]).touched_skus)  # the sixth webhook never comes
    await engine.drain_fast_path()
    row = engine.store.listings("main", skus=["A"])[0]
    assert (row.last_pushed, row.sold_since_push) == (6, 5)
    start = engine.clock()
    await engine.verify_sold_out({"A"})
    await engine.drain_fast_path()
    engine.clock = lambda: start + timedelta(seconds=6)
    await engine.verify_sold_out({"A"})
    await engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 0} and await shops.listings("outlet") == {"A": 0}
    assert engine.store.reserved_by_sku(["A"]) == {"A": 6}


async def test_a_queued_increase_is_decided_again_when_its_units_turn_out_sold(make_shops: Any) -> None:
    """`main` sold out and an increase to 5 is queued for it from 5 free units. Before it is
    sent, a read shows 5 units sold that no report has explained yet: the increase is not the
    channel's yet, so the plan takes it back (its target is 0) instead of keeping it as if the
    channel already showed it."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 20}, {"A": 5})
    engine = shops.engine
    now = engine.clock()
    believed = {("main", "A"): 0, ("outlet", "A"): 0}
    queued = {("main", "A"): 5}
    plan = engine.planner.plan({"A": 5}, {}, believed, "fast-path", queued)
    assert plan.low_stock[0].targets == {"main": 5, "outlet": 0}  # nothing held: it stands
    engine.unseen.measured("outlet", "A", 5, baseline=None, read_from=now, read_to=now)
    plan = engine.planner.plan({"A": 5}, {}, believed, "fast-path", queued)
    assert plan.low_stock[0].targets == {"main": 0, "outlet": 0}
    assert [(p.channel, p.target) for p in plan.pushes] == [("main", 0)]


@pytest.mark.parametrize(
    ("shown", "target", "read_seconds", "reported", "spare"),
    [
        (90, 30, 0.1, 0, 1),  # 10 sold in 10 s: 0.1 expected in the 100 ms round trip, P(>0) is 9.5%
        (10, 30, 0.1, 0, 4),  # 90 sold in 10 s (9/s): 0.9 expected, 4 cover 99%
        (10, 2, 0.1, 0, 2),  # only what the write would offer is held back
        (10, 30, 0.0, 0, 0),  # no round trip, no race
        (100, 30, 0.1, 0, 0),  # nothing sold since the last write, nor reported lately
        (100, 30, 0.1, 5, 1),  # nothing sold here, but 5 reported in the last 5 s on all channels
        (90, 30, 0.1, 45, 4),  # the higher of the two rates counts (9/s reported)
    ],
)
async def test_urgent_writes_without_compare_and_set_leave_out_the_sales_they_may_forget(
    make_shops: Any, shown: int, target: int, read_seconds: float, reported: int, spare: int
) -> None:
    """A listing set to 100 ten seconds ago is read at ``shown``: it sells at (100 - shown) / 10 a
    second, or the SKU at ``reported`` units over the last 5 s on all channels if that is more,
    so a write after a read taking ``read_seconds`` may forget that many sales."""
    shops: Shops = await make_shops({"safety_stock": 0}, {"A": 100})
    engine = shops.engine
    read_from = engine.clock()
    if reported:
        sold = read_from - timedelta(seconds=2)
        engine.demand.record([OrderLine("outlet", "o1", "1", "A", reported, "open", sold)], sold)
    row = ListingRow("main", "A", "1", 100, read_from - timedelta(seconds=10), 0, None, None, "ok", "")
    push = PushRow(1, "main", "A", target, shown, "fast-path", "pending", 0, read_from, "")  # no unseen
    spares = engine.sender.writer.race_spares(
        [push], {"A": row}, {"A": shown}, read_from, read_from + timedelta(seconds=read_seconds)
    )
    assert spares.get("A", 0) == spare
