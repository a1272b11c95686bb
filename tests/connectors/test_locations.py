"""The rule that splits a new total over several locations (connectors/locations.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.locations import changed_levels, split_total


@pytest.mark.parametrize(
    ("levels", "total", "expected"),
    [
        ([("A", 5)], 9, {"A": 9}),
        ([("A", 5), ("B", 3), ("C", 2)], 14, {"A": 9, "B": 3, "C": 2}),
        ([("A", 5), ("B", 3), ("C", 2)], 6, {"A": 1, "B": 3, "C": 2}),
        ([("A", 5), ("B", 3), ("C", 2)], 4, {"A": 0, "B": 3, "C": 1}),
        ([("A", 5), ("B", 3), ("C", 2)], 2, {"A": 0, "B": 2, "C": 0}),
        ([("A", 5), ("B", 3), ("C", 2)], 0, {"A": 0, "B": 0, "C": 0}),
        ([("A", -2), ("B", -1), ("C", 4)], 3, {"A": 0, "B": 0, "C": 3}),
        ([("A", -2), ("B", 1)], 5, {"A": 4, "B": 1}),
    ],
    ids=["one", "increase", "decrease", "below-others", "last-first", "zero", "negatives-low", "negatives"],
)
def test_split_table(levels: list[tuple[str, int]], total: int, expected: dict[str, int]) -> None:
    """The first takes the change; the others keep theirs unless the total is below them (last named cut first)."""
    assert split_total(levels, total) == expected


def test_changed_levels_leaves_out_what_stays() -> None:
    """Only the locations whose level moves are written."""
    assert changed_levels([("A", 5), ("B", 3)], 9) == {"A": 6}
    assert changed_levels([("A", 5), ("B", 3)], 8) == {}


def test_bad_input_is_refused() -> None:
    """No locations, or a negative total, is a programming error with a clear message."""
    with pytest.raises(ValueError, match="at least one location"):
        split_total([], 3)
    with pytest.raises(ValueError, match="negative"):
        split_total([("A", 1)], -1)


levels_strategy = st.lists(st.integers(-5, 50), min_size=1, max_size=6).map(
    lambda values: [(f"L{i}", v) for i, v in enumerate(values)]
)


@given(levels_strategy, st.integers(0, 200))
def test_split_adds_up_and_never_shows_more(levels: list[tuple[str, int]], total: int) -> None:
    """Levels add up to the total, none negative, none above the total, and no other location gains."""
    split = split_total(levels, total)
    assert list(split) == [location for location, _ in levels]
    assert sum(split.values()) == total
    assert all(0 <= level <= total for level in split.values())
    assert all(split[location] <= max(0, current) for location, current in levels[1:])


@given(levels_strategy, st.integers(0, 200))
def test_split_is_stable(levels: list[tuple[str, int]], total: int) -> None:
    """Writing the same total again changes nothing."""
    split = split_total(levels, total)
    assert changed_levels(list(split.items()), total) == {}
