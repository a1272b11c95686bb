"""SKU mapping: resolving listings to ERP SKUs, kits' quantities, order-line expansion, locations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import OrderLine
from syncd.mapping import (
    Component,
    Rule,
    SkuMap,
    check_catalogue,
    check_channel,
    expand_line,
    kit_ats,
    location_levels,
    on_hand_from_warehouses,
)

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
GIFT = (Component("MUG-1", 2), Component("TEA-1", 1))


def line(sku: str = "GIFT", quantity: int = 1, line_key: str = "1") -> OrderLine:
    return OrderLine("shop", "1001", line_key, sku, quantity, "open", AT)


@pytest.mark.parametrize(
    ("rules", "channel", "sku", "expected"),
    [
        ([], "shop", "MUG-1", (Component("MUG-1"),)),
        ([Rule(None, "MUG-RED", (Component("MUG-1"),))], "shop", "MUG-RED", (Component("MUG-1"),)),
        (
            [Rule(None, "MUG-RED", (Component("MUG-1"),)), Rule("tiktok", "MUG-RED", (Component("MUG-2"),))],
            "tiktok",
            "MUG-RED",
            (Component("MUG-2"),),
        ),
        (
            [Rule(None, "MUG-RED", (Component("MUG-1"),)), Rule("tiktok", "MUG-RED", (Component("MUG-2"),))],
            "shop",
            "MUG-RED",
            (Component("MUG-1"),),
        ),
        ([Rule(None, "GIFT", GIFT, "kit")], "shop", "GIFT", GIFT),
        (
            [Rule(None, "MUG-RED", (Component("MUG-1"),)), Rule(None, "MUG-RED", (Component("MUG-2"),))],
            "shop",
            "MUG-RED",
            None,
        ),
        (
            [
                Rule(None, "MUG-RED", (Component("MUG-1"),)),
                Rule(None, "MUG-RED", (Component("MUG-2"),)),
                Rule("shop", "MUG-RED", (Component("MUG-3"),)),
            ],
            "shop",
            "MUG-RED",
            (Component("MUG-3"),),
        ),
    ],
    ids=["by-code", "renamed", "channel-rule-wins", "other-channel-general", "kit", "conflict", "override"],
)
def test_resolve(rules: list[Rule], channel: str, sku: str, expected: tuple[Component, ...] | None) -> None:
    """A listing maps by its own rule, then the every-channel rule, then by code; conflicts map to nothing."""
    assert SkuMap(rules).resolve(channel, sku) == expected


@pytest.mark.parametrize(
    ("ats", "expected"),
    [
        ({"MUG-1": 10, "TEA-1": 3}, 3),
        ({"MUG-1": 5, "TEA-1": 9}, 2),
        ({"MUG-1": 1, "TEA-1": 9}, 0),
        ({"MUG-1": 8}, 0),
        ({"MUG-1": -4, "TEA-1": 2}, 0),
    ],
    ids=["tea-scarcest", "mugs-scarcest", "half-a-kit", "missing-component", "negative"],
)
def test_kit_ats(ats: dict[str, int], expected: int) -> None:
    """A kit's ats is the minimum over components of floor(component ats / quantity)."""
    assert kit_ats(GIFT, ats) == expected


def test_a_renamed_line_keeps_its_key() -> None:
    """A plain rename changes only the SKU, so a line seen before the mapping is not counted again."""
    (out,) = expand_line(line("MUG-RED", 2), (Component("MUG-1"),))
    assert (out.key, out.sku, out.quantity) == ("shop:1001:1", "MUG-1", 2)
    assert expand_line(line("MUG-1"), (Component("MUG-1"),)) == [line("MUG-1")]


def test_a_kit_line_reserves_its_components_with_stable_keys() -> None:
    """Two gift sets reserve 4 mugs and 2 teas, under keys that are the same on every delivery."""
    first = expand_line(line("GIFT", 2), GIFT)
    again = expand_line(line("GIFT", 2), tuple(reversed(GIFT)))
    assert [(x.key, x.sku, x.quantity) for x in first] == [
        ("shop:1001:1#MUG-1", "MUG-1", 4),
        ("shop:1001:1#TEA-1", "TEA-1", 2),
    ]
    assert first == again


def test_a_component_sku_with_a_colon_still_gives_a_valid_line_key() -> None:
    """Line keys never hold a colon (the ledger splits channel:order:line on them)."""
    (a, b) = expand_line(line("SET"), (Component("A:1"), Component("B", 2)))
    assert ":" not in a.line_key and ":" not in b.line_key
    assert a.line_key != b.line_key


def test_expanding_without_components_is_refused() -> None:
    """A line with nothing to reserve is an error naming the line, never silently dropped."""
    with pytest.raises(ValueError, match="shop:1001:1"):
        expand_line(line(), ())


def test_on_hand_counts_only_the_named_warehouses() -> None:
    """On-hand sums the counted warehouses; a backorder in one never subtracts from another."""
    stock = {"main": {"A": 5, "B": 1}, "outlet": {"A": 3}, "returns": {"A": 9, "B": -2}}
    assert on_hand_from_warehouses(stock, {"main", "outlet"}) == {"A": 8, "B": 1}
    assert on_hand_from_warehouses(stock) == {"A": 17, "B": 1}
    assert on_hand_from_warehouses(stock, {"outlet"}) == {"A": 3, "B": 0}


@pytest.mark.parametrize(
    ("target", "current", "expected"),
    [
        (10, {"a": 2, "b": 3}, {"a": 7, "b": 3}),
        (4, {"a": 2, "b": 3}, {"a": 1, "b": 3}),
        (1, {"a": 2, "b": 3, "c": 4}, {"a": 0, "b": 1, "c": 0}),
        (0, {"a": 2, "b": 3}, {"a": 0, "b": 0}),
        (3, {}, {"a": 3, "b": 0}),
    ],
    ids=["increase-on-primary", "decrease-primary-first", "then-last-first", "zero", "unknown-levels"],
)
def test_location_levels(target: int, current: dict[str, int], expected: dict[str, int]) -> None:
    """A channel's target is spread over its locations changing the fewest units, primary first."""
    locations = sorted(expected)
    assert location_levels(target, locations, current) == expected


def test_check_sorts_listings() -> None:
    """The check names unmapped SKUs with the reason, duplicates with their count, and shared SKUs."""
    sku_map = SkuMap(
        [
            Rule(None, "MUG-RED", (Component("MUG-1"),)),
            Rule(None, "GIFT", GIFT, "kit"),
            Rule(None, "BOX", (Component("MUG-1"), Component("NOPE", 1)), "kit"),
        ]
    )
    found = check_channel(
        sku_map, "shop", ["MUG-RED", "MUG-1", "GIFT", "TEA-1", "TEA-1", "LOST", "BOX"], {"MUG-1", "TEA-1"}
    )
    assert found.mapped == ["GIFT", "MUG-1", "MUG-RED", "TEA-1"]
    assert found.unmapped == {"BOX": "the ERP has no SKU NOPE", "LOST": "the ERP has no SKU LOST"}
    assert found.duplicated == {"TEA-1": 2}
    assert found.conflicts == ["MUG-1, MUG-RED all show ERP SKU MUG-1 (each would offer its whole stock)"]


def test_check_reports_rule_conflicts_where_they_apply() -> None:
    """A disagreement on every channel shows on each channel without its own rule for that SKU."""
    sku_map = SkuMap(
        [
            Rule(None, "X", (Component("A"),), source="m.csv line 2"),
            Rule(None, "X", (Component("B"),), source="m.csv line 3"),
            Rule("tiktok", "X", (Component("A"),), source="m.csv line 4"),
        ]
    )
    report = check_catalogue(sku_map, {"shop": ["X"], "tiktok": ["X"]}, {"A", "B"})
    shop, tiktok = report.channels
    assert shop.conflicts == ["X on every channel is mapped differently in m.csv line 2, m.csv line 3"]
    assert shop.unmapped == {"X": "its mapping rules conflict"}
    assert tiktok.conflicts == [] and tiktok.mapped == ["X"]
    assert report.has_conflicts


def test_check_names_rules_for_unknown_channels() -> None:
    """A rule for a channel not in the config is a problem (a typo would leave it unused)."""
    report = check_catalogue(SkuMap([Rule("shopfy", "X", (Component("A"),))]), {"shop": ["A"]}, {"A"})
    assert report.problems == [
        "the mapping names channel 'shopfy', which is not configured (channels: ['shop'])"
    ]
    assert report.has_conflicts


def test_a_component_knows_the_kits_drawing_on_it() -> None:
    """A sale of a component names every kit and renamed listing whose quantity it changes."""
    sku_map = SkuMap(
        [
            Rule(None, "GIFT", GIFT, "kit"),
            Rule("shop", "MUG-RED", (Component("MUG-1"),)),
            Rule(None, "TEA-BOX", (Component("TEA-1", 6),), "kit"),
        ]
    )
    assert sorted(r.channel_sku for r in sku_map.drawing_on("MUG-1")) == ["GIFT", "MUG-RED"]
    assert sku_map.drawing_on("NONE") == []
