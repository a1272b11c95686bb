"""Times as the status data carries them: ISO strings, and ages in seconds against a given now."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def age_seconds(then: datetime | str | None, now: datetime) -> float | None:
    if then is None:
        return None
    when = datetime.fromisoformat(then) if isinstance(then, str) else then
    return round(max(0.0, (now - when).total_seconds()), 1)
