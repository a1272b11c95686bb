"""Drift as the operator reads it: grouped by cause, each correction spelled out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from syncd.status.times import iso
from syncd.store import DriftRow

CAUSES = {
    "missed_order": "missed order (the channel sold units syncd never heard of)",
    "manual_edit": "manual edit on the channel",
    "missed_cancellation": "missed cancellation (the channel restocked a cancelled order)",
    "unknown_baseline": "first sighting (syncd had never set this listing)",
}


def correction_label(row: DriftRow) -> str:
    """What reconcile did about a drift, spelled out (a missing correction is not a dash)."""
    if row.correction is None:
        return f"already right: left at {row.observed} (its target)"
    if row.correction == row.observed:
        return f"kept at {row.observed}"
    return f"set to {row.correction}"


def drift_summary(rows: Iterable[DriftRow]) -> list[dict[str, Any]]:
    """Drift grouped by cause: how often, on how many listings, how far off, and what was done."""
    groups: dict[str, list[DriftRow]] = defaultdict(list)
    for row in rows:
        groups[row.cause].append(row)
    summary = []
    for cause, found in groups.items():
        ordered = sorted(found, key=lambda r: r.at, reverse=True)
        summary.append(
            {
                "cause": cause,
                "meaning": CAUSES.get(cause, cause),
                "count": len(found),
                "listings": len({(r.channel, r.sku) for r in found}),
                "units_off": sum(abs(r.observed - r.expected) for r in found if r.expected is not None),
                "corrected": sum(1 for r in found if r.correction is not None and r.correction != r.observed),
                "already_right": sum(1 for r in found if r.correction is None or r.correction == r.observed),
                "last_at": iso(ordered[0].at),
                "latest": [drift_row(r) for r in ordered[:5]],
            }
        )
    return sorted(summary, key=lambda g: (-g["count"], g["cause"]))


def drift_row(row: DriftRow) -> dict[str, Any]:
    return {
        "at": iso(row.at),
        "channel": row.channel,
        "sku": row.sku,
        "expected": row.expected,
        "observed": row.observed,
        "cause": row.cause,
        "correction": row.correction,
        "done": correction_label(row),
    }
