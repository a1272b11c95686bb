"""The ledger's record of faults on every backend: quarantined items kept once per item and reason
(however often a poll reads them, atomically with a poll's lines and cursor), resolved and reopened;
runs a dead process left open closed as interrupted, a live one's left alone."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import OrderLine, Quarantined
from syncd.store import Store

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def bad(
    ref: str | None = "1001", reason: str = "line_items[0].quantity must be an integer, got 'oops'"
) -> Quarantined:
    return Quarantined("webstore", "order", ref, reason, '{"id":1001,"line_items":[{"quantity":"oops"}]}')


def line(order: str, sku: str = "A") -> OrderLine:
    return OrderLine("webstore", order, "1", sku, 1, "open", T0)


def test_an_item_read_again_is_kept_once_and_counted(store: Store) -> None:
    """The same order with the same reason, read by three polls, is one row seen three times; the
    same order with another reason, or another order, is a row of its own."""
    assert store.record_quarantined([bad()], T0) == [bad()]
    assert store.record_quarantined([bad()], T0 + timedelta(minutes=1)) == []
    store.record_quarantined([bad()], T0 + timedelta(minutes=2))
    fresh = store.record_quarantined([bad(reason="no 'id'"), bad("1002")], T0 + timedelta(minutes=3))

    assert len(fresh) == 2
    rows = {(r.ref, r.reason[:6]): r for r in store.quarantined()}
    first = rows[("1001", "line_i")]
    assert (first.seen, first.first_seen_at, first.last_seen_at) == (3, T0, T0 + timedelta(minutes=2))
    assert store.quarantine_counts() == {"total": 3, "open": 3}


def test_an_unreadable_item_is_told_apart_by_its_excerpt(store: Store) -> None:
    """Two items without a readable ref are two rows when their excerpts differ, one when they do not."""
    one = Quarantined("webstore", "order", None, "not an object", "[1]")
    other = Quarantined("webstore", "order", None, "not an object", "[2]")
    store.record_quarantined([one, one, other], T0)
    assert store.quarantine_counts()["total"] == 2


def test_resolved_items_leave_the_open_ones_and_come_back_when_read_bad_again(store: Store) -> None:
    """Resolving an order's items (a clean version arrived) closes them; read bad again, it reopens."""
    store.record_quarantined([bad(), bad("1002")], T0)
    assert store.open_quarantine_refs("order") == {("webstore", "1001"), ("webstore", "1002")}

    assert store.resolve_quarantined("order", [("webstore", "1001"), ("other", "1002")], T0) == 1

    assert store.open_quarantine_refs("order") == {("webstore", "1002")}
    assert [r.ref for r in store.quarantined(open_only=True)] == ["1002"]
    assert store.record_quarantined([bad()], T0 + timedelta(hours=1)) == [bad()]
    assert store.quarantine_counts() == {"total": 2, "open": 2}


def test_a_poll_keeps_its_quarantined_orders_with_its_lines_and_cursor(store: Store) -> None:
    """A polled page's lines, cursor and quarantined orders are written together, and the result
    names the items new to the ledger."""
    result = store.ingest_polled([line("1000")], {"orders:webstore": T0.isoformat()}, T0, [bad()])
    again = store.ingest_polled([line("1000")], {"orders:webstore": T0.isoformat()}, T0, [bad()])

    assert (len(result.new), result.quarantined) == (1, [bad()])
    assert (again.duplicates, again.quarantined) == (1, [])
    assert store.get_cursor("orders:webstore") == T0.isoformat()


def test_a_webhook_delivery_sent_twice_keeps_its_quarantined_order_once(store: Store) -> None:
    """A delivery's quarantined order is kept with the delivery; its redelivery is a duplicate."""
    first = store.ingest_delivery([], ["webstore:d1"], T0, timedelta(days=7), [bad()])
    second = store.ingest_delivery([], ["webstore:d1"], T0, timedelta(days=7), [bad()])
    assert first is not None and first.quarantined == [bad()] and second is None
    assert [r.seen for r in store.quarantined()] == [1]


START_RUN = (
    "import sys; from datetime import datetime; from syncd.store import Store; "
    "s = Store(sys.argv[1]); s.start_run('reconcile', datetime.fromisoformat(sys.argv[2])); "
    "print('started', flush=True); sys.stdin.read()"
)


def run_in_another_process(store_url: str, at: datetime) -> subprocess.Popen[str]:
    """A process that starts a run on the ledger and waits (until its stdin closes) without finishing it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", START_RUN, store_url, at.isoformat()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate()


def test_runs_of_a_dead_process_are_closed_as_interrupted(store: Store, store_url: str) -> None:
    """A run whose process is gone (on SQLite: any open run, the ledger's lock keeps other daemons
    out) is closed as interrupted, ending when it started; finished runs are left alone."""
    if store_url.endswith(":memory:"):
        store.start_run("reconcile", T0)  # another process cannot reach an in-memory ledger
    else:
        proc = run_in_another_process(store_url, T0)
        stop(proc)
    done = store.start_run("orders", T0)
    store.finish_run(done, T0 + timedelta(seconds=1), {"n": 1})

    [killed] = store.close_interrupted_runs(T0 + timedelta(hours=1))

    runs = {r.id: r for r in store.recent_runs()}
    assert runs[killed].finished_at == T0 and (runs[killed].error or "").startswith("interrupted:")
    assert runs[done].error is None and runs[done].finished_at == T0 + timedelta(seconds=1)
    assert store.close_interrupted_runs(T0 + timedelta(hours=2)) == []


@pytest.mark.postgres
def test_a_run_of_a_live_process_is_left_open_on_postgresql(store: Store, store_url: str) -> None:
    """On PostgreSQL, where replicas share the ledger, a run whose process is still alive is not closed."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite: one daemon per ledger, every open run is a dead one's")
    proc = run_in_another_process(store_url, T0)
    try:
        assert store.close_interrupted_runs(T0) == []
    finally:
        stop(proc)
    assert len(store.close_interrupted_runs(T0)) == 1


def test_a_run_this_process_is_running_is_left_open(store: Store) -> None:
    """A run this very process started since it began is its own and alive: it is never closed."""
    store.start_run("reconcile", datetime.now(UTC))
    assert store.close_interrupted_runs(datetime.now(UTC)) == []
