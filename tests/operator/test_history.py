"""The history recorder: what it keeps, when it writes, how it prunes, and runs of every cycle kind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Movement, OrderLine, UpdateResult
from syncd.core import PlannedPush
from syncd.history import History, record_run
from syncd.store import IngestResult, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_reads_are_kept_only_when_the_level_changed(ledger: Store, clock: Clock) -> None:
    """A level read again unchanged adds nothing; a change, or a write's new level, is kept."""
    history = History(ledger, clock)
    history.on_hand({"A": 5, "B": 2})
    history.on_hand({"A": 5, "B": 1})
    history.levels("shop", {"A": 4, "B": None})
    history.levels("shop", {"A": 4})
    history.flush()
    kept = [(e.kind, e.sku, e.quantity) for e in ledger.history()]
    assert kept == [("on_hand", "A", 5), ("on_hand", "B", 2), ("on_hand", "B", 1), ("read", "A", 4)]


def test_events_are_written_in_batches_not_one_transaction_each(ledger: Store, clock: Clock) -> None:
    """Nothing reaches the ledger within the first second; the next event after it writes all."""
    history = History(ledger, clock)
    history.on_hand({"A": 1})
    clock.tick(0.5)
    history.on_hand({"A": 2})
    assert ledger.history() == []
    clock.tick(0.6)
    history.on_hand({"A": 3})
    assert [e.quantity for e in ledger.history()] == [1, 2, 3]


def test_push_outcomes_are_recorded_with_what_was_read(ledger: Store, clock: Clock) -> None:
    """Sent, rejected, stale and failed writes each leave a push event; a skipped one none."""
    from syncd.store import PushRow

    def push(i: int, sku: str) -> PushRow:
        return PushRow(i, "shop", sku, 3, 5, "sale", "pending", 0, T0, "")

    history = History(ledger, clock)
    pushes = [push(1, "A"), push(2, "B"), push(3, "C"), push(4, "D")]
    result = UpdateResult(applied={"A": 2}, rejected={"B": "archived product"}, stale=["C"])
    history.wrote("shop", pushes, result, {"A": 4, "B": 5, "C": 5, "D": 3})
    history.wrote("shop", [push(5, "E")], None, None, error="HTTP 503")
    history.flush()
    events = {e.sku: e for e in ledger.history()}
    assert sorted(events) == ["A", "B", "C", "E"]
    assert (events["A"].outcome, events["A"].quantity, events["A"].detail["read"]) == ("sent", 2, 4)
    assert events["B"].outcome == "rejected" and events["B"].detail["error"] == "archived product"
    assert events["C"].outcome == "stale" and events["E"].detail["error"] == "HTTP 503"
    # The write's level is the listing's level now: reading it back is no change.
    history.levels("shop", {"A": 2})
    history.flush()
    assert len(ledger.history()) == 4


def test_orders_refusals_and_decisions(ledger: Store, clock: Clock) -> None:
    """New orders, cancellations, refused sales and decisions keep the figures that explain them."""
    history = History(ledger, clock, safety_for=lambda sku: 1, policies={"shop": {"share": 50}})
    sale = OrderLine("shop", "o1", "1", "A", 2, "open", T0 - timedelta(seconds=3))
    history.orders(IngestResult(new=[sale], released=[sale]))
    history.movements(
        [
            Movement("shop:o1:1", "A", -2, "sale", "shop:o1"),
            Movement("shop:o2:1", "A", -1, "sale", "shop:o2"),
        ],
        acked={"shop:o2:1"},
    )

    @dataclass
    class Split:
        sku: str
        ats: int
        threshold: int
        targets: dict[str, int] = field(default_factory=dict)

    history.decisions(
        [PlannedPush("shop", "A", 2, 6, "fast-path")],
        [Split("A", 4, 10, {"shop": 2, "web": 2})],
        {"A": 7},
        {"A": 2},
        unaccounted={"A": 1},
    )
    history.flush()
    order, cancel, refused, decision = ledger.history()
    assert (order.kind, order.at, order.outcome, order.quantity) == ("order", T0, "o1", 2)
    assert order.detail == {"sold_at": sale.updated_at.isoformat()}
    assert cancel.kind == "cancel"
    assert (refused.kind, refused.channel, refused.quantity, refused.outcome) == (
        "refused",
        "shop",
        2,
        "shop:o1",
    )
    assert decision.quantity == 2 and decision.detail == {
        "reason": "fast-path",
        "from": 6,
        "on_hand": 7,
        "reserved": 2,
        "safety_stock": 1,
        "ats": 4,
        "low_stock": True,
        "threshold": 10,
        "split": {"shop": 2, "web": 2},
        "policy": {"share": 50},
        "events": [],
        "unaccounted": 1,
    }


def test_old_rows_are_pruned_after_the_retention(ledger: Store, clock: Clock) -> None:
    """The first flush, then one an hour at most, deletes rows older than the retention."""
    history = History(ledger, clock, retention=timedelta(days=2))
    history.flush()
    history.on_hand({"A": 1}, at=T0 - timedelta(days=3))
    history.on_hand({"A": 2})
    clock.tick(1800)
    history.flush()  # within the hour since the last prune: nothing pruned yet
    assert len(ledger.history()) == 2
    clock.tick(1800)
    history.flush()
    assert [e.quantity for e in ledger.history()] == [2]


def test_a_failing_ledger_keeps_events_for_later(tmp_path: Path, clock: Clock) -> None:
    """While the ledger fails, flush raises nothing and keeps the events; they are written later."""
    store = Store(f"sqlite:///{tmp_path / 'late.db'}")  # not migrated: no history table yet
    history = History(store, clock)
    history.on_hand({"A": 1})
    history.flush()
    store.migrate()
    history.flush()
    assert [e.quantity for e in store.history()] == [1]
    store.close()


@dataclass
class Report:
    counts: dict[str, int]
    error: str | None = None


async def test_scheduled_cycles_are_recorded_as_runs(ledger: Store, clock: Clock) -> None:
    """An order poll becomes a run with its duration, counts and error; reconcile records itself."""

    async def poll() -> Report:
        clock.tick(2)
        return Report({"order_lines_new": 3, "pushes_planned": 0}, "shop: HTTP 500")

    async def reconcile() -> Report:
        return Report({})

    await record_run(ledger, "orders", poll, clock)
    await record_run(ledger, "reconcile", reconcile, clock)
    (run,) = ledger.recent_runs()
    assert run.kind == "orders" and run.counts == {"order_lines_new": 3, "pushes_planned": 0}
    assert run.finished_at is not None and (run.finished_at - run.started_at) == timedelta(seconds=2)
    assert run.error == "shop: HTTP 500"


async def test_a_crashing_cycle_still_finishes_its_run(ledger: Store, clock: Clock) -> None:
    """A cycle that raises leaves a finished run naming the error, and the error goes on."""

    async def broken() -> Report:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await record_run(ledger, "erp", broken, clock)
    (run,) = ledger.recent_runs()
    assert run.finished_at is not None and run.error == "RuntimeError: boom"


async def test_every_scheduled_cycle_flushes_the_history_after_it(ledger: Store, clock: Clock) -> None:
    """After each scheduled cycle, reconcile included, what was buffered is written, and old rows
    are pruned within the hour even when nothing new happens (a quiet shop)."""
    history = History(ledger, clock, retention=timedelta(days=1))

    async def poll() -> Report:
        history.on_hand({"A": 1})  # buffered: less than a second since the first event
        return Report({})

    async def idle() -> Report:
        return Report({})

    await record_run(ledger, "orders", poll, clock, after=history.flush)
    assert [e.quantity for e in ledger.history()] == [1]
    history.on_hand({"A": 2}, at=T0 - timedelta(days=2))
    await record_run(ledger, "reconcile", idle, clock, after=history.flush)
    assert [e.quantity for e in ledger.history()] == [2, 1]  # written; pruned at most hourly
    clock.tick(3600)
    await record_run(ledger, "erp", idle, clock, after=history.flush)
    assert [e.quantity for e in ledger.history()] == [1]
