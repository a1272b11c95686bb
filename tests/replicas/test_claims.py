"""The ledger's side of replicas: outbox claims, the hand-off from standbys and the lease."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import OrderLine
from syncd.core import PlannedPush
from syncd.store import Store
from tests.replicas.conftest import PG_URL

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def queue(store: Store, skus: list[str], channel: str = "web") -> list[int]:
    store.enqueue_pushes([PlannedPush(channel, sku, 1, None, "test") for sku in skus], T0)
    return [p.id for p in store.pending_pushes(channel)]


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="SYNCD_TEST_DATABASE_URL is not set")
def test_two_sessions_claiming_at_once_never_get_the_same_push(pg_schema_url: str) -> None:
    """Two replicas' stores claim the same 600 pending pushes at once, 10 at a time in their own
    shuffled orders: every push is claimed by exactly one of them."""
    stores = [Store(pg_schema_url), Store(pg_schema_url)]
    try:
        stores[0].migrate()
        ids = queue(stores[0], [f"SKU-{i:03d}" for i in range(600)])
        start = threading.Barrier(2)

        def claim_all(store: Store, holder: str, seed: int) -> set[int]:
            order = ids[:]
            random.Random(seed).shuffle(order)
            start.wait()
            got: set[int] = set()
            for i in range(0, len(order), 10):
                got |= store.claim_pushes(order[i : i + 10], holder, T0)
            return got

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(claim_all, stores[0], "replica-a", 1)
            second = pool.submit(claim_all, stores[1], "replica-b", 2)
            got_a, got_b = first.result(), second.result()
        assert got_a.isdisjoint(got_b)
        assert got_a | got_b == set(ids)
        assert got_a and got_b, "the two sessions did not overlap at all"
    finally:
        for store in stores:
            store.close()


def test_a_claimed_push_is_not_given_to_another_replica_until_its_attempt_fails(store: Store) -> None:
    """A push claimed by one holder is refused to another; the holder may claim it again; a failed
    attempt that will be retried gives it back; a sent push is claimed by nobody."""
    retried, sent = queue(store, ["A", "B"])
    assert store.claim_pushes([retried, sent], "replica-a", T0) == {retried, sent}
    assert store.claim_pushes([retried, sent], "replica-b", T0) == set()
    assert store.claim_pushes([retried], "replica-a", T0) == {retried}
    store.fail_push(retried, "timeout", T0, give_up=False)
    store.complete_pushes([sent], T0)
    assert store.claim_pushes([retried, sent], "replica-b", T0) == {retried}


def test_pushes_left_claimed_are_withdrawn_for_planning_not_resent(store: Store) -> None:
    """After a crash, the pending pushes still claimed (their writes may have gone out) are
    superseded and named for planning again; unclaimed pending pushes stay as they are."""
    claimed, waiting = queue(store, ["A", "B"])
    store.claim_pushes([claimed], "replica-a", T0)
    assert store.abandon_claims(T0) == {("web", "A")}
    assert [p.id for p in store.pending_pushes()] == [waiting]
    assert store.abandon_claims(T0) == set()


def test_a_standby_hands_off_the_skus_of_the_sales_it_records(store: Store) -> None:
    """Lines recorded while the store is a standby's leave their SKUs (new sales and
    cancellations) for the syncer, once; a syncer's own lines leave nothing."""
    store.standby = True
    store.ingest_lines([OrderLine("web", "o1", "1", "A", 1, "open", T0)], T0)
    store.ingest_lines([OrderLine("web", "o2", "1", "B", 2, "open", T0)], T0)
    store.ingest_lines([OrderLine("web", "o1", "1", "A", 1, "cancelled", T0)], T0)
    assert store.take_handoffs() == {"A", "B"}
    assert store.take_handoffs() == set()
    store.standby = False
    store.ingest_lines([OrderLine("web", "o3", "1", "C", 1, "open", T0)], T0)
    store.hand_off(["D"], T0)
    assert store.take_handoffs() == {"D"}


def test_the_lease_on_the_database_clock_is_exclusive_until_released(store: Store) -> None:
    """With the database's clock, one holder has the lease and renews it; another is refused
    until the holder releases it."""
    period = timedelta(minutes=5)
    assert store.acquire_lease("syncer", "replica-a", None, period) is True
    assert store.acquire_lease("syncer", "replica-b", None, period) is False
    assert store.acquire_lease("syncer", "replica-a", None, period) is True
    holder = store.lease_holder("syncer")
    assert holder is not None and holder[0] == "replica-a"
    store.release_lease("syncer", "replica-b")  # not the holder's: nothing happens
    assert store.acquire_lease("syncer", "replica-b", None, period) is False
    store.release_lease("syncer", "replica-a")
    assert store.acquire_lease("syncer", "replica-b", None, period) is True
