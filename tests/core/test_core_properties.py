"""Hypothesis properties for the planning invariants of design.md section 2: targets within ats,
low-stock partitions summing to at most ats, convergence, and decreases before increases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import (
    ChannelPolicy,
    ChannelState,
    DriftCause,
    SkuStock,
    available_to_sell,
    channel_targets,
    classify_drift,
    is_low_stock,
    plan_pushes,
    policy_target,
)

CHANNELS = ["shopify", "tiktok", "web", "amazon", "ebay"]
SKUS = ["A", "B", "C"]
fast = settings(max_examples=150, deadline=None)

Key = tuple[str, str]


@st.composite
def policies(draw: st.DrawFn) -> list[ChannelPolicy]:
    names = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=len(CHANNELS), unique=True))
    return [
        ChannelPolicy(
            channel=name,
            # Beyond the config's own bounds too, so the core's clamps are exercised.
            share=draw(st.integers(0, 150)),
            buffer=draw(st.integers(-2, 10)),
            cap=draw(st.none() | st.integers(0, 30)),
            priority=draw(st.integers(0, 3)),
            weight=draw(st.integers(0, 5)),
        )
        for name in names
    ]


stocks = st.builds(
    SkuStock,
    sku=st.sampled_from(SKUS),
    on_hand=st.integers(-10, 80),
    reserved=st.integers(0, 20),
    safety_stock=st.integers(0, 5),
    low_stock_threshold=st.integers(0, 50),
)
low_stocks = st.builds(
    SkuStock,
    sku=st.sampled_from(SKUS),
    on_hand=st.integers(-3, 30),
    reserved=st.integers(0, 5),
    safety_stock=st.integers(0, 3),
    low_stock_threshold=st.integers(30, 50),
)
unavailables = st.frozensets(st.sampled_from(CHANNELS))
keys = st.tuples(st.sampled_from(CHANNELS), st.sampled_from(SKUS))
quantities = st.integers(0, 40)
targets_maps = st.dictionaries(keys, quantities)
believed_maps = st.dictionaries(keys, st.none() | quantities)


def ats_of(stock: SkuStock) -> int:
    return available_to_sell(stock.on_hand, stock.reserved, stock.safety_stock)


@fast
@given(stocks | low_stocks, policies(), unavailables)
def test_every_target_within_ats(stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]) -> None:
    """Invariant 1: every channel gets a target between 0 and ats, in either mode."""
    targets = channel_targets(stock, pols, down)
    assert set(targets) == {p.channel for p in pols}
    assert all(0 <= t <= ats_of(stock) for t in targets.values())


@fast
@given(low_stocks, policies(), unavailables)
def test_low_stock_targets_sum_to_at_most_ats(
    stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]
) -> None:
    """Invariant 1: in low-stock mode the channels together never show more than ats."""
    assert is_low_stock(stock)
    assert sum(channel_targets(stock, pols, down).values()) <= ats_of(stock)


@fast
@given(low_stocks, policies(), unavailables)
def test_low_stock_respects_policy_and_unavailable(
    stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]
) -> None:
    """In low-stock mode no channel exceeds its policy target and a channel that is down gets 0."""
    targets = channel_targets(stock, pols, down)
    for p in pols:
        assert targets[p.channel] <= policy_target(ats_of(stock), p)
        if p.channel in down:
            assert targets[p.channel] == 0


@fast
@given(low_stocks, policies(), unavailables)
def test_low_stock_withholds_units_only_when_every_channel_is_full(
    stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]
) -> None:
    """The partition never undersells: units stay unshown only if every reachable channel is at its room."""
    ats = ats_of(stock)
    targets = channel_targets(stock, pols, down)
    if sum(targets.values()) < ats:
        for p in pols:
            if p.channel not in down:
                assert targets[p.channel] == policy_target(ats, p)


@fast
@given(low_stocks, policies(), unavailables)
def test_low_stock_serves_priorities_in_order(
    stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]
) -> None:
    """A channel gets units only when every reachable channel of a lower priority number is full."""
    ats = ats_of(stock)
    targets = channel_targets(stock, pols, down)
    for later in pols:
        if targets[later.channel] == 0:
            continue
        for earlier in pols:
            if earlier.priority < later.priority and earlier.channel not in down:
                assert targets[earlier.channel] == policy_target(ats, earlier)


@fast
@given(stocks, policies(), unavailables)
def test_normal_mode_targets_are_policy_targets(
    stock: SkuStock, pols: list[ChannelPolicy], down: frozenset[str]
) -> None:
    """Outside low-stock mode every channel, reachable or not, gets exactly its policy target."""
    if is_low_stock(stock):
        return
    targets = channel_targets(stock, pols, down)
    assert targets == {p.channel: policy_target(ats_of(stock), p) for p in pols}


@fast
@given(targets_maps, believed_maps)
def test_planning_after_applying_yields_nothing(
    targets: dict[Key, int], believed: dict[Key, int | None]
) -> None:
    """Invariant 3: once a plan is applied, planning again from the new beliefs pushes nothing."""
    applied = dict(believed)
    for push in plan_pushes(targets, believed, "sync"):
        applied[(push.channel, push.sku)] = push.target
    assert plan_pushes(targets, applied, "sync") == []


@fast
@given(st.lists(stocks | low_stocks, max_size=3), policies(), unavailables, believed_maps)
def test_planned_channel_targets_converge(
    skus: list[SkuStock], pols: list[ChannelPolicy], down: frozenset[str], believed: dict[Key, int | None]
) -> None:
    """Invariant 3 end to end: targets from the partition, once applied, are not planned again."""
    targets = {
        (channel, stock.sku): t for stock in skus for channel, t in channel_targets(stock, pols, down).items()
    }
    plan = plan_pushes(targets, believed, "sync")
    applied = {**believed, **{(p.channel, p.sku): p.target for p in plan}}
    assert plan_pushes(targets, applied, "sync") == []


@fast
@given(targets_maps, believed_maps)
def test_plan_covers_exactly_the_pairs_off_target(
    targets: dict[Key, int], believed: dict[Key, int | None]
) -> None:
    """One push per (channel, sku) whose belief differs from its target, none for the others."""
    plan = plan_pushes(targets, believed, "sync")
    planned = [(p.channel, p.sku) for p in plan]
    assert len(planned) == len(set(planned))
    assert set(planned) == {k for k, t in targets.items() if believed.get(k) != t}
    for p in plan:
        assert p.target == targets[(p.channel, p.sku)]
        assert p.compare == believed.get((p.channel, p.sku))


@fast
@given(targets_maps, believed_maps)
def test_decreases_never_follow_increases(targets: dict[Key, int], believed: dict[Key, int | None]) -> None:
    """Invariant 4: every decrease is queued before every increase, so none waits behind one."""
    flags = [p.is_decrease for p in plan_pushes(targets, believed, "sync")]
    assert flags == sorted(flags, reverse=True)


@fast
@given(
    st.sampled_from(CHANNELS),
    st.none() | quantities,
    st.integers(0, 10),
    st.none() | quantities,
    st.integers(0, 10),
)
def test_drift_direction_matches_cause(
    channel: str, last_pushed: int | None, sold: int, observed: int | None, cancelled: int
) -> None:
    """Drift is reported iff observed differs from expected, and its cause matches the direction."""
    state = ChannelState(channel, "A", last_pushed, sold, observed)
    drift = classify_drift(state, cancelled)
    expected = state.expected
    if observed is None or observed == expected:
        assert drift is None
        return
    assert drift is not None
    if expected is None:
        assert drift.cause is DriftCause.UNKNOWN_BASELINE
    elif observed < expected:
        assert drift.cause is DriftCause.MISSED_ORDER
    else:
        assert drift.cause in {DriftCause.MISSED_CANCELLATION, DriftCause.MANUAL_EDIT}
        assert (drift.cause is DriftCause.MISSED_CANCELLATION) == (observed - expected <= cancelled)
