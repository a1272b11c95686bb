"""The allocation model (design section 2b): what each channel may still sell, and the one place
that decides every quantity syncd writes. Pure: frozen values in, frozen values out, no clock.

A listing's *exposure* is the most units its channel may still sell without syncd's say: the
larger of its last confirmed level and every write sent but not acknowledged, each less the
sales the channel reported since. Per SKU, *unaccounted* parts are units probably sold but not
reported yet, each with the window of sale times that explains it. In split mode (low stock)
the allocator keeps ``sum(exposure) + unaccounted <= ats``: an increase takes a grant from the
free units when it is sent, a decrease frees units only once it is confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from syncd.core import ChannelPolicy, Drift, DriftCause, SkuStock, policy_target, targets_with_reserve

# Channels stamp orders in whole seconds: such a time stands for any instant of its second.
COARSE = timedelta(seconds=1)


def sold_after(sold_at: datetime, moment: datetime) -> bool:
    """Whether a sale stamped ``sold_at`` surely happened after ``moment`` (a whole-second stamp
    is the earliest instant of its second, so a later stamp is surely later)."""
    return sold_at > moment


def sold_before(sold_at: datetime, moment: datetime) -> bool:
    """Whether a sale stamped ``sold_at`` surely happened before ``moment``."""
    slack = COARSE if sold_at.microsecond == 0 else timedelta(0)
    return sold_at + slack <= moment


# ---------------------------------------------------------------------------- listings


@dataclass(frozen=True)
class Level:
    """A level a listing showed from ``at`` on (read or written), and the net units its channel
    reported sold surely after ``at`` (cancellations, restocked by the channel, count negative)."""

    quantity: int
    at: datetime
    sold: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.sold)


class WriteState(StrEnum):
    """A push's write on the wire. ``sent``: on its way; ``lost``: no answer came (a time-out or a
    crash), it may still land until a read taken after ``LOST_GRACE`` shows the listing."""

    SENT = "sent"
    LOST = "lost"


@dataclass(frozen=True)
class Write:
    """A write sent and not acknowledged: it may land at any moment, so it counts as exposed."""

    push_id: int
    level: Level  # the quantity written, from the moment it was sent
    compare: int | None = None
    state: WriteState = WriteState.SENT


@dataclass(frozen=True)
class ListingAccount:
    """What syncd knows of one listing: its last confirmed level and the writes on the wire."""

    channel: str
    sku: str
    confirmed: Level | None = None
    writes: tuple[Write, ...] = ()

    @property
    def levels(self) -> list[Level]:
        found = [w.level for w in self.writes]
        return found if self.confirmed is None else [self.confirmed, *found]

    @property
    def exposure(self) -> int | None:
        """The most units the channel may still sell; None when syncd never saw nor set it."""
        levels = self.levels
        return max(level.remaining for level in levels) if levels else None

    @property
    def floor(self) -> int | None:
        """The fewest units it may show as far as reported sales go (the range's low end)."""
        levels = self.levels
        return min(level.remaining for level in levels) if levels else None

    @property
    def belief(self) -> int | None:
        """What it shows now if every write on the wire lands: the newest level, less its sales."""
        if self.writes:
            return self.writes[-1].level.remaining
        return None if self.confirmed is None else self.confirmed.remaining


def record_sale(account: ListingAccount, units: int, sold_at: datetime) -> ListingAccount:
    """The channel reported ``units`` sold at ``sold_at`` (negative: a cancellation it restocked).

    A level counts the sale only when it surely came after the level began: a sale before a write
    was overwritten by it, a sale before a read is in the value read. A write without
    compare-and-set still on the wire counts none: the sale may have come before it landed, and
    the write then overwrote it (its race allowance holds such sales)."""

    def counted(level: Level) -> Level:
        if units < 0 or sold_after(sold_at, level.at):
            return replace(level, sold=level.sold + units)
        return level

    confirmed = None if account.confirmed is None else counted(account.confirmed)
    writes = tuple(
        w if w.compare is None and units > 0 else replace(w, level=counted(w.level)) for w in account.writes
    )
    return replace(account, confirmed=confirmed, writes=writes)


def write_sent(account: ListingAccount, write: Write) -> ListingAccount:
    """A write left for the channel: from now on it may land, so it is exposed at once."""
    return replace(account, writes=(*(w for w in account.writes if w.push_id != write.push_id), write))


def write_acknowledged(
    account: ListingAccount, push_id: int, shown: int | None = None, at: datetime | None = None
) -> ListingAccount:
    """The channel took the write, answering at ``at``: its level becomes the confirmed one.

    With compare-and-set the write landed on the level it was based on, so the sales reported
    since it was sent came after it and count. Without, a sale before the answer may have been
    overwritten or not: the level starts at the answer, and those sales are held as forgotten
    (see ``forgotten_until``). ``shown`` is what the channel answered it now shows, if it says."""
    write = next((w for w in account.writes if w.push_id == push_id), None)
    if write is None:
        return account
    level = write.level
    if write.compare is None and at is not None:
        level = Level(level.quantity, max(at, level.at))
    if shown is not None:
        level = replace(level, quantity=shown + level.sold)
    rest = tuple(w for w in account.writes if w.push_id != push_id)
    return replace(account, confirmed=level, writes=rest)


def write_undone(account: ListingAccount, push_id: int) -> ListingAccount:
    """The write surely did not land (a stale compare-and-set, a refusal): it is exposed no more."""
    return replace(account, writes=tuple(w for w in account.writes if w.push_id != push_id))


def write_lost(account: ListingAccount, push_id: int) -> ListingAccount:
    """No answer came for the write (a time-out, a crash): it stays exposed until a read shows."""
    return replace(
        account,
        writes=tuple(
            replace(w, state=WriteState.LOST) if w.push_id == push_id else w for w in account.writes
        ),
    )


# How long after it was sent a lost write may still land (the request's time-out and then some).
LOST_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class ReadOutcome:
    """What a read told: the new account, units it found missing (sold, not reported), and units
    above what the listing could legitimately show (a manual edit or a restock on the channel)."""

    account: ListingAccount
    missing: int = 0
    above: int = 0
    low: int | None = None
    high: int | None = None
    shown: int | None = None
    baseline_at: datetime | None = None  # when the level the read is judged against began


def judge_read(
    channel: str,
    sku: str,
    outcome: ReadOutcome,
    *,
    reported_meanwhile: int = 0,
    explained_later: int = 0,
    sold_near_baseline: int = 0,
    cancelled: int = 0,
) -> Drift | None:
    """The drift a read shows, judged against the range of levels the listing could legitimately
    show at the moment of the read (design 2b), or None.

    The range runs from the lowest level on the wire less the sales reported since it, to the
    highest plus ``reported_meanwhile`` (sales reported since the read began: it may have been
    taken before them). Above it: units came back that no write of syncd's put there: a
    cancellation the channel restocked (up to ``cancelled`` units) or a manual edit. Below it:
    sales not reported at the time of the read; a missed order when orders found right after
    explain the shortfall (``explained_later`` units), a manual edit when no sale of the listing
    came near its baseline either (``sold_near_baseline``: a sale stamped on the same whole
    second as the baseline may have been counted on the wrong side of it). A listing syncd never
    saw nor set is a first sighting."""
    shown = outcome.shown
    if shown is None:
        return None
    if outcome.high is None or outcome.low is None:
        return Drift(channel, sku, None, shown, DriftCause.UNKNOWN_BASELINE)
    high = outcome.high + max(0, reported_meanwhile)
    if shown > high:
        cause = DriftCause.MISSED_CANCELLATION if shown - high <= cancelled else DriftCause.MANUAL_EDIT
        return Drift(channel, sku, high, shown, cause)
    if shown < outcome.low:
        shortfall = outcome.low - shown
        if explained_later > 0:
            return Drift(channel, sku, outcome.low, shown, DriftCause.MISSED_ORDER)
        # A cancellation the channel restocked counts back at once, but the read may have been
        # taken before the restock: that many units below is still in range.
        if shortfall > sold_near_baseline + max(0, cancelled):
            return Drift(channel, sku, outcome.low, shown, DriftCause.MANUAL_EDIT)
    return None


def record_read(
    account: ListingAccount, shown: int, read_from: datetime, read_to: datetime, grace: timedelta = LOST_GRACE
) -> ReadOutcome:
    """A read of the listing, started at ``read_from`` and answered at ``read_to``, showed ``shown``.

    With a write in transit (sent, no answer yet) the read can only raise what is known: the write
    may land after it. Otherwise the read becomes the confirmed level (sales stamped up to
    ``read_to`` are in it or are taken as such) and the units below the exposure, lost writes
    included, are *missing*: sold and not reported, or a lost write that never landed; either way
    the caller holds them until orders or a poll tell. Lost writes sent more than ``grace`` before
    the read have landed or never will and are dropped; younger ones stay exposed.

    A read begun before the confirmed level began (a write answered, or another read, while this
    one was on its way: a long read of a whole catalogue) may show the listing before that level:
    it tells nothing new, changes nothing and is not judged (``shown`` is None)."""
    low, high = account.floor, account.exposure
    level = Level(shown, read_to)
    since = None if account.confirmed is None else account.confirmed.at
    if since is not None and since > read_from:
        return ReadOutcome(account, low=low, high=high, baseline_at=since)
    if high is None:
        return ReadOutcome(replace(account, confirmed=level), shown=shown, baseline_at=since)
    above = max(0, shown - high)
    if any(w.state is WriteState.SENT for w in account.writes):
        if above:
            confirmed = replace(account, confirmed=level)
            return ReadOutcome(confirmed, above=above, low=low, high=high, shown=shown, baseline_at=since)
        return ReadOutcome(account, low=low, high=high, shown=shown, baseline_at=since)
    writes = tuple(w for w in account.writes if w.level.at + grace > read_from)
    return ReadOutcome(
        replace(account, confirmed=level, writes=writes),
        missing=max(0, high - shown),
        above=above,
        low=low,
        high=high,
        shown=shown,
        baseline_at=since,
    )


# ---------------------------------------------------------------------------- unaccounted units


class PartKind(StrEnum):
    """Why units are held as unaccounted, and so what makes them expire."""

    MISSING = "missing"  # a read showed them sold; until their orders arrive or a poll shows none will
    FORGOTTEN = "forgotten"  # a write without compare-and-set may have overwritten sales in its window


@dataclass(frozen=True)
class Part:
    """Units of one SKU held back: explained one by one by sales the channel reports stamped in
    (``since``, ``until``]; the rest released once an order poll has covered that window."""

    channel: str
    sku: str
    kind: PartKind
    units: int
    since: datetime | None  # None: from the beginning (a listing syncd never saw before)
    until: datetime
    push_id: int | None = None  # forgotten: the write whose race it holds (its window ends with it)


def forgotten_until(parts: Sequence[Part], push_id: int, until: datetime) -> list[Part]:
    """The window of the units a write without compare-and-set holds ends when it is known to
    have landed (its answer) or could no longer land (a lost write's grace)."""
    return [
        replace(p, until=max(p.until, until)) if p.kind is PartKind.FORGOTTEN and p.push_id == push_id else p
        for p in parts
    ]


def explain(parts: Sequence[Part], channel: str, units: int, sold_at: datetime) -> tuple[list[Part], int]:
    """A reported sale explains held units of its channel whose window holds its time (oldest
    first). Returns the parts left and the units explained."""
    left = units
    out: list[Part] = []
    for part in parts:
        inside = (
            part.channel == channel
            and (part.since is None or sold_after(sold_at, part.since))
            and not sold_after(sold_at, part.until)
        )
        if left > 0 and inside:
            take = min(left, part.units)
            left -= take
            part = replace(part, units=part.units - take)
        if part.units > 0:
            out.append(part)
    return out, units - left


def settle(parts: Sequence[Part], channel: str, poll_started: datetime, since: datetime) -> list[Part]:
    """An order poll of ``channel`` from ``since`` on, started at ``poll_started``, was ingested:
    every sale of a window it covers has been reported by now, so what is still held there was
    never a sale to come (it was counted already, or the estimate ran high) and is released."""

    def covered(part: Part) -> bool:
        if part.channel != channel or part.until + COARSE > poll_started:
            return False
        return part.since is not None and since <= part.since - COARSE

    return [p for p in parts if not covered(p)]


def held(parts: Iterable[Part]) -> int:
    return sum(max(0, p.units) for p in parts)


# ---------------------------------------------------------------------------- the allocator


class Mode(StrEnum):
    SHARED = "shared"  # every channel shows its policy's part of the pool; a sale propagates in time
    SPLIT = "split"  # low stock: the units are split, no two channels can sell the same one


@dataclass(frozen=True)
class SkuBook:
    """Everything the allocator needs of one SKU."""

    sku: str
    ats: int  # on hand less reported sales and safety stock
    threshold: int
    listings: Mapping[str, ListingAccount]
    parts: tuple[Part, ...] = ()
    in_flight: int = 0  # estimated units sold but not yet reported (rate x delay): soft, never forces a decrease


@dataclass(frozen=True)
class Allocation:
    """The allocator's answer for one SKU: a target per channel and the figures behind it."""

    sku: str
    mode: Mode
    ats: int
    budget: int  # units the channels may sell between them (split) or each (shared)
    unaccounted: int
    free: int  # split: units no channel may sell yet; shared: the pool
    targets: dict[str, int]
    exposures: dict[str, int | None]
    fresh: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def mode_of(book: SkuBook) -> Mode:
    if book.threshold > 0 and book.ats - held(book.parts) - book.in_flight <= book.threshold:
        return Mode.SPLIT
    return Mode.SHARED


def allocate(
    book: SkuBook,
    policies: Mapping[str, ChannelPolicy],
    *,
    reserve: Mapping[str, int] | None = None,
    unavailable: frozenset[str] = frozenset(),
    exact: frozenset[str] = frozenset(),
) -> Allocation:
    """Targets for every channel listing the SKU.

    Shared: each channel its policy's part of ``ats - in_flight``. Split: channels
    keep what they may sell and sell it down by themselves (a write to a channel while it sells
    races its sales); when the exposures add up to more than the budget (``ats - unaccounted``)
    channels are lowered, those with compare-and-set (``exact``) first; free units go to channels
    that sold out, then to those below their fresh split, then wait on an exact channel. A channel
    that is down gets 0 and what it may still sell stays counted. Targets are never above a
    channel's policy limit, and increases are only *planned* here: the grant is taken when sent.
    """
    channels = sorted(c for c in book.listings if c in policies)
    unaccounted = held(book.parts)
    exposures = {c: book.listings[c].exposure for c in channels}
    sku_policies = [policies[c] for c in channels]
    mode = mode_of(book)
    if mode is Mode.SHARED:
        # Channels share the pool on purpose: each may show all of it, and a sale is propagated
        # long before it runs out (the threshold is for that). Held units only count once split.
        pool = max(0, book.ats - book.in_flight)
        stock = SkuStock(book.sku, pool, 0, 0, 0)
        targets = targets_with_reserve(stock, sku_policies, reserve or {}, unavailable)
        return Allocation(
            book.sku, mode, book.ats, pool, unaccounted, pool, targets, exposures,
            reasons={c: "policy part of the shared pool" for c in channels},
        )
    budget = max(0, book.ats - unaccounted)
    split = SkuStock(book.sku, budget, 0, 0, max(book.threshold, budget, 1))
    fresh = targets_with_reserve(split, sku_policies, reserve or {}, unavailable)
    limits = {c: policy_target(budget, policies[c]) for c in channels}
    # A listing syncd never saw may show anything up to its limit.
    exposed = {c: limits[c] if e is None else e for c, e in exposures.items()}
    live = [c for c in channels if c not in unavailable]
    targets = {c: 0 for c in channels}
    reasons = {c: "down: 0, what it shows stays counted" for c in channels if c in unavailable}
    for c in live:
        targets[c] = min(exposed[c], limits[c])
        reasons[c] = "keeps what it may sell"
    room = budget - sum(exposed[c] for c in channels if c in unavailable)
    excess = sum(targets.values()) - max(0, room)

    def surplus(c: str) -> int:
        return targets[c] - fresh.get(c, 0)

    def lower(order: list[str], excess: int, *, to_fresh: bool) -> int:
        for c in order:
            take = max(0, min(excess, surplus(c) if to_fresh else targets[c]))
            if take:
                targets[c] -= take
                excess -= take
                reasons[c] = "lowered: the parts added up to more than the units"
        return excess

    if excess > 0:
        exact_live = sorted((c for c in live if c in exact), key=lambda c: (-surplus(c), c))
        if excess <= sum(targets[c] for c in exact_live):
            excess = lower(exact_live, excess, to_fresh=False)
        ranked = sorted(live, key=lambda c: (c not in exact, -surplus(c), c))
        excess = lower(ranked, excess, to_fresh=True)
        lower(sorted(live, key=lambda c: (c not in exact, -targets[c], c)), excess, to_fresh=False)
    # Decreases free units only once confirmed: until then each channel's exposure stays counted.
    give = max(0, budget - sum(exposed.values()) - book.in_flight)

    def hand_out(candidates: list[str], up_to: Mapping[str, int], why: str) -> None:
        nonlocal give
        for c in candidates:
            more = max(0, min(give, up_to[c] - targets[c]))
            if more:
                targets[c] += more
                give -= more
                reasons[c] = why

    starved = [c for c in live if targets[c] == 0 < fresh.get(c, 0)]
    hand_out(sorted(starved, key=lambda c: (c not in exact, c)), fresh, "sold out: given its part from free units")
    below = [
        c for c in live
        if (2 * targets[c] < fresh.get(c, 0) if c not in exact else targets[c] < fresh.get(c, 0))
    ]
    hand_out(sorted(below, key=lambda c: (targets[c] - fresh.get(c, 0), c)), fresh, "raised toward its part")
    hand_out(sorted((c for c in live if c in exact), key=lambda c: (targets[c], c)), limits, "free units wait here")
    free_left = budget - sum(max(exposed[c], targets[c]) for c in channels)
    return Allocation(
        book.sku, mode, book.ats, budget, unaccounted, free_left, targets, exposures, fresh, reasons
    )


@dataclass(frozen=True)
class Grant:
    """What a write may set now: ``quantity``, and ``hold`` units to keep as forgotten sales."""

    quantity: int
    hold: int = 0
    reason: str = ""


def grant(
    book: SkuBook,
    channel: str,
    target: int,
    *,
    limit: int | None = None,
    racing: int = 0,
) -> Grant:
    """The quantity a write of ``channel`` may set at the moment it is sent, for a push planned to
    ``target``. ``racing`` is the units the channel may sell between the read the write is based on
    and the write itself (only for a write without compare-and-set: they are overwritten, so they
    are held as unaccounted until reported).

    Shared mode: at most the pool. Split mode: an increase takes at most the free units
    (``budget - sum(exposure) - racing``, its own exposure counted once); a decrease is written as
    planned. Never negative, never above ``limit``."""
    mode = mode_of(book)
    account = book.listings.get(channel)
    unaccounted = held(book.parts)
    if mode is Mode.SHARED:
        pool = max(0, book.ats - book.in_flight)
        quantity, racing = min(target, pool), 0
        reason = "shared pool"
    else:
        budget = max(0, book.ats - unaccounted)
        others = sum(
            (a.exposure if a.exposure is not None else budget)
            for c, a in book.listings.items()
            if c != channel
        )
        own_room = budget - others - racing
        quantity = min(target, max(0, own_room))
        reason = "grant from free units" if account is None or quantity > (account.exposure or 0) else "decrease"
    if limit is not None:
        quantity = min(quantity, limit)
    # The sales a write without compare-and-set overwrites are gone whatever it sets: all held.
    return Grant(max(0, quantity), max(0, racing), reason)
