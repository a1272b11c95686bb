"""Unseen sales: what reads show sold, explained by reports or released by an order poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.unseen import UnseenSales

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def measured(unseen: UnseenSales, units: int, *, baseline: float | None = 0.0, read: float = 10.0) -> None:
    unseen.measured(
        "tiktok",
        "A",
        units,
        baseline=None if baseline is None else at(baseline),
        read_from=at(read),
        read_to=at(read + 0.1),
    )


@pytest.mark.parametrize(
    ("sold_at", "explains"),
    [
        (5.5, True),  # a precise time between the baseline and the read
        (9.95, True),  # precise, just before the read
        (10.05, False),  # precise, after the read began: the read may not show it
        (9.0, True),  # a whole second that ends before the read
        (9.9999, True),
        (10.0, False),  # the whole second 10 may be after the read began at 10.0
        (-0.5, False),  # before the baseline: the write overwrote it, the read never showed it
    ],
)
def test_a_report_explains_a_unit_only_if_surely_made_between_baseline_and_read(
    sold_at: float, explains: bool
) -> None:
    unseen = UnseenSales()
    measured(unseen, 3)
    unseen.reported("tiktok", "A", 1, at(sold_at))
    assert unseen.held("A") == (2 if explains else 3)


def test_reports_of_other_listings_explain_nothing() -> None:
    unseen = UnseenSales()
    measured(unseen, 2)
    unseen.reported("shopify", "A", 1, at(5))
    unseen.reported("tiktok", "B", 1, at(5))
    assert unseen.held("A") == 2 and unseen.held("B") == 0


def test_a_later_read_on_the_same_baseline_replaces_the_earlier_one() -> None:
    unseen = UnseenSales()
    measured(unseen, 4, read=10)
    measured(unseen, 1, read=12)  # three of them were reported meanwhile
    assert unseen.held("A") == 1
    measured(unseen, 0, read=14)
    assert unseen.held("A") == 0


def test_a_new_baseline_keeps_the_units_of_reads_before_it() -> None:
    unseen = UnseenSales()
    measured(unseen, 4, baseline=0, read=10)
    measured(unseen, 2, baseline=10.2, read=15)  # written at 10.2, read again at 15
    assert unseen.held("A") == 6
    unseen.reported("tiktok", "A", 1, at(8))  # explains a unit of the first read only
    unseen.reported("tiktok", "A", 1, at(12.5))  # of the second read only
    assert unseen.held("A") == 4


def test_a_sale_explains_no_more_units_than_it_has() -> None:
    unseen = UnseenSales()
    measured(unseen, 2)
    unseen.reported("tiktok", "A", 5, at(5))
    assert unseen.held("A") == 0


@pytest.mark.parametrize(
    ("poll_started", "held"),
    [(10.5, 3), (11.0, 3), (11.2, 0), (60.0, 0)],  # the read ended at 10.1
)
def test_an_order_poll_started_over_a_second_after_the_read_releases_its_units(
    poll_started: float, held: int
) -> None:
    unseen = UnseenSales()
    measured(unseen, 3)
    unseen.polled("shopify", at(60))  # another channel's poll settles nothing here
    assert unseen.held("A") == 3
    unseen.polled("tiktok", at(poll_started))
    assert unseen.held("A") == held


def test_a_poll_from_a_time_of_its_own_settles_only_reads_whose_sales_it_covers() -> None:
    unseen = UnseenSales()
    measured(unseen, 2, baseline=5, read=10)
    unseen.measured("tiktok", "B", 3, baseline=at(1), read_from=at(10), read_to=at(10.1))
    unseen.polled("tiktok", at(20), since=at(3))  # orders from 3 s on: B's sales since 1 s are not all in it
    assert unseen.held("A") == 0 and unseen.held("B") == 3


def test_waiting_names_the_channels_a_poll_would_settle_now() -> None:
    unseen = UnseenSales()
    measured(unseen, 3, read=10)
    assert unseen.waiting({"A"}, at(10.5)) == {}
    assert unseen.waiting({"A"}, at(11.5)) == {"tiktok": at(-1)}  # a second before the baseline
    assert unseen.waiting({"B"}, at(11.5)) == {}
    measured(unseen, 1, baseline=None, read=20)
    assert unseen.waiting({"A"}, at(21.5)) == {"tiktok": None}  # never written: from the cursor


events = st.lists(
    st.one_of(
        st.tuples(
            st.just("read"),
            st.integers(-3, 20),
            st.sampled_from([None, 0.0, 5.0, 9.0]),
            st.floats(0, 30),
        ),
        st.tuples(st.just("sale"), st.integers(1, 3), st.floats(-2, 30), st.just(0.0)),
        st.tuples(st.just("poll"), st.just(0), st.floats(0, 40), st.just(0.0)),
    ),
    max_size=40,
)


@given(events)
def test_held_units_never_go_negative_nor_above_what_reads_showed(steps: list[tuple]) -> None:
    unseen = UnseenSales()
    shown_total = 0
    for kind, number, moment, read in steps:
        if kind == "read":
            measured(unseen, number, baseline=moment, read=read)
            shown_total += max(0, number)
        elif kind == "sale":
            unseen.reported("tiktok", "A", number, at(moment))
        else:
            unseen.polled("tiktok", at(moment))
        assert 0 <= unseen.held("A") <= shown_total
    unseen.polled("tiktok", at(100))
    assert unseen.held("A") == 0


def test_units_a_write_may_forget_are_explained_by_sales_between_its_read_and_itself() -> None:
    unseen = UnseenSales()
    unseen.may_be_forgotten("tiktok", "A", 3, read_at=at(10.2), written_at=at(10.45))
    unseen.may_be_forgotten("tiktok", "A", 0, read_at=at(11), written_at=at(11.2))  # nothing to hold
    assert unseen.held("A") == 3
    unseen.reported("tiktok", "A", 1, at(10.3))  # made after the read, before the write: forgotten
    unseen.reported("tiktok", "A", 1, at(10.0))  # before the read: the read showed it
    unseen.reported("tiktok", "A", 1, at(10.5))  # after the write: it lowered the listing
    assert unseen.held("A") == 2
    unseen.polled("tiktok", at(12))
    assert unseen.held("A") == 0
