"""What the engine tells the outside: the events it applies, /api/status and readiness. A part of
the Engine (mixed in), kept apart so that the engine itself stays about running the flows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.base import ChannelConnector, ErpConnector
from syncd.config import EventSettings
from syncd.engine.health import Health
from syncd.engine.outage import ErpOutage
from syncd.engine.planner import LowStock, Planner
from syncd.engine.reports import Propagation
from syncd.errors import StoreError
from syncd.store import Store


class EngineStatus:
    # Set by the Engine.
    planner: Planner
    propagation: Propagation
    health: Health
    store: Store
    erp: ErpConnector
    channels: Mapping[str, ChannelConnector]
    low_stock: list[LowStock]
    outage: ErpOutage
    clock: Callable[[], datetime]

    # ------------------------------------------------------------------ events
    @property
    def events(self) -> list[EventSettings]:
        return self.planner.events

    def active_events(self, now: datetime) -> list[EventSettings]:
        return self.planner.active_events(now)

    def save_event(self, event: EventSettings) -> None:
        """Add or replace an API event (by name), drop expired ones, persist."""
        self.planner.save_event(event)

    def delete_event(self, name: str) -> bool:
        return self.planner.delete_event(name)

    # ------------------------------------------------------------------ reporting
    def propagation_percentiles(self) -> dict[str, float | int | None]:
        """p50/p95/p99 of the recent sale-to-all-channels propagation times, in seconds."""
        return self.propagation.percentiles()

    def status(self) -> dict[str, Any]:
        """Everything /api/status shows (never a secret)."""
        return {
            "propagation_seconds": self.propagation_percentiles(),
            "events": [
                {**e.model_dump(mode="json"), "active": e.active(self.clock())}
                for e in self.events
                if e.end > self.clock()
            ],
            "connectors": [self._connector_status(h.as_dict()) for h in self.health.connectors.values()],
            "low_stock": [
                {"sku": s.sku, "ats": s.ats, "threshold": s.threshold, "targets": s.targets}
                for s in self.low_stock
            ],
            "quarantine": self.quarantine_status(),
            "erp_outage": self.outage.status(),
        }

    def quarantine_status(self, latest: int = 5) -> dict[str, Any]:
        """Orders and stock records refused as malformed or out of bounds: how many, the latest few."""
        try:
            counts = self.store.quarantine_counts()
            rows = self.store.quarantined(latest)
        except StoreError as exc:
            return {"error": str(exc)}
        return {**counts, "latest": [row.as_dict() for row in rows]}

    def _connector_status(self, health: dict[str, Any]) -> dict[str, Any]:
        """A connector's health with its circuit breaker and, where its API has one, its daily budget."""
        connector = self.erp if health["name"] == self.erp.name else self.channels.get(health["name"])
        if connector is None:
            return health
        circuit = connector.circuit
        return {
            **health,
            "circuit": None if circuit is None else circuit.state,
            "api_budget": connector.api_budget(),
        }

    def readiness(self, max_age: timedelta) -> list[str]:
        """Reasons the daemon is not ready (empty when ready), ERP outage mode included."""
        return self.health.readiness(max_age) + self.outage.readiness()

