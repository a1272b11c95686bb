"""Table-driven tests of the pure planning core: ats, policy targets, low-stock partitions, drift
causes, the push plan's order and the derived low-stock threshold."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import (
    ChannelPolicy,
    ChannelState,
    DriftCause,
    PlannedPush,
    SkuStock,
    auto_low_stock_threshold,
    available_to_sell,
    channel_targets,
    classify_drift,
    is_low_stock,
    plan_pushes,
    policy_target,
)


def stock(ats: int, threshold: int) -> SkuStock:
    return SkuStock("SKU-1", on_hand=ats, reserved=0, safety_stock=0, low_stock_threshold=threshold)


def pol(channel: str, **kwargs: int | None) -> ChannelPolicy:
    return ChannelPolicy(channel, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety", "ats"),
    [
        pytest.param(10, 0, 0, 10, id="plain"),
        pytest.param(10, 3, 0, 7, id="reservations-count"),
        pytest.param(10, 3, 2, 5, id="safety-stock-held-back"),
        pytest.param(5, 3, 2, 0, id="exactly-zero"),
        pytest.param(5, 4, 2, 0, id="oversubscribed-clamps-to-zero"),
        pytest.param(-3, 0, 0, 0, id="negative-erp-on-hand"),
        pytest.param(-3, 2, 1, 0, id="negative-on-hand-with-reservations"),
    ],
)
def test_available_to_sell(on_hand: int, reserved: int, safety: int, ats: int) -> None:
    """ats is on-hand minus reservations and safety stock, never below zero."""
    assert available_to_sell(on_hand, reserved, safety) == ats


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety", "threshold", "low"),
    [
        pytest.param(10, 0, 0, 5, False, id="above-threshold"),
        pytest.param(5, 0, 0, 5, True, id="at-threshold"),
        pytest.param(9, 4, 1, 5, True, id="threshold-compares-ats-not-on-hand"),
        pytest.param(0, 0, 0, 5, True, id="sold-out"),
        pytest.param(0, 0, 0, 0, False, id="zero-threshold-disables"),
        pytest.param(-2, 0, 0, 0, False, id="zero-threshold-disables-even-negative"),
    ],
)
def test_is_low_stock(on_hand: int, reserved: int, safety: int, threshold: int, low: bool) -> None:
    """Low-stock mode starts when ats is at or below a positive threshold."""
    assert is_low_stock(SkuStock("S", on_hand, reserved, safety, threshold)) is low


@pytest.mark.parametrize(
    ("ats", "policy", "target"),
    [
        pytest.param(10, pol("a"), 10, id="default-shows-all"),
        pytest.param(0, pol("a"), 0, id="nothing-to-show"),
        pytest.param(10, pol("a", share=50), 5, id="half"),
        pytest.param(9, pol("a", share=50), 4, id="share-rounds-down"),
        pytest.param(1, pol("a", share=99), 0, id="share-rounds-down-to-zero"),
        pytest.param(10, pol("a", share=0), 0, id="zero-share"),
        pytest.param(10, pol("a", buffer=3), 7, id="buffer"),
        pytest.param(2, pol("a", buffer=3), 0, id="buffer-above-ats-clamps"),
        pytest.param(10, pol("a", share=50, buffer=2), 3, id="buffer-after-share"),
        pytest.param(10, pol("a", cap=4), 4, id="cap"),
        pytest.param(3, pol("a", cap=4), 3, id="cap-above-ats"),
        pytest.param(10, pol("a", cap=0), 0, id="cap-zero"),
        pytest.param(20, pol("a", share=50, buffer=2, cap=6), 6, id="cap-after-share-and-buffer"),
        pytest.param(20, pol("a", share=50, buffer=5, cap=6), 5, id="cap-not-binding"),
        pytest.param(10, pol("a", share=150), 10, id="share-over-100-never-above-ats"),
        pytest.param(10, pol("a", buffer=-4), 10, id="negative-buffer-never-above-ats"),
    ],
)
def test_policy_target(ats: int, policy: ChannelPolicy, target: int) -> None:
    """A channel shows its share of ats (floored), less its buffer, at most its cap, within [0, ats]."""
    assert policy_target(ats, policy) == target


def test_normal_mode_gives_every_channel_its_policy_target() -> None:
    """Outside low-stock mode channels share the pool: each gets its own policy target."""
    policies = [pol("shopify"), pol("tiktok", share=50), pol("web", cap=3)]
    assert channel_targets(stock(10, 5), policies) == {"shopify": 10, "tiktok": 5, "web": 3}


def test_normal_mode_keeps_unavailable_channels_at_policy_target() -> None:
    """A channel that is down keeps its normal target outside low-stock mode (its push just waits)."""
    policies = [pol("shopify"), pol("tiktok")]
    assert channel_targets(stock(10, 5), policies, frozenset({"tiktok"})) == {"shopify": 10, "tiktok": 10}


def test_zero_threshold_never_partitions() -> None:
    """With the threshold at 0 even one unit is shown on every channel (low-stock mode is off)."""
    policies = [pol("a"), pol("b"), pol("c")]
    assert channel_targets(stock(1, 0), policies) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize(
    ("ats", "policies", "unavailable", "expected"),
    [
        pytest.param(0, [pol("a"), pol("b")], set(), {"a": 0, "b": 0}, id="sold-out"),
        pytest.param(
            1,
            [pol("c"), pol("a"), pol("b")],
            set(),
            {"a": 1, "b": 0, "c": 0},
            id="one-unit-goes-to-first-name",
        ),
        pytest.param(
            2, [pol("c"), pol("a"), pol("b")], set(), {"a": 1, "b": 1, "c": 0}, id="two-units-three-channels"
        ),
        pytest.param(5, [pol("a"), pol("b")], set(), {"a": 3, "b": 2}, id="odd-unit-by-name"),
        pytest.param(
            4, [pol("a", weight=3), pol("b", weight=1)], set(), {"a": 3, "b": 1}, id="weights-split-exactly"
        ),
        pytest.param(
            3,
            [pol("a", weight=1), pol("b", weight=2)],
            set(),
            {"a": 1, "b": 2},
            id="weights-favour-heavier",
        ),
        pytest.param(
            5,
            [pol("a", weight=2), pol("b", weight=1)],
            set(),
            {"a": 3, "b": 2},
            id="largest-remainder-beats-name",
        ),
        pytest.param(
            3,
            [pol("shopify", priority=2), pol("tiktok", priority=1)],
            set(),
            {"shopify": 0, "tiktok": 3},
            id="lower-priority-number-served-first",
        ),
        pytest.param(
            3,
            [pol("shopify", priority=2), pol("tiktok", priority=1, cap=2)],
            set(),
            {"shopify": 1, "tiktok": 2},
            id="capped-priority-passes-rest-down",
        ),
        pytest.param(
            4,
            [pol("shopify", priority=2), pol("tiktok", priority=1, share=50)],
            set(),
            {"shopify": 2, "tiktok": 2},
            id="share-limits-low-stock-room",
        ),
        pytest.param(
            4,
            [pol("shopify", priority=2), pol("tiktok", priority=1, buffer=5)],
            set(),
            {"shopify": 4, "tiktok": 0},
            id="buffer-leaves-no-room",
        ),
        pytest.param(
            6,
            [pol("a", cap=1), pol("b"), pol("c")],
            set(),
            {"a": 1, "b": 3, "c": 2},
            id="cap-overflow-reoffered-in-group",
        ),
        pytest.param(
            6,
            [pol("a", cap=1), pol("b", cap=1), pol("c", priority=200)],
            set(),
            {"a": 1, "b": 1, "c": 4},
            id="group-full-rest-to-next-priority",
        ),
        pytest.param(
            5,
            [pol("a", cap=1), pol("b", cap=1)],
            set(),
            {"a": 1, "b": 1},
            id="all-capped-leaves-units-unshown",
        ),
        pytest.param(
            4,
            [pol("a"), pol("b"), pol("c")],
            {"b"},
            {"a": 2, "b": 0, "c": 2},
            id="unavailable-channel-gets-zero",
        ),
        pytest.param(
            3,
            [pol("tiktok", priority=1), pol("shopify", priority=2)],
            {"tiktok"},
            {"shopify": 3, "tiktok": 0},
            id="unavailable-priority-passes-units-on",
        ),
        pytest.param(
            3,
            [pol("a", weight=0), pol("b", cap=2)],
            set(),
            {"a": 1, "b": 2},
            id="zero-weight-takes-only-leftovers",
        ),
    ],
)
def test_low_stock_partition(
    ats: int, policies: list[ChannelPolicy], unavailable: set[str], expected: dict[str, int]
) -> None:
    """In low-stock mode ats is split by priority, then weight (largest remainder, name ties), within caps."""
    assert channel_targets(stock(ats, 10), policies, frozenset(unavailable)) == expected


@pytest.mark.parametrize(
    ("last_pushed", "sold", "expected"),
    [
        pytest.param(None, 0, None, id="never-pushed"),
        pytest.param(None, 3, None, id="never-pushed-with-sales"),
        pytest.param(10, 0, 10, id="no-sales"),
        pytest.param(10, 4, 6, id="sales-decrement"),
        pytest.param(3, 5, 0, id="more-sold-than-pushed-clamps"),
    ],
)
def test_expected(last_pushed: int | None, sold: int, expected: int | None) -> None:
    """A channel should show what syncd last set minus what it sold since, never below zero."""
    assert ChannelState("shopify", "S", last_pushed, sold, None).expected == expected


@pytest.mark.parametrize(
    ("target", "compare", "decrease"),
    [
        pytest.param(3, 5, True, id="lower"),
        pytest.param(0, 5, True, id="zero-out"),
        pytest.param(5, 3, False, id="higher"),
        pytest.param(5, 5, False, id="equal"),
        pytest.param(5, None, True, id="unknown-current-is-risky"),
    ],
)
def test_is_decrease(target: int, compare: int | None, decrease: bool) -> None:
    """A push is a decrease when it lowers the shown quantity or the current quantity is unknown."""
    assert PlannedPush("c", "s", target, compare, "r").is_decrease is decrease


@pytest.mark.parametrize(
    ("last_pushed", "sold", "observed", "cancelled", "cause"),
    [
        pytest.param(10, 2, None, 0, None, id="never-read"),
        pytest.param(10, 2, 8, 0, None, id="as-expected"),
        pytest.param(None, 0, None, 0, None, id="never-pushed-never-read"),
        pytest.param(None, 0, 4, 0, DriftCause.UNKNOWN_BASELINE, id="first-sighting"),
        pytest.param(None, 2, 0, 5, DriftCause.UNKNOWN_BASELINE, id="first-sighting-ignores-cancellations"),
        pytest.param(10, 2, 6, 0, DriftCause.MISSED_ORDER, id="less-is-missed-order"),
        pytest.param(10, 2, 6, 3, DriftCause.MISSED_ORDER, id="less-despite-cancellations"),
        pytest.param(10, 2, 9, 1, DriftCause.MISSED_CANCELLATION, id="more-by-cancelled-units"),
        pytest.param(10, 2, 9, 3, DriftCause.MISSED_CANCELLATION, id="more-within-cancelled-units"),
        pytest.param(10, 2, 12, 3, DriftCause.MANUAL_EDIT, id="more-than-cancellations-explain"),
        pytest.param(10, 2, 9, 0, DriftCause.MANUAL_EDIT, id="more-without-cancellations"),
        pytest.param(3, 5, 1, 0, DriftCause.MANUAL_EDIT, id="expected-clamped-to-zero"),
    ],
)
def test_classify_drift(
    last_pushed: int | None, sold: int, observed: int | None, cancelled: int, cause: DriftCause | None
) -> None:
    """Drift is named by how observed differs from expected and whether cancellations explain it."""
    state = ChannelState("shopify", "S", last_pushed, sold, observed)
    drift = classify_drift(state, cancelled)
    if cause is None:
        assert drift is None
    else:
        assert drift is not None
        assert drift.cause is cause
        assert (drift.channel, drift.sku, drift.expected, drift.observed) == (
            "shopify",
            "S",
            state.expected,
            observed,
        )


def test_plan_skips_pairs_already_at_target() -> None:
    """A (channel, sku) believed to show its target gets no push."""
    assert plan_pushes({("a", "s"): 4, ("b", "s"): 0}, {("a", "s"): 4, ("b", "s"): 0}, "r") == []


def test_plan_carries_compare_and_reason() -> None:
    """Each push holds the believed value as compare (None if unknown) and the given reason."""
    plan = plan_pushes({("a", "s"): 4, ("b", "s"): 2}, {("a", "s"): 1}, "order")
    assert plan == [PlannedPush("b", "s", 2, None, "order"), PlannedPush("a", "s", 4, 1, "order")]


def test_plan_treats_believed_none_as_unknown() -> None:
    """A believed value of None is unknown: it is pushed, as a decrease, even to target 0."""
    assert plan_pushes({("a", "s"): 0}, {("a", "s"): None}, "r") == [PlannedPush("a", "s", 0, None, "r")]


@pytest.mark.parametrize(
    ("targets", "believed", "order"),
    [
        pytest.param(
            {("a", "s"): 5, ("b", "s"): 1},
            {("a", "s"): 2, ("b", "s"): 3},
            [("b", "s"), ("a", "s")],
            id="decrease-before-increase",
        ),
        pytest.param(
            {("a", "s"): 3, ("b", "s"): 0},
            {("a", "s"): 10, ("b", "s"): 1},
            [("b", "s"), ("a", "s")],
            id="zero-out-before-bigger-drop",
        ),
        pytest.param(
            {("a", "s"): 4, ("b", "s"): 1},
            {("a", "s"): 5, ("b", "s"): 9},
            [("b", "s"), ("a", "s")],
            id="bigger-drop-first",
        ),
        pytest.param(
            {("a", "s"): 4, ("b", "s"): 1},
            {("a", "s"): 50},
            [("b", "s"), ("a", "s")],
            id="unknown-counts-as-biggest-drop",
        ),
        pytest.param(
            {("a", "s"): 0, ("b", "s"): 0},
            {("a", "s"): 3},
            [("b", "s"), ("a", "s")],
            id="unknown-zero-out-first",
        ),
        pytest.param(
            {("b", "x"): 1, ("a", "y"): 1, ("a", "x"): 1},
            {("b", "x"): 2, ("a", "y"): 2, ("a", "x"): 2},
            [("a", "x"), ("a", "y"), ("b", "x")],
            id="equal-drops-by-channel-then-sku",
        ),
        pytest.param(
            {("b", "x"): 9, ("a", "y"): 2, ("a", "x"): 5},
            {("b", "x"): 0, ("a", "y"): 0, ("a", "x"): 0},
            [("a", "x"), ("a", "y"), ("b", "x")],
            id="increases-by-channel-then-sku",
        ),
    ],
)
def test_plan_order(
    targets: dict[tuple[str, str], int],
    believed: dict[tuple[str, str], int | None],
    order: list[tuple[str, str]],
) -> None:
    """Decreases go first (zero-outs, then larger drops), increases last, ties by channel then sku."""
    assert [(p.channel, p.sku) for p in plan_pushes(targets, believed, "r")] == order


@pytest.mark.parametrize(
    ("rate", "latency", "floor", "cap", "threshold"),
    [
        # 900 sales a minute and 3 s to propagate: 45 expected, more than 61 has a chance below 1%.
        pytest.param(900.0, 3.0, 0, 500, 61, id="burst"),
        pytest.param(900.0, 1.0, 0, 500, 25, id="burst-fast-propagation"),
        pytest.param(2.0, 30.0, 0, 100, 4, id="one-expected"),
        pytest.param(1.1, 450.0, 0, 100, 16, id="float-noise-not-rounded-up"),
        pytest.param(0.0, 30.0, 2, 100, 2, id="floor"),
        pytest.param(100.0, 60.0, 0, 50, 50, id="cap"),
        pytest.param(-1.0, 30.0, 1, 10, 1, id="negative-rate-is-floor"),
        pytest.param(float("nan"), 30.0, 1, 10, 1, id="unknown-rate-is-floor"),
        pytest.param(float("inf"), 30.0, 1, 10, 10, id="infinite-rate-is-cap"),
    ],
)
def test_auto_low_stock_threshold(rate: float, latency: float, floor: int, cap: int, threshold: int) -> None:
    """The derived threshold is the sales expected in one propagation at their 99th percentile
    (Poisson), within [floor, cap]."""
    assert auto_low_stock_threshold(rate, latency, floor, cap) == threshold


@given(
    rate=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    latency=st.floats(min_value=0, max_value=600, allow_nan=False),
    more=st.floats(min_value=0, max_value=1_000, allow_nan=False),
)
def test_auto_low_stock_threshold_grows_with_rate_and_covers_the_mean(rate: float, latency: float, more: float) -> None:
    """A faster SKU never gets a lower threshold, and the threshold is never below the sales
    expected while a push propagates (up to the cap)."""
    low = auto_low_stock_threshold(rate, latency, 0, 10**6)
    assert auto_low_stock_threshold(rate + more, latency, 0, 10**6) >= low
    assert low >= math.floor(rate * latency / 60)


def test_auto_low_stock_threshold_rejects_floor_above_cap() -> None:
    """A floor above the cap is a caller error, not silently resolved."""
    with pytest.raises(ValueError, match="floor 5 is above its cap 2"):
        auto_low_stock_threshold(1.0, 60.0, 5, 2)
