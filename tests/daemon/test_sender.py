"""A channel's sender: which pushes go in which slice, and which need no write at all."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from syncd.core import PlannedPush
from syncd.engine import CycleReport
from syncd.engine.sender import ROUTINE_MAX_WAIT
from syncd.store import PushRow
from tests.daemon.conftest import Shops


async def test_a_listing_already_showing_the_value_to_write_is_not_written(make_shops: Any) -> None:
    """`main` sold both its units and syncd has not heard of it yet; the ERP then drops to 1. The
    read before the write finds `main` at 0, which is what the write would set (the target less
    the sales read): the push is done without a write and 0 becomes the listing's baseline. The
    other channel is still written."""
    shops: Shops = await make_shops({"safety_stock": 0}, {"A": 2})
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
    assert made == {**dict.fromkeys(made, 0), "GET /wp-json/wc/v3/products": 1, "total": 1}  # a read only
    assert await shops.listings("main") == {"A": 0}
    assert await shops.listings("outlet") == {"A": 1}
    assert engine.store.pending_pushes() == []
    [row] = engine.store.listings("main", skus=["A"])
    assert (row.last_pushed, row.sold_since_push) == (0, 0)


def record_slices(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the engine's slice sender with one that records each slice's SKUs and marks its
    pushes sent at once; returns the record."""
    sent: list[list[str]] = []

    async def send(
        name: str, channel: Any, batch: list[PushRow], report: CycleReport, **_: Any
    ) -> list[PushRow]:
        sent.append([p.sku for p in batch])
        engine.store.complete_pushes([p.id for p in batch], engine.clock())
        return []

    monkeypatch.setattr(engine.sender.writer, "send", send)
    return sent


@pytest.mark.parametrize(
    ("routine_age", "slices"),
    [
        (0.0, [["U1"], ["U2"], ["U3"], ["R"]]),  # fresh: urgent slices first
        (ROUTINE_MAX_WAIT + 0.5, [["U1"], ["R"], ["U2"], ["U3"]]),  # waited too long: goes next
    ],
)
async def test_a_routine_push_that_waited_too_long_goes_between_urgent_slices(
    make_shops: Any, monkeypatch: pytest.MonkeyPatch, routine_age: float, slices: list[list[str]]
) -> None:
    """Three zero-outs (urgent, one per slice here) and a routine one-unit decrease queued
    ``routine_age`` seconds before them: once it has waited ROUTINE_MAX_WAIT it is sent after
    the current urgent slice instead of after all of them."""
    shops: Shops = await make_shops({"safety_stock": 0}, {"A": 1})
    engine = shops.engine
    now = engine.clock()
    engine.clock = lambda: now
    monkeypatch.setattr(engine.channels["main"], "max_batch", 1)
    engine.store.enqueue_pushes(
        [PlannedPush("main", "R", 40, 41, "fast-path")], now - timedelta(seconds=routine_age)
    )
    engine.store.enqueue_pushes([PlannedPush("main", f"U{n}", 0, 3, "fast-path") for n in (1, 2, 3)], now)
    sent = record_slices(engine, monkeypatch)
    await engine.sender.flush_channel("main", CycleReport("send"))

    assert sent == slices


@pytest.mark.parametrize(("planned_after_read", "sent"), [(False, []), (True, [["A"]])])
async def test_an_increase_planned_before_a_read_found_unreported_sales_is_planned_again(
    make_shops: Any, monkeypatch: pytest.MonkeyPatch, planned_after_read: bool, sent: list[list[str]]
) -> None:
    """An increase of a low-stock SKU on `outlet` was planned from units `main` was to give back;
    `main`'s read then found one of them sold, unreported. The increase is withdrawn and the SKU
    planned again for `outlet` (with the unit held), instead of offering a unit that is gone. An
    increase planned after that read knew of it and goes out."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 20}, {"A": 1})
    engine = shops.engine
    now = engine.clock()
    engine.clock = lambda: now + timedelta(seconds=5)
    read = now + timedelta(seconds=1)
    engine.planner.unseen.measured("main", "A", 1, baseline=None, read_from=read, read_to=read)
    planned = now + timedelta(seconds=2) if planned_after_read else now
    engine.store.enqueue_pushes([PlannedPush("outlet", "A", 1, 0, "fast-path")], planned)
    batches = record_slices(engine, monkeypatch)
    await engine.sender.flush_channel("outlet", CycleReport("send"))

    assert batches == sent
    assert engine.store.pending_pushes("outlet") == []
    assert engine.sender.stale.get("outlet", set()) == (set() if planned_after_read else {"A"})


async def test_two_slices_of_other_skus_go_out_at_once_and_a_sku_waits_for_its_own(
    make_shops: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel's sender keeps two slices in flight (here one push each), never two of the
    same SKU: a push queued for R1 while R1's slice is out waits for that slice to be answered."""
    shops: Shops = await make_shops({"safety_stock": 0}, {"A": 1})
    engine = shops.engine
    now = engine.clock()
    monkeypatch.setattr(engine.channels["main"], "push_slice", 1)
    engine.store.enqueue_pushes(
        [PlannedPush("main", sku, 40, 41, "fast-path") for sku in ("R1", "R2", "R3")], now
    )
    out: set[str] = set()
    most_out = 0
    events: list[tuple[str, str, int]] = []

    async def send(
        name: str, channel: Any, batch: list[PushRow], report: CycleReport, **_: Any
    ) -> list[PushRow]:
        nonlocal most_out
        [push] = batch
        assert push.sku not in out
        out.add(push.sku)
        most_out = max(most_out, len(out))
        events.append(("start", push.sku, push.target))
        if (push.sku, push.target) == ("R1", 40):
            engine.store.enqueue_pushes([PlannedPush("main", "R1", 39, 40, "fast-path")], now)
            engine.sender.queued()
        await asyncio.sleep(0.01)
        out.discard(push.sku)
        events.append(("end", push.sku, push.target))
        engine.store.complete_pushes([push.id], now)
        return []

    monkeypatch.setattr(engine.sender.writer, "send", send)
    await engine.sender.flush_channel("main", CycleReport("send"))

    assert most_out == 2
    assert events.index(("end", "R1", 40)) < events.index(("start", "R1", 39))
    assert {sku for kind, sku, _ in events if kind == "end"} == {"R1", "R2", "R3"}
    assert engine.store.pending_pushes("main") == []


@pytest.mark.parametrize(
    ("newer", "reads", "shown"),
    [
        (6, 1, 6),  # a newer decrease is written with the read already made
        (12, 2, 12),  # a newer increase is not: it is read and written on its own turn
    ],
)
async def test_a_push_planned_again_while_its_read_was_out_gives_way_to_the_newer_one(
    make_shops: Any, monkeypatch: pytest.MonkeyPatch, newer: int, reads: int, shown: int
) -> None:
    """A push lowering `main` from 10 to 8 is read; before the read comes back, a new plan wants
    ``newer``. The old target is never written. A hot SKU is planned again every debounce, often
    faster than a read comes back, so a newer decrease takes the read over (else the SKU would
    wait read after read); an increase waits for its own turn and the sender's checks."""
    shops: Shops = await make_shops({"safety_stock": 0}, {"A": 10})
    engine = shops.engine
    await engine.reconcile()
    assert await shops.listings("main") == {"A": 10}
    engine.store.enqueue_pushes([PlannedPush("main", "A", 8, 10, "fast-path")], engine.clock())
    engine.sender.queued()
    read = engine.sender.writer._read_before_write
    replanned = False

    async def read_then_plan_again(*args: Any) -> Any:
        nonlocal replanned
        values = await read(*args)
        if not replanned:
            replanned = True
            engine.store.enqueue_pushes([PlannedPush("main", "A", newer, 10, "fast-path")], engine.clock())
            engine.sender.queued()
        return values

    monkeypatch.setattr(engine.sender.writer, "_read_before_write", read_then_plan_again)
    before = (await shops.shops["main"].get("/_sandbox/stats")).json()["calls"]
    await engine.sender.flush_channel("main", CycleReport("send"))
    calls = (await shops.shops["main"].get("/_sandbox/stats")).json()["calls"]

    assert await shops.listings("main") == {"A": shown}
    assert calls["GET /wp-json/wc/v3/products"] - before["GET /wp-json/wc/v3/products"] == reads
    assert calls["POST /wp-json/wc/v3/products/batch"] - before["POST /wp-json/wc/v3/products/batch"] == 1
    assert engine.store.pending_pushes("main") == []
