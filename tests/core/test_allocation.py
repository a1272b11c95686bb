"""The allocation model's rules, one table row each, and the properties that make it safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.allocation import (
    COARSE,
    Level,
    ListingAccount,
    Mode,
    Part,
    PartKind,
    SkuBook,
    Write,
    WriteState,
    allocate,
    explain,
    grant,
    held,
    judge_read,
    mode_of,
    record_read,
    record_sale,
    settle,
    write_acknowledged,
    write_lost,
    write_sent,
    write_undone,
)
from syncd.core import ChannelPolicy, DriftCause

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
CHANNELS = ("shop", "tiktok", "web")
POLICIES = {c: ChannelPolicy(c) for c in CHANNELS}
EXACT = frozenset({"shop"})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def listing(channel: str, quantity: int | None, *writes: int, sold: int = 0) -> ListingAccount:
    confirmed = None if quantity is None else Level(quantity, T0, sold)
    sent = tuple(Write(i + 1, Level(q, at(1))) for i, q in enumerate(writes))
    return ListingAccount(channel, "S", confirmed, sent)


def book(ats: int, threshold: int = 100, parts: tuple[Part, ...] = (), **shown: int | None) -> SkuBook:
    return SkuBook("S", ats, threshold, {c: listing(c, q) for c, q in shown.items()}, parts)


# ---------------------------------------------------------------------------- exposure


@pytest.mark.parametrize(
    ("account", "exposure"),
    [
        (listing("web", None), None),
        (listing("web", 5), 5),
        (listing("web", 5, sold=2), 3),
        (listing("web", 5, 8), 8),  # an increase counts from the moment it is sent
        (listing("web", 5, 2), 5),  # a decrease only once it is acknowledged
        (listing("web", 1, sold=4), 0),
    ],
)
def test_exposure_is_the_largest_level_less_its_sales(account: ListingAccount, exposure: int | None) -> None:
    """Exposure: the larger of the confirmed level and every write on the wire, less sales since."""
    assert account.exposure == exposure


def test_sales_lower_only_the_levels_they_came_after() -> None:
    """A sale before a write was overwritten by it; one after it lowers it."""
    account = ListingAccount("shop", "S", Level(5, at(0)), (Write(1, Level(3, at(10)), compare=5),))
    after_confirmed = record_sale(account, 1, at(5))
    assert after_confirmed.confirmed == Level(5, at(0), 1)
    assert after_confirmed.writes[0].level.sold == 0
    after_both = record_sale(after_confirmed, 1, at(11))
    assert after_both.writes[0].level.sold == 1


def test_a_sale_in_the_same_whole_second_counts_as_before() -> None:
    """Order times on a whole second may be up to a second early: such a sale is not taken off a
    level that began in that second (syncd believes the channel shows more, never less)."""
    account = ListingAccount("web", "S", Level(5, at(0.4)))
    assert record_sale(account, 1, at(0)).confirmed == Level(5, at(0.4), 0)


def test_a_cancellation_puts_units_back_on_every_level() -> None:
    """A channel restocks a cancelled order by itself, whatever level it shows."""
    account = ListingAccount("web", "S", Level(5, at(0), 2), (Write(1, Level(3, at(10))),))
    back = record_sale(account, -1, at(5))
    assert back.confirmed is not None and back.confirmed.remaining == 4
    assert back.writes[0].level.remaining == 4


# ---------------------------------------------------------------------------- writes


def test_write_life_cycle() -> None:
    """Sent: exposed at once; acknowledged: the confirmed level; undone: forgotten; lost: kept."""
    base = listing("web", 2)
    sent = write_sent(base, Write(7, Level(6, at(1))))
    assert sent.exposure == 6
    assert write_acknowledged(sent, 7).confirmed == Level(6, at(1))
    assert write_acknowledged(sent, 7).writes == ()
    assert write_undone(sent, 7).exposure == 2
    lost = write_lost(sent, 7)
    assert lost.writes[0].state is WriteState.LOST and lost.exposure == 6


def test_a_compare_and_set_write_keeps_the_sales_since_it_was_sent() -> None:
    """A compare-and-set write landed on the level it was based on: later sales count against it."""
    sent = record_sale(write_sent(listing("shop", 2), Write(7, Level(6, at(1)), compare=2)), 2, at(2))
    assert sent.exposure == 4
    assert write_acknowledged(sent, 7, at=at(3)).exposure == 4


def test_an_absolute_write_counts_sales_only_after_its_answer() -> None:
    """A write without compare-and-set may land after a sale and overwrite it: until it is answered
    no sale lowers it, and its level starts at the answer."""
    sent = record_sale(write_sent(listing("web", 2), Write(7, Level(6, at(1)))), 2, at(2))
    assert sent.exposure == 6
    acked = write_acknowledged(sent, 7, at=at(3))
    assert acked.confirmed == Level(6, at(3))
    assert record_sale(acked, 1, at(4)).exposure == 5


# ---------------------------------------------------------------------------- reads


@pytest.mark.parametrize(
    ("account", "shown", "missing", "above", "exposure"),
    [
        (listing("web", 5), 5, 0, 0, 5),
        (listing("web", 5), 3, 2, 0, 3),  # two sold, not reported: held as missing
        (listing("web", 5), 7, 0, 2, 7),  # shows more than it could: a manual edit or restock
        (listing("web", None), 4, 0, 0, 4),  # first sighting
        (listing("web", 5, 2), 3, 0, 0, 5),  # a write on the wire: a read only ever raises
        (listing("web", 5, 2), 9, 0, 4, 9),
    ],
)
def test_reads(account: ListingAccount, shown: int, missing: int, above: int, exposure: int) -> None:
    """A read confirms the level where no write is on the wire and measures what is missing."""
    outcome = record_read(account, shown, at(20), at(21))
    assert (outcome.missing, outcome.above, outcome.account.exposure) == (missing, above, exposure)


def test_a_lost_write_stays_exposed_until_a_read_after_its_grace() -> None:
    """A write without an answer may still land; a read long enough after it shows the truth.
    Either way, what the read shows below the lost write is held as missing: the write may have
    landed and sold, or never landed."""
    lost = write_lost(write_sent(listing("web", 2), Write(7, Level(6, at(1)))), 7)
    early = record_read(lost, 2, at(10), at(11))
    assert (early.account.exposure, early.missing) == (6, 4)
    late = record_read(lost, 2, at(100), at(101))
    assert (late.account.exposure, late.missing) == (2, 4)


def test_a_read_while_a_write_is_in_transit_only_raises() -> None:
    """The write may land after the read: a lower value proves nothing, a higher one is a change."""
    sent = write_sent(listing("web", 2), Write(7, Level(6, at(1))))
    assert record_read(sent, 1, at(2), at(3)).account == sent
    assert record_read(sent, 9, at(2), at(3)).above == 3


def test_a_read_begun_before_the_confirmed_level_tells_nothing() -> None:
    """A whole-catalogue read is on its way for seconds; a write of one listing answered meanwhile
    is newer than what the read shows of it: the read changes nothing, holds nothing and is not
    judged as drift (it showed the listing before the write)."""
    written = write_acknowledged(write_sent(listing("web", 21), Write(7, Level(20, at(15)))), 7, at=at(16))
    outcome = record_read(written, 21, at(10), at(17))
    assert outcome.account == written
    assert (outcome.missing, outcome.above, outcome.shown) == (0, 0, None)
    assert judge_read("web", "SKU-1", outcome) is None
    lower = record_read(written, 18, at(10), at(17))
    assert (lower.account, lower.missing) == (written, 0)


# ---------------------------------------------------------------------------- drift


@pytest.mark.parametrize(
    ("shown", "meanwhile", "later", "near", "cancelled", "cause"),
    [
        (5, 0, 0, 0, 0, None),  # what it should show
        (6, 1, 0, 0, 0, None),  # read before a sale reported since: still in range
        (6, 0, 0, 0, 0, DriftCause.MANUAL_EDIT),
        (6, 0, 0, 0, 1, DriftCause.MISSED_CANCELLATION),
        (8, 0, 0, 0, 1, DriftCause.MANUAL_EDIT),
        (3, 0, 2, 0, 0, DriftCause.MISSED_ORDER),  # the orders found right after explain it
        (4, 0, 0, 1, 0, None),  # a sale on the baseline's second may sit on the wrong side of it
        (3, 0, 0, 0, 0, DriftCause.MANUAL_EDIT),  # nothing explains it
        (4, 0, 0, 0, 1, None),  # read before the restock of a cancellation counted since
        (3, 0, 0, 0, 1, DriftCause.MANUAL_EDIT),  # more below than the restock explains
    ],
)
def test_drift_is_judged_against_the_range_of_legitimate_levels(
    shown: int, meanwhile: int, later: int, near: int, cancelled: int, cause: DriftCause | None
) -> None:
    """A read is drift only outside the levels the listing could show at the moment of the read."""
    outcome = record_read(listing("web", 5), shown, at(20), at(21))
    drift = judge_read(
        "web",
        "S",
        outcome,
        reported_meanwhile=meanwhile,
        explained_later=later,
        sold_near_baseline=near,
        cancelled=cancelled,
    )
    assert (drift.cause if drift else None) is cause


def test_a_first_sighting_is_its_own_cause() -> None:
    """A listing syncd never saw nor set has no range: its first read is a first sighting."""
    drift = judge_read("web", "S", record_read(listing("web", None), 4, at(0), at(1)))
    assert drift is not None and drift.cause is DriftCause.UNKNOWN_BASELINE


# ---------------------------------------------------------------------------- unaccounted units


def test_reported_sales_explain_held_units_in_their_window() -> None:
    """A missing unit is explained by a sale of that channel stamped in its window, not others."""
    parts = [Part("web", "S", PartKind.MISSING, 2, at(0), at(10))]
    left, units = explain(parts, "shop", 1, at(5))
    assert units == 0 and held(left) == 2
    left, units = explain(parts, "web", 1, at(5))
    assert units == 1 and held(left) == 1
    left, units = explain(parts, "web", 1, at(11))
    assert units == 0 and held(left) == 2


def test_a_poll_that_covers_the_window_releases_what_is_left() -> None:
    """After a poll covering the window every sale in it is in: the rest was never a sale to come."""
    parts = [Part("web", "S", PartKind.FORGOTTEN, 2, at(5), at(10))]
    assert settle(parts, "web", at(10) + COARSE, at(0)) == []
    assert settle(parts, "web", at(10.5), at(0)) == parts  # started too early
    assert settle(parts, "web", at(20), at(5)) == parts  # does not reach back far enough
    assert settle(parts, "shop", at(20), at(0)) == parts


# ---------------------------------------------------------------------------- the allocator


def test_the_shipped_threshold_splits_the_last_units() -> None:
    """At or below the threshold the units are split: the targets add up to at most ats."""
    result = allocate(book(3, threshold=5, shop=0, tiktok=0, web=0), POLICIES, exact=EXACT)
    assert result.mode is Mode.SPLIT
    assert sum(result.targets.values()) == 3


def test_above_the_threshold_every_channel_shows_the_pool() -> None:
    """Outside low-stock mode channels share: each its policy's part of the pool."""
    result = allocate(book(50, threshold=5, shop=0, tiktok=0, web=0), POLICIES, exact=EXACT)
    assert result.mode is Mode.SHARED
    assert result.targets == {"shop": 50, "tiktok": 50, "web": 50}


def test_unaccounted_units_take_the_pool_down_first() -> None:
    """Units probably sold but not reported are never offered again."""
    parts = (Part("web", "S", PartKind.MISSING, 2, at(0), at(1)),)
    result = allocate(book(4, threshold=10, parts=parts, shop=0, tiktok=0, web=0), POLICIES, exact=EXACT)
    assert sum(result.targets.values()) == 2


def test_entering_split_mode_lowers_before_it_hands_out() -> None:
    """Channels showing the shared pool are lowered, compare-and-set ones first; nothing is handed out
    while the exposures still add up to more than the units."""
    result = allocate(book(4, threshold=5, shop=4, tiktok=4, web=4), POLICIES, exact=EXACT)
    assert result.mode is Mode.SPLIT
    assert sum(result.targets.values()) <= 4
    assert result.free < 0


def test_a_channel_keeps_its_part_while_it_sells() -> None:
    """In split mode a channel that sold some of its part keeps the rest: no write races its sales."""
    result = allocate(book(4, threshold=10, shop=1, tiktok=2, web=1), POLICIES, exact=EXACT)
    assert result.targets == {"shop": 1, "tiktok": 2, "web": 1}


def test_a_sold_out_channel_gets_free_units() -> None:
    """A channel at 0 gets its part from free units."""
    result = allocate(book(4, threshold=10, shop=1, tiktok=1, web=0), POLICIES, exact=EXACT)
    assert result.targets["web"] == 1
    assert sum(result.targets.values()) <= 4


def test_a_channel_that_is_down_gets_zero_and_keeps_counting() -> None:
    """What a channel that cannot be reached shows stays counted against the units."""
    result = allocate(
        book(4, threshold=10, shop=0, tiktok=3, web=0),
        POLICIES,
        exact=EXACT,
        unavailable=frozenset({"tiktok"}),
    )
    assert result.targets["tiktok"] == 0
    assert result.targets["shop"] + result.targets["web"] <= 1


# ---------------------------------------------------------------------------- grants


@pytest.mark.parametrize(
    ("shown", "channel", "target", "racing", "quantity", "hold"),
    [
        ({"shop": 1, "tiktok": 1, "web": 0}, "web", 2, 0, 2, 0),
        ({"shop": 2, "tiktok": 1, "web": 0}, "web", 2, 0, 1, 0),  # only what is free
        ({"shop": 2, "tiktok": 2, "web": 0}, "web", 2, 0, 0, 0),
        ({"shop": 1, "tiktok": 1, "web": 0}, "web", 2, 1, 1, 1),  # the race allowance is held
        ({"shop": 1, "tiktok": 3, "web": 0}, "tiktok", 1, 0, 1, 0),  # a decrease as planned
    ],
)
def test_grants_at_send_time(
    shown: dict[str, int], channel: str, target: int, racing: int, quantity: int, hold: int
) -> None:
    """An increase takes at most the free units when it is sent; a racing write holds its allowance."""
    decided = grant(book(4, threshold=10, **shown), channel, target, racing=racing)
    assert (decided.quantity, decided.hold) == (quantity, hold)


def test_an_increase_in_flight_takes_its_units_at_once() -> None:
    """Two increases planned from the same free units: the second gets what the first left."""
    start = book(4, threshold=10, shop=0, tiktok=0, web=0)
    first = grant(start, "web", 4)
    sent = {
        **start.listings,
        "web": write_sent(start.listings["web"], Write(1, Level(first.quantity, at(1)))),
    }
    second = grant(SkuBook("S", 4, 10, sent), "tiktok", 4)
    assert first.quantity + second.quantity == 4


# ---------------------------------------------------------------------------- properties

levels = st.integers(0, 20)


@st.composite
def books(draw: st.DrawFn) -> SkuBook:
    ats = draw(st.integers(0, 30))
    threshold = draw(st.sampled_from([0, 5, 1000]))
    listings = {}
    for c in CHANNELS:
        quantity = draw(st.one_of(st.none(), levels))
        writes = tuple(Write(i, Level(q, at(1))) for i, q in enumerate(draw(st.lists(levels, max_size=2))))
        listings[c] = ListingAccount(c, "S", None if quantity is None else Level(quantity, T0), writes)
    parts = tuple(
        Part(c, "S", PartKind.MISSING, u, T0, at(1))
        for c, u in draw(st.lists(st.tuples(st.sampled_from(CHANNELS), st.integers(1, 3)), max_size=2))
    )
    return SkuBook("S", ats, threshold, listings, parts)


@given(books(), st.frozensets(st.sampled_from(CHANNELS)))
def test_targets_stay_within_the_units(book: SkuBook, down: frozenset[str]) -> None:
    """Every target is between 0 and what the pool allows (held units out of it once split); in
    split mode they add up to at most it."""
    result = allocate(book, POLICIES, exact=EXACT, unavailable=down)
    pool = book.ats - (held(book.parts) if result.mode is Mode.SPLIT else 0)
    assert all(0 <= t <= max(0, pool) for t in result.targets.values())
    if result.mode is Mode.SPLIT:
        assert sum(result.targets.values()) <= result.budget


@given(books(), st.sampled_from(CHANNELS), st.integers(0, 40), st.integers(0, 3))
def test_a_grant_never_breaks_the_invariant(book: SkuBook, channel: str, target: int, racing: int) -> None:
    """In split mode, once the write lands, the exposures plus what is held fit in ats whenever
    they did before (the grant takes nothing that is not free)."""
    if mode_of(book) is not Mode.SPLIT:
        return
    others = sum(a.exposure or 0 for c, a in book.listings.items() if c != channel)
    unknown = any(a.exposure is None for c, a in book.listings.items() if c != channel)
    decided = grant(book, channel, target, racing=racing)
    before = others + (book.listings[channel].exposure or 0) + held(book.parts)
    if not unknown and before <= book.ats and decided.quantity > 0:
        assert others + decided.quantity + held(book.parts) + decided.hold <= book.ats
    assert 0 <= decided.quantity <= max(target, 0)


@given(books())
def test_planning_again_changes_nothing(book: SkuBook) -> None:
    """Once every channel shows its target, the allocator plans the same targets again."""
    first = allocate(book, POLICIES, exact=EXACT)
    if first.mode is not Mode.SPLIT or first.free < 0:
        return
    landed = {c: ListingAccount(c, "S", Level(t, T0)) for c, t in first.targets.items()}
    again = allocate(SkuBook("S", book.ats, book.threshold, landed, book.parts), POLICIES, exact=EXACT)
    assert again.targets == first.targets
