"""Tiny's settings: the per-minute budget, what is refused and why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.connectors.tiny.support import settings


def test_defaults_fit_the_smallest_plan() -> None:
    """By default syncd takes at most 30 requests a minute (the lowest plan's whole limit)."""
    s = settings(requests_per_minute=30, burst=3)
    assert s.requests_per_second * 60 + s.burst == 30
    assert s.base_url.endswith("/public-api/v3")


@given(st.integers(min_value=4, max_value=100_000), st.data())
def test_no_minute_ever_exceeds_the_budget(per_minute: int, data: st.DataObject) -> None:
    """A full bucket plus a minute of refill never exceeds requests_per_minute."""
    burst = data.draw(st.integers(min_value=1, max_value=per_minute - 1))
    s = settings(requests_per_minute=per_minute, burst=burst)
    assert s.requests_per_second * 60 + s.burst <= per_minute + 1e-9


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"rate_limit": 2.0}, "requests_per_minute"),
        ({"requests_per_minute": 10, "burst": 10}, "burst"),
        ({"requests_per_minute": 2}, "requests_per_minute"),
        ({"contact_id": 0}, "contact_id"),
        ({"base_url": "ftp://tiny"}, "base_url"),
        ({"page_size": 500}, "page_size"),
        ({"deposits": ["main"]}, "deposits"),
        ({"deposits": []}, "deposits"),
        ({"deposits": [0]}, "deposits"),
        ({"deposits": [1, 1]}, "deposits names 1 more than once"),
        ({"deposits": [1], "order_deposit": 2}, "order_deposit 2 must be one of deposits"),
    ],
)
def test_bad_settings_are_refused_by_name(overrides: dict[str, object], problem: str) -> None:
    """Each bad value is refused with an error naming the setting."""
    with pytest.raises(ValidationError, match=problem):
        settings(**overrides)


def test_the_client_secret_never_shows() -> None:
    """The client secret and refresh token are secrets: not in the settings' text."""
    s = settings(refresh_token="rt-very-secret")
    assert "tiny-test-secret" not in repr(s) and "rt-very-secret" not in repr(s)
