"""Prometheus metrics of one daemon, on a registry of its own (so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
