"""Scoring of the drift report against the sandboxes' journals (``bench/drift.py``'s ``score``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.drift import Change, Known, Reconcile, Reported, score, table, with_reads

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# Reconciles start at 0, 100 and 200 s and each takes 5 s.
RUNS = [Reconcile(at(start), at(start + 5)) for start in (0, 100, 200)]


def edit(seconds: float, sku: str = "MUG", channel: str = "web") -> Change:
    return Change(channel, sku, at(seconds), "manual_edit")


def bought(seconds: float, order: str, sku: str = "MUG", channel: str = "web") -> Change:
    return Change(channel, sku, at(seconds), "purchase", order)


def cancelled(seconds: float, order: str, sku: str = "MUG", channel: str = "web") -> Change:
    return Change(channel, sku, at(seconds), "cancellation", order)


def wrote(seconds: float, sku: str = "MUG", channel: str = "web") -> Change:
    return Change(channel, sku, at(seconds), "syncd_write")


def drift(
    seconds: float, cause: str, sku: str = "MUG", channel: str = "web", expected: int | None = 5
) -> Reported:
    return Reported(channel, sku, at(seconds), cause, expected, 9)


def precision_row(result: dict[str, Any], cause: str) -> tuple[int, int]:
    row = result["precision"][cause]
    return row["reported"], row["true"]


@pytest.mark.parametrize(
    ("changes", "reported", "known", "cause", "expected"),
    [
        # A manual edit between the previous reconcile and this one makes the drift true.
        ([edit(150)], [drift(203, "manual_edit")], {}, "manual_edit", (1, 1)),
        # An edit before the previous reconcile started was that reconcile's to find.
        ([edit(50)], [drift(203, "manual_edit")], {}, "manual_edit", (1, 0)),
        # An edit of another listing, or on another channel, explains nothing here.
        (
            [edit(150, sku="CAP"), edit(150, channel="shop")],
            [drift(203, "manual_edit")],
            {},
            "manual_edit",
            (1, 0),
        ),
        # A purchase whose order syncd had stored before the read is no missed order.
        (
            [bought(150, "o1")],
            [drift(203, "missed_order")],
            {("web", "o1"): Known(at(151))},
            "missed_order",
            (1, 0),
        ),
        # A purchase whose order syncd stored only after the drift was recorded is one.
        (
            [bought(150, "o1")],
            [drift(203, "missed_order")],
            {("web", "o1"): Known(at(230))},
            "missed_order",
            (1, 1),
        ),
        # ... and so is one syncd never stored at all.
        ([bought(150, "o1")], [drift(203, "missed_order")], {}, "missed_order", (1, 1)),
        # A cancellation syncd had not stored by the drift is a missed cancellation.
        (
            [cancelled(150, "o1")],
            [drift(203, "missed_cancellation")],
            {("web", "o1"): Known(at(10), None)},
            "missed_cancellation",
            (1, 1),
        ),
        # One it had stored before is not.
        (
            [cancelled(150, "o1")],
            [drift(203, "missed_cancellation")],
            {("web", "o1"): Known(at(10), at(152))},
            "missed_cancellation",
            (1, 0),
        ),
        # A first sighting of a listing syncd never wrote is a true unknown baseline ...
        ([], [drift(3, "unknown_baseline", expected=None)], {}, "unknown_baseline", (1, 1)),
        # ... even when the same reconcile corrected it before recording the drift ...
        ([wrote(2)], [drift(3, "unknown_baseline", expected=None)], {}, "unknown_baseline", (1, 1)),
        # ... but not once syncd had written it before that reconcile.
        ([wrote(50)], [drift(103, "unknown_baseline", expected=None)], {}, "unknown_baseline", (1, 0)),
        # Only syncd's own write in the window: the drift has no real cause.
        ([wrote(150)], [drift(203, "manual_edit")], {}, "manual_edit", (1, 0)),
    ],
)
def test_a_reported_drift_is_true_only_when_its_cause_happened_in_its_window(
    changes: list[Change],
    reported: list[Reported],
    known: dict[tuple[str, str], Known],
    cause: str,
    expected: tuple[int, int],
) -> None:
    """A drift is true when a real cause of its kind happened on its listing since the previous read."""
    assert precision_row(score(changes, reported, RUNS, known), cause) == expected


def test_the_same_numbers_on_three_channels_with_one_edit_count_one_true_two_without_cause() -> None:
    """One manual edit on one channel, drifts reported on all three: one is true, two have no cause."""
    changes = [edit(150, channel="web"), bought(160, "o1", channel="shop")]
    reported = [drift(203, "manual_edit", channel=c) for c in ("web", "shop", "tiktok")]

    result = score(changes, reported, RUNS, {("shop", "o1"): Known(at(161))})

    assert precision_row(result, "manual_edit") == (3, 1)
    assert result["precision"]["manual_edit"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert (result["drifts"], result["no_real_cause"]) == (3, 2)
    assert result["no_real_cause_share_of_other_labels"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["confusion"] == {"manual_edit": {"manual_edit": 1, "none": 2}}


def test_a_wrong_label_with_a_real_cause_is_false_but_not_causeless() -> None:
    """A manual edit reported as a missed order is a false missed order, yet has a real cause."""
    result = score([edit(150)], [drift(203, "missed_order")], RUNS, {})

    assert precision_row(result, "missed_order") == (1, 0)
    assert result["no_real_cause"] == 0
    assert result["confusion"] == {"missed_order": {"manual_edit": 1}}


@pytest.mark.parametrize(
    ("changes", "reported", "status"),
    [
        # Found by the next reconcile's manual_edit drift.
        ([edit(150)], [drift(203, "manual_edit")], "found"),
        # A drift with another label does not find it.
        ([edit(150)], [drift(203, "missed_order")], "missed"),
        # No reconcile read the listing after the edit.
        ([edit(250)], [], "unread"),
        # Edited again before any read: nobody could see the first edit.
        ([edit(150), edit(160)], [drift(203, "manual_edit")], "superseded"),
        # A drift a reconcile later is past the window of the edit.
        ([edit(50)], [drift(203, "manual_edit")], "missed"),
    ],
)
def test_every_real_manual_edit_is_found_or_missed(
    changes: list[Change], reported: list[Reported], status: str
) -> None:
    """Each manual edit is found, missed, unread (no reconcile after it) or superseded (edited again first)."""
    result = score(changes, reported, RUNS, {})

    assert result["manual_edits"][0]["status"] == status
    recall = result["recall"]["manual_edit"]
    assert recall["real"] == sum(e["status"] in ("found", "missed") for e in result["manual_edits"])
    assert recall["found"] == sum(e["status"] == "found" for e in result["manual_edits"])


def test_an_edit_syncd_wrote_over_before_any_read_is_a_miss_marked_overwritten() -> None:
    """A manual edit overwritten by syncd's write before the reconcile read it is missed, and says so."""
    result = score([edit(150), wrote(155)], [], RUNS, {})

    [verdict] = result["manual_edits"]
    assert (verdict["status"], verdict["overwritten"]) == ("missed", True)
    assert result["recall"]["manual_edit"]["missed_after_syncd_wrote_over_it"] == 1
    assert result["recall"]["manual_edit"]["recall"] == 0.0


def test_missed_orders_recall_counts_only_orders_syncd_had_not_stored_by_the_next_reconcile() -> None:
    """A purchase is a real miss only if its order was still unknown when the next reconcile ended."""
    changes = [bought(150, "late"), bought(151, "early")]
    known = {("web", "late"): Known(at(260)), ("web", "early"): Known(at(152))}

    result = score(changes, [drift(203, "missed_order")], RUNS, known)

    assert result["recall"]["missed_order"] == {"real": 1, "found": 1, "recall": 1.0}


def test_a_purchase_made_while_a_reconcile_was_reading_is_no_miss_of_that_read() -> None:
    """The read (100 s to 102 s) may have read the listing before the purchase at 101 s: only the
    next reconcile, begun after it, could show it, and by then the order was stored."""
    changes = [bought(101, "during"), bought(90, "before")]
    known = {("web", "during"): Known(at(150)), ("web", "before"): Known(at(150))}

    result = score(changes, [], READ_RUNS, known)

    assert result["recall"]["missed_order"] == {"real": 1, "found": 0, "recall": 0.0}


def test_the_table_shows_each_cause_and_the_share_without_cause() -> None:
    """The Markdown table has a row per cause and the share of drifts with no real cause."""
    text = table(
        score([edit(150)], [drift(203, "manual_edit"), drift(203, "manual_edit", sku="CAP")], RUNS, {})
    )

    assert "| `manual_edit` | 2 | 1 | 50.0% | 1 | 1 | 100.0% |" in text
    assert "| `missed_cancellation` | 0 | 0 | n/a |" in text
    assert "no real cause: 1 of 2 (50.0%; 50.0% of those not labelled `unknown_baseline`)" in text


# The same reconciles, each reading the web channel 2 s after its start.
READ_RUNS = [Reconcile(r.started, r.finished, {"web": r.started + timedelta(seconds=2)}) for r in RUNS]


@pytest.mark.parametrize(
    ("changes", "reported", "cause", "expected"),
    [
        # Between the previous read (102 s) and this one (202 s): true.
        ([edit(150)], [drift(204, "manual_edit")], "manual_edit", (1, 1)),
        # After this run's read, before the drift was recorded: the read could not see it.
        ([edit(203)], [drift(204, "manual_edit")], "manual_edit", (1, 0)),
        # While the previous run was reading (its read of a whole catalogue ended at 102 s): the
        # listing may have been read before the edit, so this run may be the first to see it.
        ([edit(101)], [drift(204, "manual_edit")], "manual_edit", (1, 1)),
        # Before the previous run started: that run's to find.
        ([edit(99)], [drift(204, "manual_edit")], "manual_edit", (1, 0)),
        # A purchase just after the read explains nothing, even if syncd never stored it.
        ([bought(203, "o1")], [drift(204, "missed_order")], "missed_order", (1, 0)),
        # A write syncd made after its read (its correction) leaves the baseline unknown.
        ([wrote(3)], [drift(4, "unknown_baseline", expected=None)], "unknown_baseline", (1, 1)),
    ],
)
def test_windows_run_from_read_to_read_when_the_reads_are_known(
    changes: list[Change], reported: list[Reported], cause: str, expected: tuple[int, int]
) -> None:
    """With each run's read time of the channel known, the window runs from the previous run's start
    to this run's read."""
    assert precision_row(score(changes, reported, READ_RUNS, {}), cause) == expected


def test_an_edit_before_a_run_reads_is_seen_by_that_run() -> None:
    """An edit after a run started but before it read the channel is that run's to find (recall)."""
    result = score([edit(101)], [drift(104, "manual_edit")], READ_RUNS, {})

    assert [e["status"] for e in result["manual_edits"]] == ["found"]


def test_read_stamps_are_given_to_the_run_they_fall_in() -> None:
    """A read stamp belongs to the run whose span holds it; stamps outside any run are ignored."""
    stamps = [("web", at(3)), ("web", at(4)), ("shop", at(101)), ("web", at(50))]

    runs = with_reads(RUNS, stamps)

    assert [dict(r.reads) for r in runs] == [{"web": at(3)}, {"shop": at(101)}, {}]


changes_st = st.lists(
    st.builds(
        Change,
        channel=st.sampled_from(["web", "shop"]),
        sku=st.sampled_from(["A", "B"]),
        at=st.integers(0, 300).map(at),
        cause=st.sampled_from(["purchase", "cancellation", "manual_edit", "syncd_write"]),
        order_id=st.sampled_from(["o1", "o2", None]),
    ),
    max_size=12,
)
drifts_st = st.lists(
    st.builds(
        Reported,
        channel=st.sampled_from(["web", "shop"]),
        sku=st.sampled_from(["A", "B"]),
        at=st.integers(1, 300).map(at),
        cause=st.sampled_from(["manual_edit", "missed_order", "missed_cancellation", "unknown_baseline"]),
        expected=st.sampled_from([None, 4]),
        observed=st.just(7),
    ),
    max_size=8,
)
known_st = st.dictionaries(
    st.tuples(st.sampled_from(["web", "shop"]), st.sampled_from(["o1", "o2"])),
    st.builds(Known, st.integers(0, 300).map(at), st.none() | st.integers(0, 300).map(at)),
)


runs_st = st.sampled_from([RUNS, READ_RUNS])


@given(changes_st, drifts_st, known_st, runs_st)
def test_scores_stay_within_their_counts(
    changes: list[Change],
    reported: list[Reported],
    known: dict[tuple[str, str], Known],
    runs: list[Reconcile],
) -> None:
    """True drifts never exceed reported ones, found never exceeds real, shares stay in [0, 1]."""
    result = score(changes, reported, runs, known)

    assert sum(row["reported"] for row in result["precision"].values()) == result["drifts"] == len(reported)
    for row in result["precision"].values():
        assert 0 <= row["true"] <= row["reported"]
    for row in result["recall"].values():
        assert 0 <= row["found"] <= row["real"]
    assert 0 <= result["no_real_cause"] <= result["drifts"]
    causeless = sum(counts.get("none", 0) for counts in result["confusion"].values())
    assert causeless == result["no_real_cause"]


@given(changes_st, drifts_st, known_st, runs_st)
def test_an_extra_manual_edit_never_makes_a_drift_less_true(
    changes: list[Change],
    reported: list[Reported],
    known: dict[tuple[str, str], Known],
    runs: list[Reconcile],
) -> None:
    """Adding a manual edit to the journal never lowers the true count of any cause."""
    extra = edit(120, sku="A", channel="web")
    before = score(changes, reported, runs, known)
    after = score([*changes, extra], reported, runs, known)

    for cause, row in before["precision"].items():
        assert after["precision"][cause]["true"] >= row["true"]
    assert after["no_real_cause"] <= before["no_real_cause"]
