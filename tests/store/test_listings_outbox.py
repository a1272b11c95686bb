"""Store contract: channel listings and the push outbox, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from connectors.base import Listing
from syncd.core import PlannedPush
from syncd.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def push(sku: str, target: int, channel: str = "shop", compare: int | None = None) -> PlannedPush:
    return PlannedPush(channel, sku, target, compare, "reconcile")


def test_sync_listings_upserts_and_drops_vanished(store: Store) -> None:
    """Syncing stores ref and observed quantity, keeps push history, and drops listings gone from the channel."""
    store.sync_listings("shop", [Listing("A", "ref-a", 4), Listing("B", "ref-b", 2)], T0)
    store.record_pushed("shop", {"A": 5}, T0)
    later = T0 + timedelta(minutes=5)
    store.sync_listings("shop", [Listing("A", "ref-a2", 3), Listing("C", "ref-c", None)], later)
    a, c = store.listings("shop")
    assert (a.sku, a.ref, a.observed, a.observed_at, a.last_pushed, a.pushed_at) == (
        "A",
        "ref-a2",
        3,
        later,
        5,
        T0,
    )
    assert (c.sku, c.last_pushed, c.sold_since_push, c.observed, c.status, c.detail) == (
        "C",
        None,
        0,
        None,
        "ok",
        "",
    )


def test_sync_listings_leaves_other_channels_alone(store: Store) -> None:
    """Syncing one channel (even to nothing) never touches another channel's listings."""
    store.sync_listings("shop", [Listing("A", "s-a", 1)], T0)
    store.sync_listings("tiktok", [Listing("A", "t-a", 1)], T0)
    store.sync_listings("shop", [], T0)
    assert [(row.channel, row.sku) for row in store.listings()] == [("tiktok", "A")]


def test_record_pushed_resets_sales_and_status(store: Store) -> None:
    """After a push the listing remembers the quantity and time, with no sales since and status ok."""
    store.sync_listings("shop", [Listing("A", "ref-a", 4)], T0)
    store.set_listing_status("shop", "A", "rejected", "quantity too large")
    assert store.listings("shop")[0].status == "rejected"
    store.record_pushed("shop", {"A": 7, "unlisted": 1}, T0)
    (row,) = store.listings()
    assert (row.last_pushed, row.pushed_at, row.sold_since_push, row.status, row.detail) == (
        7,
        T0,
        0,
        "ok",
        "",
    )


def test_record_observed_updates_read_back(store: Store) -> None:
    """A read-back stores the observed quantity and its time, as timezone-aware UTC."""
    store.sync_listings("shop", [Listing("A", "ref-a", 4), Listing("B", "ref-b", 4)], T0)
    local = datetime(2025, 3, 1, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    store.record_observed("shop", {"A": 1}, local)
    a, b = store.listings("shop", skus=["A", "B"])
    assert (a.observed, a.observed_at, b.observed) == (1, local, 4)
    assert a.observed_at is not None and a.observed_at.tzinfo == UTC


def test_listings_filter_by_skus(store: Store) -> None:
    """listings(skus=...) returns only the named SKUs, ordered by channel then SKU."""
    store.sync_listings("shop", [Listing(s, f"r-{s}", 1) for s in "DCBA"], T0)
    store.sync_listings("tiktok", [Listing("B", "t-b", 1)], T0)
    assert [(r.channel, r.sku) for r in store.listings(skus=["B", "D"])] == [
        ("shop", "B"),
        ("shop", "D"),
        ("tiktok", "B"),
    ]


def test_enqueue_supersedes_pending_push_for_same_listing(store: Store) -> None:
    """A new push for a (channel, sku) replaces the pending one; other listings keep theirs."""
    store.enqueue_pushes([push("A", 5), push("B", 3), push("A", 5, channel="tiktok")], T0)
    store.enqueue_pushes([push("A", 2, compare=5)], T0 + timedelta(seconds=1))
    pending = store.pending_pushes()
    assert [(p.channel, p.sku, p.target, p.compare) for p in pending] == [
        ("shop", "B", 3, None),
        ("tiktok", "A", 5, None),
        ("shop", "A", 2, 5),
    ]
    assert store.counts()["pushes_pending"] == 3


def test_pending_for_gives_each_skus_newest_pending_push_on_the_channel(store: Store) -> None:
    """A sender whose pushes were planned again while its read was out looks up what is pending
    now for its SKUs: the newer push where one superseded its own, nothing where it was sent."""
    store.enqueue_pushes([push("A", 5), push("B", 3), push("C", 1), push("C", 4, channel="tiktok")], T0)
    first = {p.sku: p.id for p in store.pending_pushes("shop")}
    store.enqueue_pushes([push("A", 2, compare=5)], T0 + timedelta(seconds=1))  # supersedes A's
    store.complete_pushes([first["B"]], T0 + timedelta(seconds=1))
    found = store.pending_for("shop", ["A", "B", "C", "D"])
    assert {sku: (p.target, p.compare) for sku, p in found.items()} == {"A": (2, 5), "C": (1, None)}
    assert found["C"].id == first["C"] and found["A"].id not in first.values()
    assert store.pending_for("shop", []) == {}


def test_enqueue_keeps_only_last_push_per_listing_within_a_batch(store: Store) -> None:
    """Two pushes for one listing in a single batch leave only the later one pending."""
    store.enqueue_pushes([push("A", 5), push("A", 1)], T0)
    assert [p.target for p in store.pending_pushes()] == [1]


def test_pending_pushes_oldest_first_per_channel(store: Store) -> None:
    """pending_pushes lists the oldest first, optionally for one channel, up to ``limit``."""
    store.enqueue_pushes([push("A", 1), push("B", 1, channel="tiktok")], T0)
    store.enqueue_pushes([push("C", 1)], T0 + timedelta(seconds=1))
    assert [p.sku for p in store.pending_pushes("shop")] == ["A", "C"]
    assert [p.sku for p in store.pending_pushes(limit=2)] == ["A", "B"]
    first = store.pending_pushes()[0]
    assert (first.state, first.attempts, first.created_at, first.last_error) == ("pending", 0, T0, "")


def test_complete_pushes_leaves_the_queue(store: Store) -> None:
    """Completed pushes are no longer pending."""
    store.enqueue_pushes([push("A", 1), push("B", 1)], T0)
    done = store.pending_pushes()[0].id
    store.complete_pushes([done], T0)
    assert [p.sku for p in store.pending_pushes()] == ["B"]


def test_failed_push_stays_pending_until_given_up(store: Store) -> None:
    """A failure counts an attempt and keeps the error; giving up takes the push off the queue."""
    store.enqueue_pushes([push("A", 1)], T0)
    push_id = store.pending_pushes()[0].id
    store.fail_push(push_id, "timeout", T0, give_up=False)
    store.fail_push(push_id, "HTTP 503", T0, give_up=False)
    (row,) = store.pending_pushes()
    assert (row.attempts, row.last_error, row.state) == (2, "HTTP 503", "pending")
    store.fail_push(push_id, "HTTP 503", T0, give_up=True)
    assert store.pending_pushes() == []


def test_bulk_listings_and_stock(store: Store) -> None:
    """Ten thousand listings and stock records sync in one call each, vanished ones dropped."""
    skus = [f"SKU-{n:05d}" for n in range(10_000)]
    store.sync_listings("shop", [Listing(s, f"ref-{s}", n % 7) for n, s in enumerate(skus)], T0)
    store.apply_stock([(s, n) for n, s in enumerate(skus)], T0, T0)
    store.sync_listings("shop", [Listing(s, f"ref-{s}", 1) for s in skus[::2]], T0 + timedelta(minutes=5))
    counts = store.counts()
    assert (counts["listings"], counts["skus"]) == (5_000, 10_000)
    assert {row.observed for row in store.listings("shop")} == {1}
    assert store.skus(skus[-3:])[skus[-1]].on_hand == 9_999
