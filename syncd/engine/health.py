"""Each connector's health: every call goes through here, so /ready and /api/status know which
connector failed, when, and whether it needs a human.

An outage is logged as state changes, not per call: one ``connector.failed`` line when a connector
starts failing (and one more if its credentials are then refused), a ``connector.still_failing``
reminder at most every ``REMIND_EVERY`` while it goes on, and one ``connector.recovered``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from syncd.engine.reports import CycleReport, iso
from syncd.errors import AuthError, ConnectorError
from syncd.metrics import Metrics

log = structlog.get_logger("syncd.engine")

REMIND_EVERY = timedelta(minutes=10)

T = TypeVar("T")


@dataclass
class ConnectorHealth:
    """What /ready and /api/status say about one connector."""

    name: str
    kind: str  # "erp" | "channel"
    type: str
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing: bool = False
    needs_human: bool = False
    failing_since: datetime | None = None
    failures: int = 0  # failed calls since failing_since
    logged_at: datetime | None = None  # the last line about this failure

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.type,
            "healthy": not self.failing and self.last_success is not None,
            "needs_human": self.needs_human,
            "last_success": iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
        }


class Health:
    """The health of every connector, and the one way to call one."""

    def __init__(
        self,
        connectors: Iterable[ConnectorHealth],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.connectors = {h.name: h for h in connectors}
        self.metrics = metrics
        self.clock = clock

    def __getitem__(self, name: str) -> ConnectorHealth:
        return self.connectors[name]

    async def call(self, name: str, operation: Awaitable[T], report: CycleReport) -> T | None:
        """Await a connector call; on failure record it against the connector and return None."""
        try:
            result = await operation
        except ConnectorError as exc:
            self.failed(name, exc)
            report.errors.append(str(exc))
            return None
        self.succeeded(name)
        return result

    def succeeded(self, name: str) -> None:
        health = self.connectors[name]
        now = self.clock()
        if health.failing:
            since = health.failing_since or now
            log.info(
                "connector.recovered",
                connector=name,
                failed_for=round((now - since).total_seconds(), 1),
                failures=health.failures,
            )
        health.failing = False
        health.needs_human = False
        health.failing_since = health.logged_at = None
        health.failures = 0
        health.last_success = self.clock()
        self.metrics.up.labels(name).set(1)

    def failed(self, name: str, exc: ConnectorError) -> None:
        health = self.connectors[name]
        now = self.clock()
        refused = isinstance(exc, AuthError)
        error = {"error": str(exc), "error_class": type(exc).__name__}
        if not health.failing or (refused and not health.needs_human):
            log.warning("connector.failed", connector=name, needs_human=refused, **error)
            health.failing_since = health.failing_since if health.failing else now
            health.logged_at = now
        elif health.logged_at is None or now - health.logged_at >= REMIND_EVERY:
            since = health.failing_since or now
            log.warning(
                "connector.still_failing",
                connector=name,
                since=iso(since),
                failures=health.failures + 1,
                needs_human=health.needs_human or refused,
                **error,
            )
            health.logged_at = now
        health.failures += 1
        health.failing = True
        health.needs_human = refused
        health.last_error = str(exc)
        health.last_error_at = now
        self.metrics.up.labels(name).set(0)
        self.metrics.errors.labels(name, type(exc).__name__).inc()

    def unavailable(self) -> frozenset[str]:
        """The channels whose last call failed."""
        return frozenset(n for n, h in self.connectors.items() if h.kind == "channel" and h.failing)

    def readiness(self, max_age: timedelta) -> list[str]:
        """Reasons the daemon is not ready (empty when ready)."""
        reasons = []
        now = self.clock()
        for h in self.connectors.values():
            if h.needs_human:
                reasons.append(f"{h.name}: credentials refused, needs a human: {h.last_error}")
            elif h.last_success is None:
                reasons.append(
                    f"{h.name}: no successful call yet" + (f" ({h.last_error})" if h.last_error else "")
                )
            elif now - h.last_success > max_age:
                reasons.append(f"{h.name}: last success {h.last_success.isoformat()} is older than {max_age}")
        return reasons
