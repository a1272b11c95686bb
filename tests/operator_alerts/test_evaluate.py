"""The alert evaluator: open once, resolve once, cooldown against flapping, rows kept and dropped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.alerts import Condition, Transition, apply, evaluate
from syncd.store.store import AlertRow

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
COOL = timedelta(minutes=15)
DOWN = Condition("down:shop", "connector_down", "shop has been failing")


def row(key: str = "down:shop", *, resolved: datetime | None = None, unsent: str = "") -> AlertRow:
    return AlertRow(key, "connector_down", "shop has been failing", T0, resolved, unsent, 0)


@pytest.mark.parametrize(
    ("active", "alerts", "now", "expected"),
    [
        ([DOWN], {}, T0, [("down:shop", "open")]),
        ([DOWN], {"down:shop": row()}, T0 + timedelta(hours=1), []),
        ([], {"down:shop": row()}, T0, [("down:shop", "resolved")]),
        ([], {"down:shop": row(resolved=T0)}, T0 + timedelta(hours=1), []),
        ([DOWN], {"down:shop": row(resolved=T0)}, T0 + timedelta(minutes=5), []),
        ([DOWN], {"down:shop": row(resolved=T0)}, T0 + COOL, [("down:shop", "open")]),
        ([DOWN], {"down:shop": row(resolved=T0, unsent="resolved")}, T0 + COOL, []),
    ],
    ids=[
        "new",
        "still-open",
        "cleared",
        "stays-resolved",
        "flap-held",
        "after-cooldown",
        "resolve-still-owed",
    ],
)
def test_evaluate(
    active: list[Condition], alerts: dict[str, AlertRow], now: datetime, expected: list[tuple[str, str]]
) -> None:
    """A condition opens once, resolves once, and reopens only after its cooldown and its resolve went out."""
    assert [(t.key, t.action) for t in evaluate(active, alerts, now, COOL)] == expected


def test_apply_owes_the_messages_of_each_transition() -> None:
    """An open owes an open message; a resolve of a delivered open owes a resolved message."""
    rows, drop = apply({}, [Transition("k", "x", "text", "open", T0)], T0, COOL)
    assert rows == [AlertRow("k", "x", "text", T0, None, "open", 0)]
    delivered = {"k": AlertRow("k", "x", "text", T0, None, "", 2)}
    rows, drop = apply(delivered, [Transition("k", "x", "text", "resolved", T0 + COOL)], T0 + COOL, COOL)
    assert rows == [AlertRow("k", "x", "text", T0, T0 + COOL, "resolved", 0)] and drop == []


def test_a_condition_that_cleared_before_its_alert_went_out_sends_nothing() -> None:
    """Resolving an alert whose open message was never delivered owes neither message."""
    owed = {"k": AlertRow("k", "x", "text", T0, None, "open", 3)}
    rows, _ = apply(owed, [Transition("k", "x", "text", "resolved", T0)], T0, COOL)
    assert rows[0].unsent == "" and rows[0].resolved_at == T0


def test_resolved_rows_are_dropped_after_their_cooldown() -> None:
    """A delivered resolve is forgotten once the cooldown has passed; one still owed is kept."""
    alerts = {"a": row("a", resolved=T0), "b": row("b", resolved=T0, unsent="resolved"), "c": row("c")}
    assert apply(alerts, [], T0 + COOL, COOL) == ([], ["a"])
    assert apply(alerts, [], T0 + COOL - timedelta(seconds=1), COOL) == ([], [])


KEYS = ["a", "b", "c"]
step = st.tuples(
    st.sets(st.sampled_from(KEYS)),  # the conditions active at this check
    st.integers(0, 20),  # minutes since the previous check
    st.sets(st.sampled_from(KEYS)),  # receivers reachable for these keys' messages
)


@given(st.lists(step, max_size=40))
def test_never_two_opens_without_a_resolve_between(steps: list[tuple[set[str], int, set[str]]]) -> None:
    """Whatever conditions come and go and whichever deliveries fail, the messages delivered for one
    condition alternate open, resolved, open..., and the open alerts are exactly the active conditions
    (but for the cooldown)."""
    alerts: dict[str, AlertRow] = {}
    now = T0
    delivered: dict[str, list[str]] = {key: [] for key in KEYS}
    for active_keys, minutes, reachable in steps:
        now += timedelta(minutes=minutes)
        active = [Condition(k, "kind", f"text {k}") for k in sorted(active_keys)]
        rows, drop = apply(alerts, evaluate(active, alerts, now, COOL), now, COOL)
        alerts.update({r.key: r for r in rows})
        for key in drop:
            del alerts[key]
        for key in active_keys:  # and every active condition is open, unless held back on purpose
            held = alerts[key].resolved_at
            assert held is None or now - held < COOL or alerts[key].unsent == "resolved"
        for key, r in list(alerts.items()):
            if r.unsent and key in reachable:  # the delivery round of Alerter.deliver
                delivered[key].append(r.unsent)
                alerts[key] = AlertRow(r.key, r.kind, r.text, r.opened_at, r.resolved_at, "", r.attempts)
        assert {k for k, r in alerts.items() if r.resolved_at is None} <= active_keys
    for key, messages in delivered.items():
        assert all(a != b for a, b in itertools.pairwise(messages)), (key, messages)
        assert messages[:1] in ([], ["open"])
