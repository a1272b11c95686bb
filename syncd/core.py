"""The pure planning core: available-to-sell, per-channel targets, low-stock partitions, drift
causes and the ordered push plan. No I/O and no clock reads here; callers pass ``now`` if needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist


@dataclass(frozen=True)
class ChannelPolicy:
    """How much of the available stock one channel may show.

    ``share`` is a percentage of ats (rounded down), ``buffer`` units held back from it, ``cap``
    the most it may ever show. In low-stock mode channels are served in ``priority`` order (lower
    number first), and channels of equal priority split the units by ``weight``.
    """

    channel: str
    share: int = 100
    buffer: int = 0
    cap: int | None = None
    priority: int = 100
    weight: int = 1


@dataclass(frozen=True)
class SkuStock:
    """What the ledger knows of one SKU at planning time."""

    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    low_stock_threshold: int


@dataclass(frozen=True)
class ChannelState:
    """What syncd believes one channel shows for one SKU.

    ``last_pushed`` is the quantity syncd last set (None if never), ``sold_since_push`` the units
    the channel sold since then (it decrements itself), ``observed`` what a read-back returned
    (None if never read).
    """

    channel: str
    sku: str
    last_pushed: int | None
    sold_since_push: int
    observed: int | None

    @property
    def expected(self) -> int | None:
        """What the channel should show now given syncd's own pushes and the sales it has seen."""
        if self.last_pushed is None:
            return None
        return max(0, self.last_pushed - self.sold_since_push)


@dataclass(frozen=True)
class PlannedPush:
    """Set ``channel``'s ``sku`` to ``target``; ``compare`` is what it is believed to show now."""

    channel: str
    sku: str
    target: int
    compare: int | None
    reason: str

    @property
    def is_decrease(self) -> bool:
        """True when the push lowers the shown quantity (or the current value is unknown)."""
        # An unknown current value may be anything, so it is treated as the riskiest case.
        return self.compare is None or self.target < self.compare


class DriftCause(StrEnum):
    """Likely reason why a channel shows something other than expected."""

    MISSED_ORDER = "missed_order"  # channel shows less: a sale syncd has not ingested
    MANUAL_EDIT = "manual_edit"  # channel shows more (or less) with no sale to explain it
    MISSED_CANCELLATION = "missed_cancellation"  # more, and the channel restocked a cancelled order
    UNKNOWN_BASELINE = "unknown_baseline"  # syncd never set this listing: first sighting


@dataclass(frozen=True)
class Drift:
    """One detected difference between expected and observed."""

    channel: str
    sku: str
    expected: int | None
    observed: int
    cause: DriftCause


def available_to_sell(on_hand: int, reserved: int, safety_stock: int) -> int:
    """ats = max(0, on_hand - reserved - safety_stock)."""
    return max(0, on_hand - reserved - safety_stock)


def is_low_stock(stock: SkuStock) -> bool:
    """True when ats is at or below the SKU's low-stock threshold (and the threshold is > 0)."""
    if stock.low_stock_threshold <= 0:
        return False
    return _ats(stock) <= stock.low_stock_threshold


def policy_target(ats: int, policy: ChannelPolicy) -> int:
    """A channel's target outside low-stock mode: share, then buffer, then cap; never above ats."""
    target = max(0, ats * policy.share // 100 - policy.buffer)
    if policy.cap is not None:
        target = min(target, policy.cap)
    # The outer clamp keeps odd policies (share over 100, negative buffer or cap) inside [0, ats].
    return max(0, min(target, ats))


def channel_targets(
    stock: SkuStock, policies: Sequence[ChannelPolicy], unavailable: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Target quantity per channel for one SKU.

    Outside low-stock mode every channel gets its policy target. In low-stock mode the ats units
    are partitioned: by priority, then by weight (largest remainder, ties by channel name), no
    channel above its policy target, channels in ``unavailable`` get 0; the targets sum to at most
    ats. Every target is between 0 and ats.
    """
    ats = _ats(stock)
    if not is_low_stock(stock):
        # Channels we cannot reach keep their target: the push simply waits until they are back.
        return {p.channel: policy_target(ats, p) for p in policies}
    targets = {p.channel: 0 for p in policies}
    remaining = ats
    for priority in sorted({p.priority for p in policies}):
        group = [p for p in policies if p.priority == priority and p.channel not in unavailable]
        rooms = {p.channel: policy_target(ats, p) for p in group}
        weights = {p.channel: max(0, p.weight) for p in group}
        given = _fill_group(remaining, rooms, weights)
        for channel, units in given.items():
            targets[channel] = units
        remaining -= sum(given.values())
    return targets


def targets_with_reserve(
    stock: SkuStock,
    policies: Sequence[ChannelPolicy],
    reserve: Mapping[str, int],
    unavailable: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Like ``channel_targets``, with units ring-fenced for some channels (a live-stream event).

    The other channels share only ``ats - reserved units``; a channel with a reserve shows its own
    policy target on the whole ats. In low-stock mode a reserving channel gets at most its reserve
    and the others split what is left, so the targets still sum to at most ats.
    """
    held = {p.channel: max(0, reserve.get(p.channel, 0)) for p in policies if reserve.get(p.channel, 0) > 0}
    if not held:
        return channel_targets(stock, policies, unavailable)
    ats = _ats(stock)
    fenced = min(ats, sum(held.values()))
    others = [p for p in policies if p.channel not in held]
    # The other channels see a pool smaller by the fenced units, as if that much more were safety stock.
    targets = channel_targets(replace(stock, safety_stock=stock.safety_stock + fenced), others, unavailable)
    low = is_low_stock(stock)
    left = fenced
    for policy in sorted((p for p in policies if p.channel in held), key=lambda p: (p.priority, p.channel)):
        if policy.channel in unavailable and low:
            targets[policy.channel] = 0
        elif low:
            give = min(left, held[policy.channel], policy_target(ats, policy))
            targets[policy.channel] = give
            left -= give
        else:
            targets[policy.channel] = policy_target(ats, policy)
    return targets


def keep_split(
    ats: int,
    fresh: Mapping[str, int],
    shown: Mapping[str, int | None],
    limits: Mapping[str, int],
    *,
    unavailable: frozenset[str] = frozenset(),
    exact: frozenset[str] = frozenset(),
    lagging: Mapping[str, int] | None = None,
    unreported: int = 0,
) -> dict[str, int]:
    """Low-stock targets that move as little as possible from what the channels show.

    In low-stock mode each channel sells its part of the pool down by itself, so what it shows is
    still its part; splitting the pool afresh after every sale would write to channels while they
    sell, and a write to a channel without compare-and-set forgets the sales made between the read
    before it and the write itself. So, starting from ``shown`` (each within its ``limits``):

    - when the parts add up to more than ``ats``, units are taken back from the channels in
      ``exact`` (which write with compare-and-set) if they can give them all; otherwise from
      channels above their ``fresh`` split (exact ones first, then the largest surplus), and if
      that is not enough, from the exact channels and then the largest;
    - a channel that sold out (an exact one: or fell below half its fresh split) is brought back
      up to it from free units, then from exact channels' surplus (never from a channel whose
      write could race its own sales);
    - free units left go to channels below their fresh split, those at 0 first (a channel
      without compare-and-set only while it shows 0), and what is still free to the exact
      channels up to their limits.

    A channel in ``unavailable`` gets 0, and the units it shows stay counted against ``ats``
    (it may still sell them). ``lagging`` holds, for channels whose decrease is queued but has not
    landed, what they show until it does: until then they may sell up to that, so the channels
    not waiting on a write (exact ones first) give way until the sum of the larger of each lagging
    channel's target and what it still shows fits in ``ats``. If any shown value is unknown the
    fresh split is returned as it is. ``unreported`` units (likely sold, not yet reported) are
    never handed out; they take nothing from what channels already show. The targets sum to at
    most ``ats``, and planning again from them returns them unchanged.
    """
    if any(shown.get(c) is None for c in fresh):
        return dict(fresh)
    now: dict[str, int] = {c: int(shown[c] or 0) for c in fresh}
    committed = sum(min(now[c], ats) for c in fresh if c in unavailable)
    budget = max(0, ats - committed)
    live = sorted(c for c in fresh if c not in unavailable)
    targets = dict.fromkeys(fresh, 0)
    for c in live:
        targets[c] = max(0, min(now[c], limits.get(c, ats), budget))

    def surplus(c: str) -> int:
        return targets[c] - fresh[c]

    def take_back(excess: int, order: list[str], *, to_fresh: bool = False) -> int:
        """Lower the channels in ``order`` until ``excess`` units are back (each down to its
        fresh split, or to 0); returns what is still to take."""
        for c in order:
            take = max(0, min(excess, surplus(c) if to_fresh else targets[c]))
            targets[c] -= take
            excess -= take
        return excess

    excess = sum(targets.values()) - budget
    if 0 < excess <= sum(targets[c] for c in live if c in exact):
        # A trim the exact channels can take alone: a write to a channel that could race its own
        # sales forgets those made between its read and its write, so they are left alone.
        excess = take_back(excess, sorted((c for c in live if c in exact), key=lambda c: (-surplus(c), c)))
    if excess > 0:
        # Down toward the fresh split first, exact channels leading; then below it if need be.
        excess = take_back(
            excess, sorted(live, key=lambda c: (c not in exact, -surplus(c), c)), to_fresh=True
        )
        take_back(excess, sorted(live, key=lambda c: (c not in exact, -targets[c], c)))
    waiting = {c: v for c, v in (lagging or {}).items() if c in targets and c not in unavailable}
    # Units a lagging channel may still sell above its target are not free until its write lands.
    free = budget - sum(targets.values()) - sum(max(0, v - targets[c]) for c, v in waiting.items())
    free -= max(0, unreported)
    # A channel that could race its own sales gets more only once it shows 0 (it cannot sell
    # then, so the write races nothing); an exact one as soon as it is below half its split.
    starved = [c for c in live if (2 * targets[c] < fresh[c] if c in exact else targets[c] == 0 < fresh[c])]
    donors = sorted((c for c in live if c in exact and surplus(c) > 0), key=lambda c: (-surplus(c), c))
    for c in sorted(starved, key=lambda c: (targets[c] > 0, targets[c] - fresh[c], c)):
        need = fresh[c] - targets[c]
        give = max(0, min(need, free))
        free -= give
        need -= give
        targets[c] += give
        for donor in donors:
            move = min(need, max(0, surplus(donor)))
            targets[donor] -= move
            targets[c] += move
            need -= move
    for c in sorted(live, key=lambda c: (targets[c] > 0, targets[c] - fresh[c], c)):
        if c not in exact and targets[c] > 0 and now[c] > 0:
            continue
        give = max(0, min(free, -surplus(c)))
        targets[c] += give
        free -= give
    # Units still free wait on an exact channel rather than nowhere (it gives them back first).
    for c in sorted((c for c in live if c in exact), key=lambda c: (targets[c] - fresh[c], c)):
        give = max(0, min(free, limits.get(c, ats) - targets[c]))
        targets[c] += give
        free -= give
    exposed = sum(max(targets[c], v) for c, v in waiting.items())
    excess = exposed + sum(t for c, t in targets.items() if c not in waiting) - budget
    take_back(
        excess, sorted((c for c in live if c not in waiting), key=lambda c: (c not in exact, -targets[c], c))
    )
    return targets


def classify_drift(state: ChannelState, recently_cancelled_units: int = 0) -> Drift | None:
    """The drift of one listing, or None when observed equals expected or nothing was observed."""
    observed, expected = state.observed, state.expected
    if observed is None or observed == expected:
        return None
    if expected is None:
        cause = DriftCause.UNKNOWN_BASELINE
    elif observed < expected:
        cause = DriftCause.MISSED_ORDER
    elif 0 < observed - expected <= recently_cancelled_units:
        cause = DriftCause.MISSED_CANCELLATION
    else:
        cause = DriftCause.MANUAL_EDIT
    return Drift(state.channel, state.sku, expected, observed, cause)


def plan_pushes(
    targets: Mapping[tuple[str, str], int],
    believed: Mapping[tuple[str, str], int | None],
    reason: str,
) -> list[PlannedPush]:
    """Pushes that bring every (channel, sku) from what it is believed to show to its target.

    Pairs already at target produce nothing (so planning again after applying yields nothing).
    Order: decreases first (zero-outs before other decreases, larger drops first), then increases;
    within a class, by channel then sku, so the plan is deterministic.
    """
    pushes = [
        PlannedPush(channel, sku, target, believed.get((channel, sku)), reason)
        for (channel, sku), target in targets.items()
        if believed.get((channel, sku)) != target
    ]
    return sorted(pushes, key=_push_order)


def auto_low_stock_threshold(
    sales_per_minute: float, latency_seconds: float, floor: int, cap: int, miss: float = 0.01
) -> int:
    """Units likely to sell before a push lands: of the sales expected in ``latency_seconds`` at
    ``sales_per_minute`` (all channels together), the count exceeded with a chance below ``miss``
    (Poisson, as ``race_allowance``). Below it a SKU is split: a sale then cannot be propagated
    before the channels, all showing the pool, sell more than remains.

    The result is clamped to ``[floor, cap]``; an unknown (NaN) or negative estimate counts as 0,
    an infinite one as ``cap``. Raises ValueError if ``floor`` is above ``cap``.
    """
    if floor > cap:
        raise ValueError(f"low-stock threshold floor {floor} is above its cap {cap}")
    expected = sales_per_minute * latency_seconds / 60
    if math.isnan(expected) or expected <= 0:
        return floor
    if math.isinf(expected):
        return cap
    # Round first so float noise (1.1 * 450 / 60 = 8.250000000000002) does not add a unit.
    return min(max(race_allowance(round(expected, 9), miss), floor), cap)


def race_allowance(expected_sales: float, miss: float = 0.01) -> int:
    """Units to hold back from a write to a channel without compare-and-set while it sells.

    Such a write sets an absolute quantity, so the sales the channel makes between the read the
    write is based on and the write itself are forgotten (their units are offered again).
    ``expected_sales`` is the mean number of such sales (the channel's rate x that window); the
    result is the smallest n such that more than n of them (Poisson) has a chance below ``miss``.
    0 for no expected sales (or NaN); raises ValueError for an infinite mean or ``miss`` outside
    (0, 1).
    """
    if not 0 < miss < 1:
        raise ValueError(f"miss must be between 0 and 1, not {miss}")
    if math.isinf(expected_sales):
        raise ValueError("expected sales must be finite")
    if math.isnan(expected_sales) or expected_sales <= 0:
        return 0
    if expected_sales > 50:
        # Far into the Poisson tail sums the terms underflow; the normal bound is close there.
        z = NormalDist().inv_cdf(1 - miss)
        return math.ceil(expected_sales + z * math.sqrt(expected_sales))
    n = 0
    term = math.exp(-expected_sales)
    below = term  # P(X <= n)
    while 1 - below >= miss:
        n += 1
        term *= expected_sales / n
        below += term
    return n


def _ats(stock: SkuStock) -> int:
    return available_to_sell(stock.on_hand, stock.reserved, stock.safety_stock)


def _fill_group(pool: int, rooms: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``pool`` units by weight, no channel above its room; what a full channel cannot take
    is offered to the others again, so the group takes min(pool, total room)."""
    given = dict.fromkeys(rooms, 0)
    while pool > 0:
        open_ = sorted(c for c in rooms if given[c] < rooms[c])
        if not open_:
            break
        # Zero-weight channels only get what their weighted peers cannot take.
        weighted = [c for c in open_ if weights[c] > 0]
        shares = _largest_remainder(
            pool, {c: weights[c] for c in weighted} if weighted else dict.fromkeys(open_, 1)
        )
        for channel, share in shares.items():
            take = min(share, rooms[channel] - given[channel])
            given[channel] += take
            pool -= take
    return given


def _largest_remainder(units: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Apportion ``units`` by positive ``weights`` (Hamilton method), ties by channel name."""
    total = sum(weights.values())
    shares = {c: units * w // total for c, w in weights.items()}
    left = units - sum(shares.values())
    # Remainders compared as integer numerators over the common denominator ``total``: exact.
    by_remainder = sorted(weights, key=lambda c: (-(units * weights[c] % total), c))
    for channel in by_remainder[:left]:
        shares[channel] += 1
    return shares


def _push_order(push: PlannedPush) -> tuple[int, int, int, int, str, str]:
    if not push.is_decrease:
        return (1, 0, 0, 0, push.channel, push.sku)
    # Zero-outs first, then larger drops; an unknown current value counts as the largest drop.
    zero_out = 0 if push.target == 0 else 1
    known = 0 if push.compare is None else 1
    drop = 0 if push.compare is None else push.compare - push.target
    return (0, zero_out, known, -drop, push.channel, push.sku)
