"""The ledger's history, report queries and retention, on every store backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import OrderLine
from syncd.core import Drift, DriftCause, PlannedPush
from syncd.store import HistoryEvent, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_history_comes_back_per_sku_oldest_first_with_its_detail(store: Store) -> None:
    """Events are kept per SKU with their detail; a query returns the newest N in time order."""
    store.record_history(
        [HistoryEvent(T0 + timedelta(seconds=i), "A", "shop", "read", i, "", {"n": i}) for i in range(5)]
        + [HistoryEvent(T0, "B", "", "on_hand", 9)]
    )
    events = store.history(sku="A", limit=3)
    assert [e.quantity for e in events] == [2, 3, 4]
    assert events[-1].detail == {"n": 4} and events[-1].channel == "shop"
    assert [e.sku for e in store.history(kinds=["on_hand"])] == ["B"]
    assert store.history(since=T0 + timedelta(seconds=4), sku="A")[0].quantity == 4
    assert store.history_times(T0 + timedelta(seconds=3), ["read"]) == [
        ("read", T0 + timedelta(seconds=3), 3),
        ("read", T0 + timedelta(seconds=4), 4),
    ]


def test_drift_since_filters_by_time_and_sku(store: Store) -> None:
    """drift_since returns only rows at or after the time, of the SKU asked for, newest first."""
    old = Drift("shop", "A", 5, 3, DriftCause.MISSED_ORDER)
    new = Drift("shop", "B", 5, 7, DriftCause.MANUAL_EDIT)
    store.record_drift([old], {}, T0)
    store.record_drift([new], {("shop", "B"): 5}, T0 + timedelta(hours=2))
    assert [d.sku for d in store.drift_since(T0 + timedelta(hours=1))] == ["B"]
    assert [d.sku for d in store.drift_since(T0)] == ["B", "A"]
    assert [d.correction for d in store.drift_since(T0, sku="B")] == [5]


def test_runs_by_kind_keep_rare_kinds_visible(store: Store) -> None:
    """Many order-poll runs do not push the one reconcile out of the newest runs per kind."""
    reconcile = store.start_run("reconcile", T0)
    store.finish_run(reconcile, T0 + timedelta(seconds=3), {"pushes_sent": 2})
    for i in range(12):
        store.start_run("orders", T0 + timedelta(minutes=i + 1))
    runs = store.recent_runs_by_kind(5)
    assert [r.kind for r in runs].count("orders") == 5
    assert [r.kind for r in runs][-1] == "reconcile" and runs[-1].counts == {"pushes_sent": 2}


def test_prune_deletes_old_history_drift_and_finished_runs_only(store: Store) -> None:
    """Rows older than the cut-off go; newer rows and a run still in progress stay."""
    cut = T0 + timedelta(days=1)
    store.record_history([HistoryEvent(T0, "A", "", "on_hand", 1), HistoryEvent(cut, "A", "", "on_hand", 2)])
    store.record_drift([Drift("shop", "A", 5, 3, DriftCause.MISSED_ORDER)], {}, T0)
    store.record_drift([Drift("shop", "A", 5, 4, DriftCause.MISSED_ORDER)], {}, cut)
    done = store.start_run("reconcile", T0)
    store.finish_run(done, T0 + timedelta(seconds=1), {})
    store.start_run("reconcile", T0)  # never finished (a crash): kept, the page shows it
    deleted = store.prune(cut)
    assert deleted == {"history": 1, "drift": 1, "run": 1}
    assert [e.quantity for e in store.history()] == [2]
    assert [d.observed for d in store.drift_since(T0)] == [4]
    assert [r.finished_at for r in store.recent_runs()] == [None]


def test_outbox_and_order_line_queries(store: Store) -> None:
    """Pending and failed pushes are listed together; a SKU's order lines come newest first."""
    store.enqueue_pushes(
        [PlannedPush("shop", "A", 3, 5, "sale"), PlannedPush("shop", "B", 4, 2, "reconcile")], T0
    )
    pending = store.pending_pushes()
    store.fail_push(pending[1].id, "HTTP 500", T0, give_up=True)
    rows = store.pushes_in_states(["pending", "failed"])
    assert [(p.sku, p.state, p.last_error) for p in rows] == [
        ("A", "pending", ""),
        ("B", "failed", "HTTP 500"),
    ]
    lines = [OrderLine("shop", f"o{i}", "1", "A", 1, "open", T0 + timedelta(seconds=i)) for i in range(3)]
    store.ingest_lines(lines, T0)
    assert [x.order_id for x in store.lines_of_sku("A")] == ["o2", "o1", "o0"]
    assert store.lines_of_sku("B") == []


def test_history_is_summed_and_sliced_in_sql_as_in_python(store: Store) -> None:
    """Totals per SKU and kind, and the chart's slices, match counting the same events by hand."""
    offsets = [0, 1, 59, 60, 61, 299, 300, 301, 899, 900]
    events = [
        HistoryEvent(T0 + timedelta(seconds=s), f"S{i % 3}", "shop", ("order", "push", "read")[i % 3], i + 1)
        for i, s in enumerate(offsets)
    ] + [HistoryEvent(T0 - timedelta(seconds=5), "S0", "shop", "order", 100)]  # before the window
    store.record_history(events)
    totals = store.history_totals(T0, ["order", "push"])
    expected: dict[tuple[str, str], int] = {}
    for e in events[:-1]:
        if e.kind in ("order", "push"):
            expected[(e.sku, e.kind)] = expected.get((e.sku, e.kind), 0) + (e.quantity or 0)
    assert totals == expected
    start, size, counts = store.history_buckets(T0, T0 + timedelta(seconds=900), 3, ["order", "push"])
    assert (start, size) == (T0, 300.0)
    by_hand: dict[tuple[str, int], tuple[int, int]] = {}
    for e in events[:-1]:
        if e.kind in ("order", "push"):
            key = (e.kind, min(2, int((e.at - T0).total_seconds() // 300)))
            n, units = by_hand.get(key, (0, 0))
            by_hand[key] = (n + 1, units + (e.quantity or 0))
    assert counts == by_hand


def test_the_chart_window_starts_at_the_first_event(store: Store) -> None:
    """With events only in the window's last minutes, the slices cover those minutes, not hours."""
    store.record_history([HistoryEvent(T0 + timedelta(minutes=170), "A", "shop", "order", 2)])
    start, size, counts = store.history_buckets(T0, T0 + timedelta(hours=3), 10, ["order"])
    assert start == T0 + timedelta(minutes=170) and size == 60.0
    assert counts == {("order", 0): (1, 2)}
