"""What the daemon did lately: its runs with their durations, and sales and pushes over time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from syncd.status.times import iso
from syncd.store import RunRow


def run_rows(rows: Iterable[RunRow], now: datetime) -> list[dict[str, Any]]:
    """Runs with their duration; one not finished is in progress (counts come at its end)."""
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "in_progress": r.finished_at is None,
            "duration_seconds": round(((r.finished_at or now) - r.started_at).total_seconds(), 3),
            "counts": {k: v for k, v in sorted(r.counts.items()) if v},
            "error": r.error,
        }
        for r in rows
    ]


def activity(
    start: datetime,
    size: float,
    counts: Mapping[tuple[str, int], tuple[int, int]],
    now: datetime,
    buckets: int,
) -> dict[str, Any]:
    """The chart's series from history counted per time slice ((kind, slice) -> (events, units)):
    units sold and pushes sent per slice."""
    return {
        "start": iso(start),
        "end": iso(now),
        "bucket_seconds": round(size, 1),
        "sales": [counts.get(("order", i), (0, 0))[1] for i in range(buckets)],
        "pushes": [counts.get(("push", i), (0, 0))[0] for i in range(buckets)],
    }
