"""A channel's sender: which pushes go in which slice, and which need no write at all."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.core import PlannedPush
from syncd.engine.sender import ROUTINE_MAX_WAIT
from tests.daemon.conftest import Shops
from tests.daemon.fakes import Call, FakeChannel, fake_engine


async def test_a_listing_already_showing_the_value_to_write_is_not_written(make_shops: Any) -> None:
    """`main` sold both its units and syncd has not heard of it yet; the ERP then drops to 1. The
    read before the write finds `main` at 0, which is what the write would set (the target less
    the sales read): the push is done without a write and 0 becomes the listing's baseline. The
    two units the read found sold have `main`'s orders polled at once: they are found, and the
    other channel comes down to what is left (1 on hand, 2 sold: 0)."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 0}, {"A": 2})
    engine = shops.engine
    await engine.reconcile()
    assert await shops.listings("main") == {"A": 2}
    assert (await shops.buy("main", "A", 2)).status_code == 201
    await shops.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 1})
    calls_before = (await shops.shops["main"].get("/_sandbox/stats")).json()["calls"]

    await engine.poll_erp()
    await engine.drain_fast_path()

    calls = (await shops.shops["main"].get("/_sandbox/stats")).json()["calls"]
    made = {name: calls[name] - calls_before.get(name, 0) for name in calls}
    # A read and no write, then one order poll.
    expected = {"GET /wp-json/wc/v3/products": 1, "GET /wp-json/wc/v3/orders": 1, "total": 2}
    assert made == {**dict.fromkeys(made, 0), **expected}
    assert await shops.listings("main") == {"A": 0}
    assert await shops.listings("outlet") == {"A": 0}
    assert engine.store.pending_pushes() == []
    [row] = engine.store.listings("main", skus=["A"])
    assert (row.last_pushed, row.sold_since_push) == (0, 0)


@pytest.mark.parametrize(
    ("routine_age", "slices"),
    [
        (0.0, [["U1"], ["U2"], ["U3"], ["R"]]),  # fresh: urgent slices first
        (ROUTINE_MAX_WAIT + 0.5, [["U1"], ["R"], ["U2"], ["U3"]]),  # waited too long: goes next
    ],
)
async def test_a_routine_push_that_waited_too_long_goes_between_urgent_slices(
    tmp_path: Path, routine_age: float, slices: list[list[str]]
) -> None:
    """Three zero-outs (urgent, one per slice here) and a routine one-unit decrease queued
    ``routine_age`` seconds before them: once it has waited ROUTINE_MAX_WAIT it is sent after
    the current urgent slice instead of after all of them."""
    main = FakeChannel("main", {"R": 41, "U1": 3, "U2": 3, "U3": 3}, max_batch=1)
    async with fake_engine(tmp_path, {"safety_stock": 0, "low_stock_threshold": 0}, dict(main.shown), main) as engine:
        await engine.reconcile()  # the listings as they are: nothing to push
        assert main.writes() == []
        now = engine.clock()
        engine.clock = lambda: now
        engine.store.enqueue_pushes(
            [PlannedPush("main", "R", 40, 41, "fast-path")], now - timedelta(seconds=routine_age)
        )
        engine.store.enqueue_pushes([PlannedPush("main", f"U{n}", 0, 3, "fast-path") for n in (1, 2, 3)], now)
        await engine.flush()

        assert main.writes() == slices
        assert main.shown == {"R": 40, "U1": 0, "U2": 0, "U3": 0}


async def test_an_increase_takes_only_free_units_when_it_is_sent(tmp_path: Path) -> None:
    """An increase of a low-stock SKU on `outlet` was planned while `main` held the last unit;
    `main` then sold it (unreported) and a read showed it gone. When the increase is sent it gets
    no grant: the unit is held as sold, not offered again on `outlet`."""
    main, outlet = FakeChannel("main", {"A": 0}), FakeChannel("outlet", {"A": 0})
    stock = {"safety_stock": 0, "low_stock_threshold": 20}
    async with fake_engine(tmp_path, stock, {"A": 1}, main, outlet) as engine:
        await engine.reconcile()
        assert sorted(main.shown.values()) + sorted(outlet.shown.values()) in ([1, 0], [0, 1])
        holder, other = (main, outlet) if main.shown["A"] == 1 else (outlet, main)
        holder.shown["A"] = 0  # sold, its order not reported yet
        await engine.reconcile()  # the read shows it gone: held, not free
        holder.calls.clear()
        other.calls.clear()
        engine.store.enqueue_pushes([PlannedPush(other.name, "A", 1, 0, "fast-path")], engine.clock())
        await engine.flush()

        assert other.shown == {"A": 0}
        assert engine.store.pending_pushes(other.name) == []


async def test_two_slices_of_other_skus_go_out_at_once_and_a_sku_waits_for_its_own(tmp_path: Path) -> None:
    """A channel's sender keeps two slices in flight (here one push each), never two of the
    same SKU: a push queued for R1 while R1's slice is out waits for that slice to be answered."""
    main = FakeChannel("main", {"R1": 41, "R2": 41, "R3": 41}, push_slice=1, delay=0.01)
    async with fake_engine(tmp_path, {"safety_stock": 0, "low_stock_threshold": 0}, dict(main.shown), main) as engine:
        await engine.reconcile()
        main.calls.clear()
        out: set[str] = set()
        most_out = 0
        events: list[tuple[str, str]] = []

        async def watch(call: Call) -> None:
            nonlocal most_out
            [sku] = call.skus
            if call.kind == "read":
                assert sku not in out
                out.add(sku)
                most_out = max(most_out, len(out))
                events.append(("start", sku))
                return
            events.append(("end", sku))
            out.discard(sku)
            if call.quantities == {"R1": 40}:
                # Planned again while R1's slice is out.
                engine.store.enqueue_pushes([PlannedPush("main", "R1", 39, 40, "fast-path")], engine.clock())
                engine.sender.queued()

        main.on_call = watch
        engine.store.enqueue_pushes(
            [PlannedPush("main", sku, 40, 41, "fast-path") for sku in ("R1", "R2", "R3")], engine.clock()
        )
        await engine.flush()

        assert most_out == 2
        r1 = [i for i, event in enumerate(events) if event[1] == "R1"]
        assert [events[i][0] for i in r1] == ["start", "end", "start", "end"]
        assert main.shown == {"R1": 39, "R2": 40, "R3": 40}
        assert engine.store.pending_pushes("main") == []


@pytest.mark.parametrize(
    ("newer", "reads", "shown", "writes"),
    [
        (6, 1, 6, [{"A": 6}]),  # a newer decrease is written with the read already made
        # A newer increase is not: it is read on its own turn and granted what exists (the 10
        # units the channel already shows, so nothing is written).
        (12, 2, 10, []),
    ],
)
async def test_a_push_planned_again_while_its_read_was_out_gives_way_to_the_newer_one(
    tmp_path: Path, newer: int, reads: int, shown: int, writes: list[dict[str, int]]
) -> None:
    """A push lowering `main` from 10 to 8 is read; before the read comes back, a new plan wants
    ``newer``. The old target is never written. A hot SKU is planned again every debounce, often
    faster than a read comes back, so a newer decrease takes the read over (else the SKU would
    wait read after read); an increase waits for its own turn and the sender's checks."""
    main = FakeChannel("main", {"A": 10})
    async with fake_engine(tmp_path, {"safety_stock": 0, "low_stock_threshold": 0}, {"A": 10}, main) as engine:
        await engine.reconcile()
        main.calls.clear()
        replanned = False

        async def plan_again(call: Call) -> None:
            nonlocal replanned
            if call.kind == "read" and not replanned:
                replanned = True
                engine.store.enqueue_pushes([PlannedPush("main", "A", newer, 10, "fast-path")], engine.clock())
                engine.sender.queued()

        main.on_call = plan_again
        engine.store.enqueue_pushes([PlannedPush("main", "A", 8, 10, "fast-path")], engine.clock())
        await engine.flush()

        assert main.shown == {"A": shown}
        assert len(main.reads()) == reads
        assert [c.quantities for c in main.calls if c.kind == "write"] == writes
        assert engine.store.pending_pushes("main") == []
