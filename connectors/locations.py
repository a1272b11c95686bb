"""Where a channel's quantity goes when syncd writes to several locations (Shopify locations,
TikTok Shop warehouses): one deterministic rule, shared by the connectors that have it.

The rule, for the named locations in the order the settings give them (those the item is not
stocked at left out): the first takes the change; every other keeps what it holds, unless the
new total is below what they hold together, in which case they are lowered, the last named
first, until it fits. A negative level counts as 0 and is raised to 0. The new levels add up to
the total exactly, so no location ever shows more than syncd wants the item to show in all.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_total(levels: Sequence[tuple[str, int]], total: int) -> dict[str, int]:
    """The new level of each of ``levels`` (``(location, current)`` in the named order) that
    makes them add up to ``total`` by the rule above. ``levels`` must not be empty."""
    if not levels:
        raise ValueError("split_total needs at least one location")
    if total < 0:
        raise ValueError(f"a total cannot be negative: {total}")
    first, *others = levels
    kept = {location: max(0, current) for location, current in others}
    room = total
    # Lowered last named first: the locations named early keep their units the longest.
    for location, _ in others:
        room -= kept[location]
    for location, _ in reversed(others):
        if room >= 0:
            break
        cut = min(kept[location], -room)
        kept[location] -= cut
        room += cut
    return {first[0]: room, **kept}


def changed_levels(levels: Sequence[tuple[str, int]], total: int) -> dict[str, int]:
    """Of ``split_total``, only the locations whose level changes."""
    current = dict(levels)
    return {location: new for location, new in split_total(levels, total).items() if new != current[location]}


def check_named_once(key: str, names: Sequence[str | int] | None) -> None:
    """Refuse a setting ``key`` that names a location more than once (ValueError naming them)."""
    twice = sorted({name for name in names or () if list(names or ()).count(name) > 1})
    if twice:
        raise ValueError(f"{key} names {', '.join(str(name) for name in twice)} more than once")
