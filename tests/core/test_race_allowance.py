"""Units held back from a write that may forget the sales made while it was on its way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import race_allowance


def poisson_tail(mean: float, n: int) -> float:
    """P(X > n) for X ~ Poisson(mean), summed in log space (independent of the code under test)."""
    below = sum(math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) for k in range(n + 1))
    return max(0.0, 1.0 - below)


@pytest.mark.parametrize(
    ("expected", "units"),
    [
        (0.0, 0),  # a channel not selling forgets nothing
        (0.005, 0),  # one chance in 200: below the 1% accepted
        (0.1, 1),
        (0.25, 2),
        (0.9, 4),  # a hot SKU on TikTok Shop: 9 sales/s over a 100 ms round trip
        (1.0, 4),
        (10.0, 18),
        (float("nan"), 0),
        (-1.0, 0),
    ],
)
def test_table(expected: float, units: int) -> None:
    assert race_allowance(expected) == units


@pytest.mark.parametrize("miss", [0.0, 1.0, -0.5, 2.0])
def test_a_miss_chance_outside_0_1_is_refused(miss: float) -> None:
    with pytest.raises(ValueError, match="miss"):
        race_allowance(1.0, miss)


def test_an_infinite_mean_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        race_allowance(float("inf"))


@given(st.floats(min_value=0.001, max_value=40), st.sampled_from([0.1, 0.05, 0.01, 0.001]))
def test_the_allowance_is_the_smallest_that_covers_all_but_the_miss_chance(mean: float, miss: float) -> None:
    units = race_allowance(mean, miss)
    assert poisson_tail(mean, units) < miss + 1e-9
    if units > 0:
        assert poisson_tail(mean, units - 1) >= miss - 1e-9


@given(st.floats(min_value=0, max_value=200), st.floats(min_value=0, max_value=200))
def test_more_expected_sales_never_hold_back_fewer_units(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert race_allowance(low) <= race_allowance(high)
