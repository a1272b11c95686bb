"""Prometheus metrics of one daemon, on a registry of its own (so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _LedgerCollector(Collector):
    """Reads the ledger sizes at scrape time, so the figures are never stale."""

    def __init__(self, counts: Callable[[], dict[str, int]]):
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("syncd_ledger_rows", "Rows in the ledger by kind.", labels=["kind"])
        try:
            counts = self._counts()
        except Exception:
            counts = {}
        for kind, value in sorted(counts.items()):
            family.add_metric([kind], value)
        yield family


CIRCUIT_STATES = ("closed", "open", "half_open")


class _ConnectorCollector(Collector):
    """Each connector's circuit breaker and daily API budget, read at scrape time from the same
    reading /api/status shows (name -> its ``circuit``, ``circuit_failures`` and ``api_budget``)."""

    def __init__(self, read: Callable[[], Mapping[str, Mapping[str, Any]]]):
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "syncd_connector_circuit_state",
            "1 for the state the connector's circuit breaker is in (closed, open, half_open), 0 for the others.",
            labels=["connector", "state"],
        )
        failures = GaugeMetricFamily(
            "syncd_connector_circuit_failures",
            "Transient failures in a row counted by the connector's circuit breaker.",
            labels=["connector"],
        )
        used = GaugeMetricFamily(
            "syncd_connector_api_requests_today",
            "Requests counted today against the connector's daily API budget.",
            labels=["connector"],
        )
        allowed = GaugeMetricFamily(
            "syncd_connector_api_daily_budget",
            "Requests a day the connector may make (syncd's share of the account's budget).",
            labels=["connector"],
        )
        for name, reading in sorted(self._read().items()):
            if reading.get("circuit") is not None:
                for known in CIRCUIT_STATES:
                    state.add_metric([name, known], 1 if reading["circuit"] == known else 0)
                failures.add_metric([name], reading.get("circuit_failures") or 0)
            budget = reading.get("api_budget") or {}
            if isinstance(budget.get("used_today"), int | float):
                used.add_metric([name], budget["used_today"])
            if isinstance(budget.get("daily_budget"), int | float):
                allowed.add_metric([name], budget["daily_budget"])
        yield from (state, failures, used, allowed)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter(
            "syncd_cycles", "Cycles run, by kind and outcome.", ["kind", "outcome"], registry=r
        )
        self.pushes = Counter(
            "syncd_pushes", "Quantity pushes, by channel and outcome.", ["channel", "outcome"], registry=r
        )
        self.drift = Counter(
            "syncd_drift", "Drift detected, by channel and cause.", ["channel", "cause"], registry=r
        )
        self.errors = Counter(
            "syncd_connector_errors",
            "Connector failures, by connector and class.",
            ["connector", "error"],
            registry=r,
        )
        self.orders = Counter(
            "syncd_order_lines_ingested", "New order lines recorded, by channel.", ["channel"], registry=r
        )
        self.propagation = Histogram(
            "syncd_propagation_seconds",
            "Time from ingesting a sale to the last channel acknowledging its new quantity.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.up = Gauge(
            "syncd_connector_up", "1 when the connector's last call succeeded.", ["connector"], registry=r
        )

    def watch_ledger(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_LedgerCollector(counts))

    def watch_connectors(self, read: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.registry.register(_ConnectorCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
