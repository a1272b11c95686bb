"""Invariants of SKU mapping under Hypothesis: kits never outsell a component, mapping is a function."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import OrderLine
from syncd.mapping import Component, Rule, SkuMap, check_catalogue, expand_line, kit_ats, location_levels

ERP = st.sampled_from(["A", "B", "C", "D"])
CHANNEL = st.sampled_from([None, "shop", "tiktok"])
LISTED = st.sampled_from(["A", "B", "X", "Y", "KIT"])

components = st.dictionaries(ERP, st.integers(1, 5), min_size=1, max_size=3).map(
    lambda d: tuple(sorted(Component(s, q) for s, q in d.items()))
)
rules = st.lists(
    st.builds(
        lambda ch, sku, parts: Rule(ch, sku, parts, "kit" if len(parts) > 1 else "map"),
        CHANNEL,
        LISTED,
        components,
    ),
    max_size=8,
)


@given(components, st.dictionaries(ERP, st.integers(-5, 60)))
def test_a_kit_never_shows_more_than_its_scarcest_component_allows(
    parts: tuple[Component, ...], ats: dict[str, int]
) -> None:
    """Selling kit_ats kits never needs more of any component than its ats, and one more kit would."""
    kits = kit_ats(parts, ats)
    assert kits >= 0
    assert all(kits * c.quantity <= max(0, ats.get(c.sku, 0)) for c in parts)
    assert any((kits + 1) * c.quantity > max(0, ats.get(c.sku, 0)) for c in parts)


@given(rules)
def test_no_channel_sku_maps_to_two_erp_skus_without_a_reported_conflict(found: list[Rule]) -> None:
    """Whenever the rules give one listing two different answers, mapping check reports a conflict."""
    sku_map = SkuMap(found)
    listed = {"shop": ["A", "B", "X", "Y", "KIT"], "tiktok": ["A", "B", "X", "Y", "KIT"]}
    report = check_catalogue(sku_map, listed, {"A", "B", "C", "D"})
    for check in report.channels:
        answers: dict[str, set[tuple[Component, ...]]] = defaultdict(set)
        for rule in found:
            if rule.channel == check.channel:
                answers[rule.channel_sku].add(rule.components)
        for rule in found:
            # An every-channel rule speaks for a SKU only where no channel rule does.
            if rule.channel is None and rule.channel_sku not in {
                r.channel_sku for r in found if r.channel == check.channel
            }:
                answers[rule.channel_sku].add(rule.components)
        for sku, given_answers in answers.items():
            if len(given_answers) > 1:
                assert check.conflicts, f"{sku} on {check.channel} has {given_answers} and no conflict"
                assert sku_map.resolve(check.channel, sku) is None
            else:
                assert sku_map.resolve(check.channel, sku) in given_answers


@given(components, st.integers(1, 10), st.text("ab1-:", min_size=1, max_size=5))
def test_expansion_is_idempotent_and_reserves_every_component(
    parts: tuple[Component, ...], quantity: int, line_key: str
) -> None:
    """The same line always expands to the same lines, one per component, with distinct keys."""
    sale = OrderLine(
        "shop", "9", line_key.replace(":", "-"), "KIT", quantity, "open", datetime(2026, 1, 1, tzinfo=UTC)
    )
    once, twice = expand_line(sale, parts), expand_line(sale, parts)
    assert once == twice
    assert len({x.key for x in once}) == len(parts)
    assert sorted((x.sku, x.quantity) for x in once) == sorted((c.sku, c.quantity * quantity) for c in parts)


@given(
    st.integers(0, 50),
    st.lists(st.sampled_from(["p", "q", "r", "s"]), min_size=1, max_size=4, unique=True),
    st.dictionaries(st.sampled_from(["p", "q", "r", "s"]), st.integers(-3, 30)),
)
def test_location_levels_add_up_to_the_target(
    target: int, locations: list[str], current: dict[str, int]
) -> None:
    """The levels are never negative, sum to the target, and only the primary ever goes up."""
    levels = location_levels(target, locations, current)
    assert sum(levels.values()) == target
    assert set(levels) == set(locations)
    assert all(v >= 0 for v in levels.values())
    assert all(levels[n] <= max(0, current.get(n, 0)) for n in locations[1:])
