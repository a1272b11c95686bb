"""Pure parts of the Bling connector: webhook ordering and dedupe, the daily budget's day and pace,
and the settings' checks (table tests and Hypothesis properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.bling.budget import BlingBudget, DailyExhausted
from connectors.bling.webhooks import WebhookState
from connectors.http import urgent_calls
from tests.connectors.bling.conftest import bling_settings

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

deliveries = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 50)),  # (product, minutes after T0)
    max_size=40,
)


@given(deliveries)
def test_a_delivery_is_taken_exactly_when_no_later_one_was_taken_for_its_product(
    events: list[tuple[int, int]],
) -> None:
    """Whatever the order of arrival, a delivery is stale iff a newer one for the product came before it."""
    state = WebhookState()
    newest: dict[int, int] = {}
    for product, minute in events:
        stale = state.stale(product, T0 + timedelta(minutes=minute))
        assert stale == (product in newest and minute < newest[product])
        if not stale:
            newest[product] = minute


@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=30))
def test_each_event_id_is_taken_once(ids: list[str]) -> None:
    """The first delivery of an eventId is new; every later one is a duplicate."""
    state = WebhookState()
    seen: set[str] = set()
    for event_id in ids:
        assert state.duplicate(event_id) == (event_id in seen)
        seen.add(event_id)


def budget(at: datetime, per_day: int = 100, reserve: float = 0.2) -> BlingBudget:
    return BlingBudget(10.0, per_day, reserve, now=lambda: at)


@pytest.mark.parametrize(
    ("utc", "seconds"),
    [
        (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), 12 * 3600),  # noon in Brasília
        (datetime(2026, 12, 2, 2, 59, tzinfo=UTC), 60),  # 23:59 in Brasília
        (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), 24 * 3600),  # midnight in Brasília: a new day
    ],
)
def test_blings_day_ends_at_midnight_in_brasilia(utc: datetime, seconds: float) -> None:
    """The wait for a new day counts to the next midnight at UTC-3."""
    assert budget(utc).seconds_to_new_day() == pytest.approx(seconds)


@given(st.integers(0, 200), st.floats(0, 0.9))
def test_reads_stop_at_their_share_and_sales_at_the_whole_budget(used: int, reserve: float) -> None:
    """Reads are refused from (1 - reserve) of the day's budget on, sales only once all of it is used."""
    b = budget(T0, per_day=100, reserve=reserve)
    b.used_today = used

    def refused() -> bool:
        try:
            b.check()
        except DailyExhausted:
            return True
        return False

    assert refused() == (used >= b.reads_per_day)
    with urgent_calls():
        assert refused() == (used >= 100)


@pytest.mark.parametrize(
    ("hour_brasilia", "used", "waits"),
    [
        (12, 0, False),  # half the day gone, nothing used
        (12, 40, False),  # on pace (60% of the reads' 80 allowed with the slack)
        (12, 70, True),  # ahead of the pace
        (1, 20, True),  # an hour in, a quarter of the reads spent
        (23, 75, False),  # late in the day, still under the reads' share of 80
    ],
)
def test_reads_slow_down_when_they_run_ahead_of_an_even_pace(
    hour_brasilia: int, used: int, waits: bool
) -> None:
    """Reads wait (at most a minute) once they spent more than the day's elapsed share allows."""
    at = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=hour_brasilia + 3)
    b = budget(at, per_day=100, reserve=0.2)
    b.used_today = used
    wait = b.read_pace_wait()
    assert (wait > 0) == waits and 0 <= wait <= 60


def test_a_new_day_resets_the_count() -> None:
    """The day's count starts again from zero once Bling's day changes."""
    clock = {"at": datetime(2026, 12, 2, 2, 59, tzinfo=UTC)}
    b = BlingBudget(10.0, 100, 0.2, now=lambda: clock["at"])
    b.exhausted()
    assert b.status()["used_today"] == 100
    clock["at"] += timedelta(minutes=2)
    assert b.status()["used_today"] == 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"record_as": "order", "contact_id": None}, "contact_id"),
        ({"record_as": "movement", "deposits": []}, "movement_deposit or deposits"),
        ({"budget_share": 1.5}, "budget_share"),
        ({"token_calls_per_minute": 20}, "token_calls_per_minute"),
        ({"client_id": ""}, "client_id"),
        ({"balance_batch": 500}, "balance_batch"),
        ({"deposits": [1, 1]}, "deposits names 1 more than once"),
        ({"deposits": [1, 2], "movement_deposit": 3}, "movement_deposit 3 must be one of deposits"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(changes: dict[str, object], expected: str) -> None:
    """Settings that cannot work are refused with the key (or the missing one) named."""
    with pytest.raises(ValidationError, match=expected):
        bling_settings(**changes)


def test_the_budget_is_the_share_of_blings_limits() -> None:
    """By default syncd takes half of Bling's 3 requests/s and 120,000 a day."""
    settings = bling_settings(account_requests_per_second=3.0)
    assert (settings.requests_per_second, settings.requests_per_day) == (1.5, 60_000)
