"""The low-stock split that stays put: ``keep_split`` moves units only when the channels' parts
exceed ats, a channel sold out (or fell below half its share), or units are free. Table tests for
the cases a seller would recognise, Hypothesis properties for invariants 1 and 3."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import keep_split

CHANNELS = ["tiktok", "shopify", "web"]
EXACT = frozenset({"shopify"})


def split(
    ats: int,
    fresh: dict[str, int],
    shown: dict[str, int | None],
    limits: dict[str, int] | None = None,
    down: frozenset[str] = frozenset(),
) -> dict[str, int]:
    return keep_split(ats, fresh, shown, limits or dict.fromkeys(fresh, ats), unavailable=down, exact=EXACT)


@pytest.mark.parametrize(
    ("ats", "fresh", "shown", "expected"),
    [
        pytest.param(
            9,
            {"tiktok": 5, "shopify": 2, "web": 2},
            {"tiktok": 4, "shopify": 3, "web": 2},
            {"tiktok": 4, "shopify": 3, "web": 2},
            id="parts-that-fit-stay-put",
        ),
        pytest.param(
            9,
            {"tiktok": 5, "shopify": 2, "web": 2},
            {"tiktok": 30, "shopify": 30, "web": 30},
            {"tiktok": 5, "shopify": 2, "web": 2},
            id="entering-low-stock-everyone-down-to-the-split",
        ),
        pytest.param(
            8,
            {"tiktok": 5, "shopify": 2, "web": 1},
            {"tiktok": 5, "shopify": 3, "web": 1},
            {"tiktok": 5, "shopify": 2, "web": 1},
            id="excess-taken-from-compare-and-set-channel-first",
        ),
        pytest.param(
            7,
            {"tiktok": 4, "shopify": 2, "web": 1},
            {"tiktok": 6, "shopify": 2, "web": 1},
            {"tiktok": 6, "shopify": 0, "web": 1},
            id="small-excess-taken-from-the-compare-and-set-channel-even-below-its-split",
        ),
        pytest.param(
            7,
            {"tiktok": 4, "shopify": 2, "web": 1},
            {"tiktok": 9, "shopify": 2, "web": 1},
            {"tiktok": 4, "shopify": 2, "web": 1},
            id="excess-beyond-the-exact-channel-from-the-channel-above-its-split",
        ),
        pytest.param(
            4,
            {"tiktok": 2, "shopify": 1, "web": 1},
            {"tiktok": 2, "shopify": 1, "web": 3},
            {"tiktok": 2, "shopify": 1, "web": 1},
            id="excess-taken-from-surplus-before-anyone-goes-below-its-split",
        ),
        pytest.param(
            6,
            {"tiktok": 4, "shopify": 1, "web": 1},
            {"tiktok": 0, "shopify": 5, "web": 1},
            {"tiktok": 4, "shopify": 1, "web": 1},
            id="sold-out-channel-refilled-from-exact-surplus",
        ),
        pytest.param(
            6,
            {"tiktok": 4, "shopify": 1, "web": 1},
            {"tiktok": 0, "shopify": 1, "web": 5},
            {"tiktok": 0, "shopify": 1, "web": 5},
            id="no-unit-taken-from-a-channel-that-could-race-its-own-sales",
        ),
        pytest.param(
            6,
            {"tiktok": 4, "shopify": 1, "web": 1},
            {"tiktok": 0, "shopify": 1, "web": 1},
            {"tiktok": 4, "shopify": 1, "web": 1},
            id="restocked-units-go-to-the-channel-below-its-split",
        ),
        pytest.param(
            10,
            {"tiktok": 6, "shopify": 2, "web": 2},
            {"tiktok": 4, "shopify": 2, "web": 2},
            {"tiktok": 4, "shopify": 4, "web": 2},
            id="free-units-wait-on-the-exact-channel-until-a-racing-one-shows-0",
        ),
        pytest.param(
            10,
            {"tiktok": 2, "shopify": 6, "web": 2},
            {"tiktok": 2, "shopify": 4, "web": 2},
            {"tiktok": 2, "shopify": 6, "web": 2},
            id="free-units-handed-to-an-exact-channel-up-to-its-split",
        ),
        pytest.param(
            6,
            {"tiktok": 4, "shopify": 1, "web": 1},
            {"tiktok": None, "shopify": 3, "web": 3},
            {"tiktok": 4, "shopify": 1, "web": 1},
            id="unknown-shown-value-falls-back-to-the-split",
        ),
        pytest.param(
            0,
            {"tiktok": 0, "shopify": 0, "web": 0},
            {"tiktok": 2, "shopify": 1, "web": 0},
            {"tiktok": 0, "shopify": 0, "web": 0},
            id="nothing-left-everyone-zero",
        ),
    ],
)
def test_keep_split(
    ats: int, fresh: dict[str, int], shown: dict[str, int | None], expected: dict[str, int]
) -> None:
    assert split(ats, fresh, shown) == expected


def test_down_channel_gets_zero_and_its_units_stay_counted() -> None:
    """A channel syncd cannot reach may still sell what it shows: the others fit in what is left,
    taken from the compare-and-set channel first even below its split."""
    shown: dict[str, int | None] = {"tiktok": 2, "shopify": 2, "web": 2}
    targets = split(4, {"tiktok": 0, "shopify": 2, "web": 2}, shown, down=frozenset({"tiktok"}))
    assert targets == {"tiktok": 0, "shopify": 0, "web": 2}


def test_limits_cap_what_a_channel_keeps() -> None:
    """A channel never keeps more than its policy allows (a share or cap)."""
    shown: dict[str, int | None] = {"tiktok": 5, "shopify": 3, "web": 2}
    targets = split(10, {"tiktok": 5, "shopify": 3, "web": 1}, shown, {"tiktok": 5, "shopify": 3, "web": 1})
    assert targets["web"] == 1


names = st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True)


@st.composite
def cases(
    draw: st.DrawFn, known: bool = False
) -> tuple[int, dict[str, int], dict[str, int | None], dict[str, int], frozenset[str]]:
    chans = draw(names)
    ats = draw(st.integers(0, 40))
    limits = {c: draw(st.integers(0, ats)) for c in chans}
    down = draw(st.frozensets(st.sampled_from(chans)))
    # A fresh split as the core makes one: within limits, 0 for channels that are down, sum <= ats.
    fresh: dict[str, int] = {}
    left = ats
    for c in chans:
        fresh[c] = 0 if c in down else draw(st.integers(0, min(left, limits[c])))
        left -= fresh[c]
    values = st.integers(0, 60) if known else st.none() | st.integers(0, 60)
    shown: dict[str, int | None] = {c: draw(values) for c in chans}
    return ats, fresh, shown, limits, down


@settings(max_examples=300, deadline=None)
@given(cases(), st.frozensets(st.sampled_from(CHANNELS)))
def test_split_never_offers_more_than_exists(case, exact: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """Invariant 1: the targets plus what unreachable channels still show fit in ats; each target
    is within its limit, and a channel that is down gets 0."""
    ats, fresh, shown, limits, down = case
    targets = keep_split(ats, fresh, shown, limits, unavailable=down, exact=exact)
    assert set(targets) == set(fresh)
    if any(v is None for v in shown.values()):
        assert targets == fresh
        return
    still_shown = sum(min(int(shown[c] or 0), ats) for c in down)
    assert sum(targets.values()) + still_shown <= ats or sum(targets.values()) == 0
    for c, t in targets.items():
        assert 0 <= t <= max(limits[c], fresh[c])
        if c in down:
            assert t == 0


@settings(max_examples=300, deadline=None)
@given(cases(known=True), st.frozensets(st.sampled_from(CHANNELS)))
def test_split_is_stable(case, exact: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """Invariant 3: once the channels show the split, splitting again changes nothing (with every
    shown value known: an unknown one means the fresh split, and the next plan starts from it)."""
    ats, fresh, shown, limits, down = case
    once = keep_split(ats, fresh, shown, limits, unavailable=down, exact=exact)
    applied = {c: (shown[c] if c in down else once[c]) for c in fresh}
    assert keep_split(ats, fresh, applied, limits, unavailable=down, exact=exact) == once


@settings(max_examples=300, deadline=None)
@given(cases(), st.frozensets(st.sampled_from(CHANNELS)))
def test_split_moves_only_what_it_must(case, exact: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """A channel that could race its own sales (not exact) is only ever lowered when the parts
    exceed ats, and nobody is lowered when the parts fit."""
    ats, fresh, shown, limits, down = case
    if any(v is None for v in shown.values()):
        return
    targets = keep_split(ats, fresh, shown, limits, unavailable=down, exact=exact)
    kept = {c: min(int(shown[c] or 0), limits[c], ats) for c in fresh if c not in down}
    still_shown = sum(min(int(shown[c] or 0), ats) for c in down)
    fits = sum(kept.values()) + still_shown <= ats
    for c, before in kept.items():
        if targets[c] < before:
            assert not fits or c in exact, (c, before, targets[c])


def test_lagging_decrease_keeps_its_units_from_the_others() -> None:
    """A channel whose decrease has not landed may still sell what it shows: the channels that are
    not waiting on a write give way (the compare-and-set one first), and get their units back
    once the slow write lands."""
    fresh = {"tiktok": 31, "shopify": 13, "web": 8}
    queued: dict[str, int | None] = {"tiktok": 31, "shopify": 13, "web": 8}
    waiting = split_lagging(52, fresh, queued, {"tiktok": 50})
    assert waiting == {"tiktok": 31, "shopify": 0, "web": 2}
    # Planning again while the write still lags changes nothing.
    assert split_lagging(52, fresh, dict(waiting), {"tiktok": 50, "shopify": 13, "web": 8}) == waiting
    # Landed: tiktok shows its 31 and the units are free again. The web store still sells its 2,
    # so it gets more only once it shows 0; meanwhile the compare-and-set channel holds them.
    assert split_lagging(52, fresh, dict(waiting), {}) == {"tiktok": 31, "shopify": 19, "web": 2}


def split_lagging(
    ats: int, fresh: dict[str, int], shown: dict[str, int | None], lagging: dict[str, int]
) -> dict[str, int]:
    return keep_split(ats, fresh, shown, dict.fromkeys(fresh, ats), exact=EXACT, lagging=lagging)


@st.composite
def lagging_cases(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    ats, fresh, shown, limits, down = draw(cases(known=True))
    lagging = {c: draw(st.integers(0, 60)) for c in fresh if draw(st.booleans())}
    return ats, fresh, shown, limits, down, lagging


@settings(max_examples=300, deadline=None)
@given(lagging_cases(), st.frozensets(st.sampled_from(CHANNELS)))
def test_lagging_channels_never_make_room_for_more(case, exact: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """With lagging writes the targets still fit in ats, and whenever the channels not waiting on
    a write could give way, what every channel may sell until the writes land fits in ats too."""
    ats, fresh, shown, limits, down, lagging = case
    targets = keep_split(ats, fresh, shown, limits, unavailable=down, exact=exact, lagging=lagging)
    still_shown = sum(min(int(shown[c] or 0), ats) for c in down)
    assert all(t >= 0 for t in targets.values())
    assert sum(targets.values()) + still_shown <= ats or sum(targets.values()) == 0
    waiting = {c: v for c, v in lagging.items() if c not in down}
    exposure = sum(max(targets[c], v) for c, v in waiting.items()) + sum(
        t for c, t in targets.items() if c not in waiting
    )
    others = [c for c in targets if c not in waiting and c not in down]
    if exposure + still_shown > ats:
        assert all(targets[c] == 0 for c in others)
