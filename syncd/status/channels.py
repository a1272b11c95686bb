"""Each connector as the operator sees it: its state and lag, its circuit breaker and daily API
budget, and the outbox of pushes waiting for it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import Connector
from syncd.status.times import age_seconds, iso
from syncd.store import PushRow


def breaker(connector: Connector) -> dict[str, Any]:
    """A connector's circuit breaker (state, transient failures in a row, when it opened, when it
    tries again) and its daily API budget, read together: /api/status, /status and /metrics all
    show this one reading."""
    circuit = connector.circuit
    budget = connector.api_budget()
    return {
        "circuit": circuit.state if circuit else None,
        "circuit_failures": circuit.failures if circuit else None,
        "circuit_opened_at": iso(circuit.opened_at) if circuit else None,
        "circuit_next_trial_at": iso(circuit.next_trial_at) if circuit else None,
        "api_budget": dict(budget) if budget is not None else None,
    }


def breakers(connectors: Iterable[Connector]) -> dict[str, dict[str, Any]]:
    """``breaker`` of each connector, by name."""
    return {c.name: breaker(c) for c in connectors}


def with_breakers(
    connectors: Sequence[Mapping[str, Any]], readings: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The engine's connector entries, each with its breaker reading (which replaces the bare
    circuit state the engine gives, so every breaker field comes from the same moment)."""
    return [{**c, **readings.get(c["name"], {})} for c in connectors]


def connector_state(connector: Mapping[str, Any]) -> str:
    """A connector's health in a word or three, from the engine's entry for it."""
    if connector.get("healthy"):
        return "healthy"
    if connector.get("needs_human"):
        return "needs a human"
    if connector.get("last_success") is None and not connector.get("last_error"):
        return "starting"
    return "failing"


def channel_health(
    connectors: Sequence[Mapping[str, Any]], pushes: Iterable[PushRow], now: datetime
) -> list[dict[str, Any]]:
    """Each connector's state, with the age of its last success and what waits in its outbox."""
    waiting: dict[str, list[PushRow]] = defaultdict(list)
    for push in pushes:
        if push.state == "pending":
            waiting[push.channel].append(push)
    result = []
    for c in connectors:
        queued = waiting.get(c["name"], [])
        result.append(
            {
                **c,
                "state": connector_state(c),
                "lag_seconds": age_seconds(c.get("last_success"), now),
                "pending_pushes": len(queued),
                "oldest_pending_seconds": age_seconds(min((p.created_at for p in queued), default=None), now),
            }
        )
    return result


def outbox(
    pushes: Iterable[PushRow], health: Mapping[str, Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """What waits to be sent, oldest first, with why it waits (or why it was given up)."""
    rows = []
    for p in pushes:
        direction = "set" if p.compare is None else ("decrease" if p.target < p.compare else "increase")
        channel = health.get(p.channel, {})
        if p.state == "failed":
            why = f"given up after {p.attempts} attempts: {p.last_error or 'no reason recorded'}"
        elif p.attempts:
            why = f"retrying after {p.attempts} failed attempts: {p.last_error or 'no reason recorded'}"
        elif channel and not channel.get("healthy", True):
            why = f"channel {p.channel} is {'refusing credentials' if channel.get('needs_human') else 'failing'}"
        else:
            why = "queued: the channel's sender takes it next (decreases go first)"
        rows.append(
            {
                "id": p.id,
                "channel": p.channel,
                "sku": p.sku,
                "from": p.compare,
                "target": p.target,
                "direction": direction,
                "reason": p.reason,
                "state": p.state,
                "attempts": p.attempts,
                "waiting_seconds": age_seconds(p.created_at, now),
                "last_error": p.last_error or None,
                "why": why,
            }
        )
    return rows
