"""A reconcile read below the range waits for the orders: a missed order if one made before the
read comes, a manual edit if a poll covering the read finds none (or the next reconcile starts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import OrderLine
from syncd.core import Drift, DriftCause
from syncd.engine.shortfalls import Shortfalls

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
READ = T0 + timedelta(seconds=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def line(sold_at: datetime, sku: str = "A", channel: str = "web", quantity: int = 1) -> OrderLine:
    return OrderLine(channel, f"o-{sold_at.timestamp()}", "1", sku, quantity, "open", sold_at)


class Recorder:
    def __init__(self) -> None:
        self.drifts: list[tuple[Drift, int | None]] = []

    def __call__(self, drifts: Sequence[Drift], corrections: Mapping[tuple[str, str], int]) -> None:
        self.drifts += [(d, corrections.get((d.channel, d.sku))) for d in drifts]


def held(recorder: Recorder) -> Shortfalls:
    shortfalls = Shortfalls(recorder)
    drift = Drift("web", "A", 9, 6, DriftCause.MANUAL_EDIT)
    assert Shortfalls.below(drift)
    shortfalls.hold(drift, READ, at(0), 9)
    return shortfalls


@pytest.mark.parametrize(
    ("sales", "cause"),
    [
        ([line(at(9))], DriftCause.MISSED_ORDER),  # made before the read, reported after it
        ([line(READ.replace(microsecond=0))], DriftCause.MISSED_ORDER),  # the read's own second
        ([line(at(12))], DriftCause.MANUAL_EDIT),  # surely after the read: explains nothing
        ([line(at(9), sku="B")], DriftCause.MANUAL_EDIT),  # another listing
        ([line(at(9), channel="shop")], DriftCause.MANUAL_EDIT),
        ([], DriftCause.MANUAL_EDIT),
    ],
)
def test_a_covering_poll_decides(sales: list[OrderLine], cause: DriftCause) -> None:
    recorder = Recorder()
    shortfalls = held(recorder)
    shortfalls.sold(sales)
    shortfalls.polled("web", at(12), None)
    assert [(d.cause, d.expected, d.observed, c) for d, c in recorder.drifts] == [(cause, 9, 6, 9)]
    assert shortfalls.held == {}


@pytest.mark.parametrize(
    ("channel", "started", "since"),
    [
        ("web", READ + timedelta(seconds=0.5), None),  # too soon: a sale of the read's second may not be in
        ("shop", at(12), None),  # another channel's poll
        ("web", at(12), at(5)),  # from a time after the baseline: earlier orders may not be in
    ],
)
def test_a_poll_that_does_not_cover_the_read_decides_nothing(
    channel: str, started: datetime, since: datetime | None
) -> None:
    recorder = Recorder()
    shortfalls = held(recorder)
    shortfalls.polled(channel, started, since)
    assert recorder.drifts == [] and list(shortfalls.held) == [("web", "A")]


def test_the_next_reconcile_decides_what_is_left() -> None:
    recorder = Recorder()
    shortfalls = held(recorder)
    shortfalls.sold([line(at(8))])
    shortfalls.flush()
    assert [d.cause for d, _ in recorder.drifts] == [DriftCause.MISSED_ORDER]
    shortfalls.flush()
    assert len(recorder.drifts) == 1


def test_sales_taken_in_before_it_was_held_explain_it() -> None:
    recorder = Recorder()
    shortfalls = Shortfalls(recorder)
    shortfalls.hold(Drift("web", "A", 9, 6, DriftCause.MANUAL_EDIT), READ, at(0), 9, explained=2)
    shortfalls.polled("web", at(12), None)
    assert [d.cause for d, _ in recorder.drifts] == [DriftCause.MISSED_ORDER]


def test_only_a_level_below_the_range_waits() -> None:
    assert not Shortfalls.below(Drift("web", "A", 6, 9, DriftCause.MANUAL_EDIT))
    assert not Shortfalls.below(Drift("web", "A", 9, 6, DriftCause.MISSED_ORDER))
    assert not Shortfalls.below(Drift("web", "A", None, 6, DriftCause.UNKNOWN_BASELINE))
