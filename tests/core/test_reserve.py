"""Event reserves: units ring-fenced for one channel (a scheduled live stream)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import ChannelPolicy, SkuStock, available_to_sell, is_low_stock, targets_with_reserve

TIKTOK = ChannelPolicy("tiktok", priority=1)
SHOP = ChannelPolicy("shop", priority=2)
WEB = ChannelPolicy("web", priority=3)


@pytest.mark.parametrize(
    ("on_hand", "threshold", "reserve", "expected"),
    [
        pytest.param(
            100, 0, {"tiktok": 30}, {"tiktok": 100, "shop": 70, "web": 70}, id="plenty-others-lose-reserve"
        ),
        pytest.param(100, 0, {}, {"tiktok": 100, "shop": 100, "web": 100}, id="no-reserve-is-plain-targets"),
        pytest.param(20, 0, {"tiktok": 30}, {"tiktok": 20, "shop": 0, "web": 0}, id="reserve-above-ats"),
        pytest.param(8, 10, {"tiktok": 5}, {"tiktok": 5, "shop": 3, "web": 0}, id="low-stock-reserve-first"),
        pytest.param(3, 10, {"web": 5}, {"tiktok": 0, "shop": 0, "web": 3}, id="low-stock-reserve-takes-all"),
    ],
)
def test_reserve_table(
    on_hand: int, threshold: int, reserve: dict[str, int], expected: dict[str, int]
) -> None:
    """Reserved units are hidden from the other channels and, in low-stock mode, given first."""
    stock = SkuStock("A", on_hand, 0, 0, threshold)
    assert targets_with_reserve(stock, [TIKTOK, SHOP, WEB], reserve) == expected


@settings(max_examples=200, deadline=None)
@given(
    on_hand=st.integers(0, 60),
    reserved=st.integers(0, 10),
    threshold=st.integers(0, 30),
    reserve=st.dictionaries(st.sampled_from(["tiktok", "shop", "web"]), st.integers(0, 40), max_size=3),
    down=st.frozensets(st.sampled_from(["tiktok", "shop", "web"])),
)
def test_reserve_keeps_the_invariants(
    on_hand: int, reserved: int, threshold: int, reserve: dict[str, int], down: frozenset[str]
) -> None:
    """With any reserve, targets stay within [0, ats] and in low-stock mode sum to at most ats."""
    stock = SkuStock("A", on_hand, reserved, 1, threshold)
    ats = available_to_sell(on_hand, reserved, 1)
    targets = targets_with_reserve(stock, [TIKTOK, SHOP, WEB], reserve, down)
    assert set(targets) == {"tiktok", "shop", "web"}
    assert all(0 <= t <= ats for t in targets.values())
    if is_low_stock(stock):
        assert sum(targets.values()) <= ats
