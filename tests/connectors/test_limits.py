"""Plausibility limits on outside quantities, and the excerpt a quarantined item is shown by."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.limits import EXCERPT_CHARS, excerpt, quantity_problem, quarantine


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, None),
        (7, None),
        (1000, None),
        (1001, "must be an integer from 0 to 1000, got 1001 (int)"),
        (-1, "must be an integer from 0 to 1000, got -1 (int)"),
        ("oops", "must be an integer from 0 to 1000, got 'oops' (str)"),
        ("5", "must be an integer from 0 to 1000, got '5' (str)"),
        (1.5, "must be an integer from 0 to 1000, got 1.5 (float)"),
        (2.0, "must be an integer from 0 to 1000, got 2.0 (float)"),
        (True, "must be an integer from 0 to 1000, got True (bool)"),
        (None, "must be an integer from 0 to 1000, got None (NoneType)"),
        ([1], "must be an integer from 0 to 1000, got [1] (list)"),
    ],
)
def test_quantity_problem(value: Any, problem: str | None) -> None:
    """Only integers from 0 to the bound pass; the problem names the bound and the value with its type."""
    assert quantity_problem(value, 1000) == problem


@given(st.integers(), st.integers(min_value=1, max_value=10**12))
def test_quantity_problem_agrees_with_the_bounds(value: int, maximum: int) -> None:
    """An integer passes exactly when it lies in [0, maximum]."""
    assert (quantity_problem(value, maximum) is None) == (0 <= value <= maximum)


SECRETS = ["tok-123-secret", "buyer@example.com", "+44 700 900 123", "1 High Street"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    json_values,
    st.sampled_from(["access_token", "email", "phone", "shipping_address", "billing", "customer"]),
)
def test_excerpt_never_shows_credentials_or_buyer_details(filler: Any, key: str) -> None:
    """Whatever the rest of the payload, a value under a credential or buyer-detail key stays out,
    and the excerpt is never longer than its limit."""
    raw = {"id": 7, "filler": filler, "nested": [{key: SECRETS}], key: {"deep": SECRETS}}
    text = excerpt(raw)
    assert len(text) <= EXCERPT_CHARS
    assert not any(secret in text for secret in SECRETS)


def test_excerpt_keeps_what_explains_the_problem() -> None:
    """Ids, SKUs and quantities stay in the excerpt: they are what a person needs to see."""
    raw = {"id": 7, "line_items": [{"id": 70, "sku": "MUG-1", "quantity": "oops"}], "email": "a@b.c"}
    assert json.loads(excerpt(raw)) == {
        "id": 7,
        "line_items": [{"id": 70, "sku": "MUG-1", "quantity": "oops"}],
        "email": "…",
    }


def test_quarantine_reads_the_ref_when_it_can() -> None:
    """A readable id becomes the ref; a missing or odd one leaves it None."""
    assert quarantine("shop", "order", 12, "bad", {}).ref == "12"
    assert quarantine("shop", "order", "A-1", "bad", {}).ref == "A-1"
    assert quarantine("shop", "order", None, "bad", {}).ref is None
    assert quarantine("shop", "order", True, "bad", {}).ref is None
    assert quarantine("shop", "order", {"x": 1}, "bad", {}).ref is None
