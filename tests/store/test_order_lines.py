"""Store contract: order line ingestion, cancellations, posting and settlement, on every backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connectors.base import Listing, OrderLine
from syncd.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def line(
    order: str = "1001", key: str = "1", sku: str = "A", qty: int = 1, *, cancelled: bool = False
) -> OrderLine:
    return OrderLine("shop", order, key, sku, qty, "cancelled" if cancelled else "open", T0)


def sold_since_push(store: Store, sku: str = "A") -> int:
    (row,) = store.listings("shop", skus=[sku])
    return row.sold_since_push


def test_new_open_line_is_reserved_and_counted_as_sold(store: Store) -> None:
    """A first-seen open line reserves its units and adds them to the listing's sold_since_push."""
    store.sync_listings("shop", [Listing("A", "ref-a", 10)], T0)
    result = store.ingest_lines([line(qty=3)], T0)
    assert result.new == [line(qty=3)]
    assert result.touched_skus == {"A"}
    assert store.reserved_by_sku() == {"A": 3}
    assert sold_since_push(store) == 3
    assert [row.key for row in store.lines_in_state("reserved")] == ["shop:1001:1"]


def test_same_lines_twice_count_once(store: Store) -> None:
    """Ingesting the same lines again reports duplicates and changes nothing."""
    store.sync_listings("shop", [Listing("A", "ref-a", 10)], T0)
    batch = [line(key="1", qty=2), line(key="2", qty=1)]
    store.ingest_lines(batch, T0)
    again = store.ingest_lines(batch, T0 + timedelta(minutes=1))
    assert again.new == [] and again.duplicates == 2
    assert store.reserved_by_sku() == {"A": 3}
    assert sold_since_push(store) == 3


def test_mixed_batch_counts_only_unseen_lines(store: Store) -> None:
    """A batch mixing known lines, new lines and repeats within itself reserves each new line once."""
    store.ingest_lines([line(key="1")], T0)
    result = store.ingest_lines([line(key="1"), line(key="2", qty=4), line(key="2", qty=4)], T0)
    assert result.new == [line(key="2", qty=4)]
    assert result.duplicates == 2
    assert store.reserved_by_sku() == {"A": 5}


def test_concurrent_ingestion_counts_each_line_once(store: Store) -> None:
    """Two writers delivering the same lines at the same moment reserve every line exactly once."""
    store.sync_listings("shop", [Listing("A", "ref-a", 100)], T0)
    batch = [line(order=str(n), qty=1) for n in range(30)]
    start = threading.Barrier(2)
    results = []

    def deliver() -> None:
        start.wait()
        results.append(store.ingest_lines(batch, T0))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert sum(len(r.new) for r in results) == 30
    assert sum(r.duplicates for r in results) == 30
    assert store.reserved_by_sku() == {"A": 30}
    assert sold_since_push(store) == 30


def test_new_cancelled_line_is_stored_released_and_touches_nothing(store: Store) -> None:
    """A line first seen already cancelled reserves nothing, is not reported, and is not re-counted later."""
    store.sync_listings("shop", [Listing("A", "ref-a", 10)], T0)
    result = store.ingest_lines([line(qty=2, cancelled=True)], T0)
    assert (result.new, result.released, result.to_compensate, result.duplicates) == ([], [], [], 0)
    assert store.reserved_by_sku() == {}
    assert sold_since_push(store) == 0
    assert store.counts()["lines_released"] == 1
    assert store.ingest_lines([line(qty=2)], T0).duplicates == 1


def test_cancelling_a_reserved_line_releases_it(store: Store) -> None:
    """A reserved line seen cancelled is released, and its units stop counting as sold (once)."""
    store.sync_listings("shop", [Listing("A", "ref-a", 10)], T0)
    store.ingest_lines([line(qty=2)], T0)
    result = store.ingest_lines([line(qty=2, cancelled=True)], T0)
    assert result.released == [line(qty=2, cancelled=True)]
    assert store.reserved_by_sku() == {}
    assert sold_since_push(store) == 0
    store.ingest_lines([line(key="9", qty=5)], T0)
    again = store.ingest_lines([line(qty=2, cancelled=True)], T0)
    assert again.released == [] and again.duplicates == 1
    assert sold_since_push(store) == 5


def test_cancelling_posted_or_settled_lines_asks_for_compensation(store: Store) -> None:
    """A cancelled line whose sale reached the ERP (posted or settled) moves to compensate, once."""
    store.ingest_lines([line(key="1"), line(key="2")], T0)
    store.mark_lines(["shop:1001:1"], "posted", T0)
    store.mark_lines(["shop:1001:2"], "settled", T0)
    cancelled = [line(key="1", cancelled=True), line(key="2", cancelled=True)]
    assert store.ingest_lines(cancelled, T0).to_compensate == cancelled
    assert store.ingest_lines(cancelled, T0).duplicates == 2
    assert [row.key for row in store.lines_in_state("compensate")] == ["shop:1001:1", "shop:1001:2"]
    assert store.reserved_by_sku() == {}


def test_reserved_by_sku_counts_reserved_and_posted_only(store: Store) -> None:
    """Only reserved and posted lines count; settled, released and compensate do not; filter by SKU."""
    store.ingest_lines(
        [
            line(key=k, sku=s, qty=q)
            for k, s, q in [("1", "A", 1), ("2", "A", 2), ("3", "A", 4), ("4", "B", 8)]
        ],
        T0,
    )
    store.ingest_lines([line(key="5", sku="B", qty=16), line(key="6", sku="C", qty=32)], T0)
    store.mark_lines(["shop:1001:2"], "posted", T0)
    store.mark_lines(["shop:1001:3"], "settled", T0)
    store.ingest_lines([line(key="5", sku="B", qty=16, cancelled=True)], T0)
    store.mark_lines(["shop:1001:6"], "compensate", T0)
    assert store.reserved_by_sku() == {"A": 3, "B": 8}
    assert store.reserved_by_sku(["B", "Z"]) == {"B": 8}


def test_apply_stock_settles_lines_acknowledged_before_the_read(store: Store) -> None:
    """Posted lines acked before read_started settle; later acks, reserved lines and other SKUs stay."""
    store.ingest_lines(
        [line(key=k, sku=s, qty=1) for k, s in [("1", "A"), ("2", "A"), ("3", "A"), ("4", "B")]], T0
    )
    store.mark_lines(["shop:1001:1", "shop:1001:4"], "posted", T0)
    store.mark_lines(["shop:1001:2"], "posted", T0 + timedelta(seconds=10))
    now = T0 + timedelta(seconds=20)
    settled = store.apply_stock([("A", 50), ("C", 7)], read_started=T0 + timedelta(seconds=5), now=now)
    assert settled == 1
    assert [row.key for row in store.lines_in_state("settled")] == ["shop:1001:1"]
    assert [row.key for row in store.lines_in_state("posted")] == ["shop:1001:2", "shop:1001:4"]
    assert store.reserved_by_sku() == {"A": 2, "B": 1}
    stock = store.skus()
    assert (stock["A"].on_hand, stock["A"].read_at, stock["C"].on_hand) == (50, now, 7)


def test_apply_stock_overwrites_previous_figures(store: Store) -> None:
    """A later read replaces on-hand and read time; the last figure for a SKU in one batch wins."""
    store.apply_stock([("A", 5)], T0, T0)
    store.apply_stock([("A", 9), ("A", 8)], T0, T0 + timedelta(minutes=1))
    assert store.skus(["A"])["A"].on_hand == 8
    assert store.skus(["A"])["A"].read_at == T0 + timedelta(minutes=1)
    assert store.skus(["nope"]) == {}


def test_settle_orders_settles_reserved_and_posted_lines_of_those_orders(store: Store) -> None:
    """Lines of an imported order stop counting; other orders and released lines are untouched."""
    store.ingest_lines(
        [line(order="A:1", key="1"), line(order="A:1", key="2"), line(order="A:1", key="3")], T0
    )
    store.ingest_lines([line(order="2002", key="1", qty=5)], T0)
    store.mark_lines(["shop:A:1:2"], "posted", T0)
    store.ingest_lines([line(order="A:1", key="3", cancelled=True)], T0)
    assert store.settle_orders(["shop:A:1", "shop:9999"], T0) == 2
    assert store.reserved_by_sku() == {"A": 5}
    assert {row.key for row in store.lines_in_state("released")} == {"shop:A:1:3"}


def test_posting_a_line_cancelled_meanwhile_asks_for_compensation(store: Store) -> None:
    """A sale recorded in the ERP for a line cancelled in the meantime must be compensated, not counted."""
    store.ingest_lines([line()], T0)
    store.ingest_lines([line(cancelled=True)], T0)
    store.mark_lines(["shop:1001:1"], "posted", T0)
    assert [row.key for row in store.lines_in_state("compensate")] == ["shop:1001:1"]
    assert store.reserved_by_sku() == {}


def test_mark_lines_moves_lines_and_ignores_unknown_keys(store: Store) -> None:
    """mark_lines moves the named lines to the state given; unknown keys are ignored."""
    store.ingest_lines([line(key="1"), line(key="2")], T0)
    store.mark_lines(["shop:1001:1", "shop:404:1"], "released", T0 + timedelta(seconds=1))
    (row,) = store.lines_in_state("released")
    assert (row.key, row.created_at, row.updated_at) == ("shop:1001:1", T0, T0 + timedelta(seconds=1))
    assert [r.key for r in store.lines_in_state("reserved", limit=5)] == ["shop:1001:2"]


def test_cancelled_line_sold_after_the_push_no_longer_counts_as_sold(store: Store) -> None:
    """A line sold after the last push and then cancelled is taken out of sold_since_push."""
    from connectors.base import Listing, OrderLine

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.sync_listings("web", [Listing("A", "p:1", 10)], t0)
    store.record_pushed("web", {"A": 10}, t0)
    sale = OrderLine("web", "o1", "1", "A", 3, "open", t0 + timedelta(seconds=1))
    store.ingest_lines([sale], t0 + timedelta(seconds=1))
    assert store.listings("web")[0].sold_since_push == 3
    later = t0 + timedelta(seconds=2)
    store.ingest_lines([OrderLine("web", "o1", "1", "A", 3, "cancelled", later)], later)
    assert store.listings("web")[0].sold_since_push == 0


def test_sale_made_before_the_last_push_is_not_counted_against_it(store: Store) -> None:
    """A sale the channel made before syncd's last write was overwritten by it: not sold since."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.sync_listings("web", [Listing("A", "p:1", 10)], t0)
    store.record_pushed("web", {"A": 10}, t0)
    early = OrderLine("web", "o1", "1", "A", 2, "open", t0 - timedelta(seconds=5))
    late = OrderLine("web", "o2", "1", "A", 1, "open", t0 + timedelta(seconds=5))
    store.ingest_lines([early, late], t0 + timedelta(seconds=6))
    assert store.listings("web")[0].sold_since_push == 1
    assert store.reserved_by_sku() == {"A": 3}  # both still reserve stock


def test_sales_near_a_listings_baseline_are_counted(store: Store) -> None:
    """The sales the ledger learnt of within the slack of each listing's own moment, per listing;
    cancelled ones, later ones and other listings' are left out."""
    store.ingest_lines([line("1", qty=2), line("3", qty=4, cancelled=True)], T0 + timedelta(seconds=1))
    store.ingest_lines([line("2", qty=1)], T0 + timedelta(seconds=9))
    store.ingest_lines([line("4", sku="B", qty=5)], T0)
    near = store.sold_around([("shop", "A", T0), ("web", "A", T0)], timedelta(seconds=3))
    assert near == {("shop", "A"): 2}
    assert store.sold_around([], timedelta(seconds=3)) == {}
