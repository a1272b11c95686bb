"""What a cycle did (CycleReport) and how fast sales reach every channel (propagation times)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from syncd.core import Drift, PlannedPush
from syncd.metrics import Metrics

log = structlog.get_logger("syncd.engine")

Key = tuple[str, str]  # (channel, sku)


@dataclass
class CycleReport:
    """What one cycle did: counts, the pushes it planned, the drift it saw, the errors it met."""

    kind: str
    counts: Counter[str] = field(default_factory=Counter)
    pushes: list[PlannedPush] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


def finish(report: CycleReport, metrics: Metrics) -> CycleReport:
    """Count the cycle and log its outcome once."""
    outcome = "error" if report.errors else "ok"
    metrics.cycles.labels(report.kind, outcome).inc()
    event = "cycle.finished" if not report.errors else "cycle.failed"
    log.info(event, kind=report.kind, errors=report.errors or None, **dict(report.counts))
    return report


def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``samples``; 0 when there are none."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class _Sale:
    """A sale (or cancellation) on its way to every channel: the channels that still have to
    acknowledge a new quantity (None until the sale has been planned)."""

    ingested_at: datetime
    channels: set[str] | None = None


class Propagation:
    """Times each sale from its ingestion until every channel that needed a new quantity
    acknowledged one; keeps the recent samples."""

    def __init__(self, metrics: Metrics, clock: Callable[[], datetime]) -> None:
        self.metrics = metrics
        self.clock = clock
        self.samples: deque[float] = deque(maxlen=2000)
        self._awaiting: defaultdict[str, list[_Sale]] = defaultdict(list)

    def ingested(self, sku: str, now: datetime) -> None:
        self._awaiting[sku].append(_Sale(now))

    def planned(self, skus: Iterable[str] | None, pushes: Sequence[PlannedPush]) -> None:
        """Sales waiting for a plan learn which channels must acknowledge a new quantity."""
        needed: defaultdict[str, set[str]] = defaultdict(set)
        for push in pushes:
            needed[push.sku].add(push.channel)
        for sku in list(self._awaiting) if skus is None else [s for s in skus if s in self._awaiting]:
            for sale in self._awaiting[sku]:
                if sale.channels is None:
                    sale.channels = set(needed.get(sku, ()))
            self._settle(sku)

    def acknowledged(self, channel: str, skus: Iterable[str]) -> None:
        for sku in skus:
            for sale in self._awaiting.get(sku, ()):
                if sale.channels is not None:
                    sale.channels.discard(channel)
            self._settle(sku, last=channel)

    def _settle(self, sku: str, last: str | None = None) -> None:
        """A sale has propagated once every channel that needed a new quantity acknowledged it."""
        now = self.clock()
        waiting = []
        for sale in self._awaiting.get(sku, ()):
            if sale.channels is not None and not sale.channels:
                seconds = max(0.0, (now - sale.ingested_at).total_seconds())
                self.samples.append(seconds)
                self.metrics.propagation.observe(seconds)
                log.debug("sale.propagated", sku=sku, seconds=round(seconds, 3), last=last)
            else:
                waiting.append(sale)
        if waiting:
            self._awaiting[sku] = waiting
        else:
            self._awaiting.pop(sku, None)

    def percentiles(self) -> dict[str, float | int | None]:
        """p50/p95/p99 of the recent sale-to-all-channels propagation times, in seconds."""
        samples = sorted(self.samples)
        if not samples:
            return {"samples": 0, "p50": None, "p95": None, "p99": None}
        return {
            "samples": len(samples),
            **{f"p{round(q * 100)}": round(percentile(samples, q), 4) for q in (0.50, 0.95, 0.99)},
        }
