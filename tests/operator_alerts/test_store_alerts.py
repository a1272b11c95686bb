"""The ledger's side of alerts: alert rows, delivery marks, recent sales, drift counts, latest run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import OrderLine
from syncd.core import Drift, DriftCause
from syncd.store import Store
from syncd.store.store import AlertRow

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_alert_rows_round_trip_and_drop(store: Store) -> None:
    """Saved alert rows come back as written (times aware), replace by key, and dropped keys go."""
    a = AlertRow("a", "kind", "text a", NOW, None, "open", 0)
    b = AlertRow("b", "kind", "text b", NOW, NOW + timedelta(minutes=1), "", 2)
    store.save_alerts([a, b])
    assert store.alerts() == [a, b]
    store.save_alerts([AlertRow("a", "kind", "text a", NOW, NOW, "resolved", 0)], drop=["b"])
    assert store.alerts() == [AlertRow("a", "kind", "text a", NOW, NOW, "resolved", 0)]


def test_a_delivery_mark_only_clears_the_message_it_delivered(store: Store) -> None:
    """Marking an open message delivered leaves a resolved message owed since then untouched."""
    store.save_alerts([AlertRow("a", "kind", "t", NOW, NOW, "resolved", 0)])
    store.alert_sent("a", "open", delivered=True)
    assert store.alerts()[0].unsent == "resolved"
    store.alert_sent("a", "resolved", delivered=False)
    assert store.alerts()[0].attempts == 1
    store.alert_sent("a", "resolved", delivered=True)
    assert store.alerts()[0].unsent == ""


def test_recent_sales_leave_out_cancelled_and_older_lines(store: Store) -> None:
    """Sold units per listing count lines recorded in the window and not cancelled."""

    def line(order: str, quantity: int, status: str = "open") -> OrderLine:
        return OrderLine("shop", order, "1", "MUG-1", quantity, status, NOW)  # type: ignore[arg-type]

    store.ingest_lines([line("old", 7)], NOW - timedelta(hours=2))
    store.ingest_lines([line("a", 2), line("b", 3)], NOW - timedelta(minutes=10))
    store.ingest_lines([line("b", 3, "cancelled")], NOW - timedelta(minutes=5))
    assert store.sold_since(NOW - timedelta(hours=1)) == {("shop", "MUG-1"): 2}


def test_drift_counts_and_the_latest_run(store: Store) -> None:
    """Drift is counted per listing from a time on; the latest run of a kind is found, finished or not."""
    drift = Drift("shop", "MUG-1", 5, 3, DriftCause.MANUAL_EDIT)
    store.record_drift([drift], {}, NOW - timedelta(hours=2))
    store.record_drift([drift, drift], {}, NOW)
    assert store.drift_counts_since(NOW - timedelta(hours=1)) == {("shop", "MUG-1"): 2}
    assert store.latest_run("reconcile") is None
    first = store.start_run("reconcile", NOW - timedelta(minutes=10))
    store.finish_run(first, NOW - timedelta(minutes=9), {"pushes": 1})
    store.start_run("orders", NOW)
    second = store.start_run("reconcile", NOW - timedelta(minutes=2))
    latest = store.latest_run("reconcile")
    assert latest is not None and (latest.id, latest.finished_at) == (second, None)
