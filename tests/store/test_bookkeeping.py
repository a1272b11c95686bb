"""Store contract: drift, runs, cursors, webhook dedupe, leases and counts, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.core import Drift, DriftCause
from syncd.errors import StoreError
from syncd.store import DriftRow, Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def test_ping_answers(store: Store) -> None:
    """A reachable, migrated database answers ping without error."""
    store.ping()


def test_drift_is_listed_newest_first_with_corrections(store: Store) -> None:
    """Drift rows keep expected, observed, cause and the correction pushed, newest first."""
    store.record_drift([Drift("shop", "A", 5, 3, DriftCause.MISSED_ORDER)], {("shop", "A"): 3}, T0)
    later = T0 + timedelta(minutes=5)
    store.record_drift(
        [
            Drift("shop", "B", None, 9, DriftCause.UNKNOWN_BASELINE),
            Drift("tiktok", "A", 2, 4, DriftCause.MANUAL_EDIT),
        ],
        {("shop", "A"): 1},
        later,
    )
    assert store.recent_drift(limit=2) == [
        DriftRow(later, "tiktok", "A", 2, 4, "manual_edit", None),
        DriftRow(later, "shop", "B", None, 9, "unknown_baseline", None),
    ]
    assert store.recent_drift()[-1] == DriftRow(T0, "shop", "A", 5, 3, "missed_order", 3)
    assert store.counts()["drift"] == 3


def test_runs_record_counts_and_errors_newest_first(store: Store) -> None:
    """A run keeps its kind, times, counts and error; recent_runs lists the newest first."""
    first = store.start_run("reconcile", T0)
    store.finish_run(first, T0 + timedelta(seconds=3), {"pushed": 4, "drift": 1})
    second = store.start_run("orders", T0 + timedelta(minutes=1))
    store.finish_run(second, T0 + timedelta(minutes=2), {}, error="shop: HTTP 503")
    third = store.start_run("reconcile", T0 + timedelta(minutes=3))
    newest, middle, oldest = store.recent_runs()
    assert (newest.id, newest.finished_at, newest.counts) == (third, None, {})
    assert (middle.kind, middle.error) == ("orders", "shop: HTTP 503")
    assert (oldest.id, oldest.started_at, oldest.finished_at) == (first, T0, T0 + timedelta(seconds=3))
    assert oldest.counts == {"pushed": 4, "drift": 1}
    assert [run.id for run in store.recent_runs(limit=1)] == [third]


def test_cursors_are_saved_and_overwritten(store: Store) -> None:
    """A cursor is None until set, then holds the latest value."""
    assert store.get_cursor("orders:shop") is None
    store.set_cursor("orders:shop", "2025-03-01T12:00:00+00:00")
    store.set_cursor("orders:shop", "2025-03-01T12:05:00+00:00")
    store.set_cursor("erp:stock", "42")
    assert store.get_cursor("orders:shop") == "2025-03-01T12:05:00+00:00"
    assert store.get_cursor("erp:stock") == "42"


def test_webhook_deliveries_are_deduplicated_until_expiry(store: Store) -> None:
    """A delivery key is a duplicate while remembered, and new again once its TTL has passed."""
    assert store.mark_webhook_seen("shop:d-1", T0, TTL) is False
    assert store.mark_webhook_seen("shop:d-1", T0 + timedelta(seconds=29), TTL) is True
    assert store.mark_webhook_seen("shop:d-2", T0 + timedelta(seconds=29), TTL) is False
    assert store.mark_webhook_seen("shop:d-1", T0 + TTL, TTL) is False
    assert store.mark_webhook_seen("shop:d-1", T0 + TTL + timedelta(seconds=1), TTL) is True


def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    """One holder at a time; the holder can renew; another takes over only after expiry."""
    assert store.acquire_lease("shop-1", "replica-a", T0, TTL) is True
    assert store.acquire_lease("shop-1", "replica-b", T0 + timedelta(seconds=10), TTL) is False
    assert store.acquire_lease("shop-1", "replica-a", T0 + timedelta(seconds=20), TTL) is True
    assert store.acquire_lease("shop-1", "replica-b", T0 + timedelta(seconds=40), TTL) is False
    assert store.acquire_lease("shop-2", "replica-b", T0 + timedelta(seconds=40), TTL) is True
    assert store.acquire_lease("shop-1", "replica-b", T0 + timedelta(seconds=50), TTL) is True
    assert store.acquire_lease("shop-1", "replica-a", T0 + timedelta(seconds=55), TTL) is False


def test_counts_cover_every_part_of_the_ledger(store: Store) -> None:
    """counts() reports every ledger size, zero when empty."""
    assert store.counts() == {
        "skus": 0,
        "listings": 0,
        "lines_reserved": 0,
        "lines_posted": 0,
        "lines_settled": 0,
        "lines_released": 0,
        "lines_compensate": 0,
        "pushes_pending": 0,
        "drift": 0,
    }


def test_naive_datetimes_are_refused(store: Store) -> None:
    """A naive timestamp is refused rather than silently taken as some timezone."""
    with pytest.raises(StoreError, match="naive datetime"):
        store.start_run("reconcile", datetime(2025, 3, 1, 12, 0))


def test_malformed_keys_and_states_are_refused(store: Store) -> None:
    """mark_lines and settle_orders refuse keys they cannot parse and states that do not exist."""
    with pytest.raises(ValueError, match="not channel:order_id:line_key"):
        store.mark_lines(["shop:1001"], "posted", T0)
    with pytest.raises(ValueError, match="unknown order line state"):
        store.mark_lines(["shop:1001:1"], "shipped", T0)
    with pytest.raises(ValueError, match="not channel:order_id"):
        store.settle_orders(["1001"], T0)
