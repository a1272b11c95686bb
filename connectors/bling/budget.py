"""syncd's share of a Bling account's request budget: per second (a token bucket) and per day.

Bling counts 120,000 requests a day per account, shared with every app the seller runs. The daily
share is counted here; stock reads stop at ``1 - movement_reserve`` of it so that recording sales
(calls made inside ``urgent_calls()``) always has room, and reads slow down once they pass the pace
that would make the share last until Bling's day ends (midnight in Brasília).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

from connectors.http import RateLimiter, calls_are_urgent

BRASILIA = timezone(timedelta(hours=-3))  # no daylight saving time since 2019
PACE_SLACK = 0.1  # reads may run this share of the day's budget ahead of an even pace


class DailyExhausted(Exception):
    """The day's share (for this kind of call) is spent; ``retry_after`` seconds until Bling's new day."""

    def __init__(self, what: str, retry_after: float):
        self.retry_after = retry_after
        super().__init__(what)


class BlingBudget(RateLimiter):
    """A RateLimiter that also counts the day's calls and keeps the tail of the day for sales."""

    def __init__(
        self,
        per_second: float,
        per_day: int,
        movement_reserve: float,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        # Burst 1: in any second at most 1 + per_second calls go out, inside Bling's 3 for a share up
        # to 2/3; above it Bling answers 429 now and then, which waits a second and retries.
        super().__init__(per_second, 1, clock=clock, sleep=sleep)
        self.per_day = per_day
        self.reads_per_day = int(per_day * (1 - movement_reserve))
        self._now = now
        self._day = self._today()
        self.used_today = 0

    def _today(self) -> str:
        return self._now().astimezone(BRASILIA).date().isoformat()

    def seconds_to_new_day(self) -> float:
        local = self._now().astimezone(BRASILIA)
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(1.0, (midnight - local).total_seconds())

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self.used_today = today, 0

    def check(self) -> None:
        """Raise DailyExhausted if the call about to be made has no room left today."""
        self._roll()
        urgent = calls_are_urgent()
        limit = self.per_day if urgent else self.reads_per_day
        if self.used_today >= limit:
            kind = "recording sales" if urgent else "stock reads"
            raise DailyExhausted(
                f"today's request budget for {kind} is spent ({self.used_today} of {limit})",
                self.seconds_to_new_day(),
            )

    def exhausted(self) -> None:
        """Bling said the account's day is over (429, period day): stop until its new day."""
        self._roll()
        self.used_today = max(self.used_today, self.per_day)

    def read_pace_wait(self) -> float:
        """Seconds a read should wait so that reads spread over what is left of the day (0: none)."""
        left = self.seconds_to_new_day()
        elapsed_share = 1 - left / 86_400
        allowed = self.reads_per_day * min(1.0, elapsed_share + PACE_SLACK)
        if self.used_today < allowed:
            return 0.0
        remaining = max(1, self.reads_per_day - self.used_today)
        return min(60.0, left / remaining)

    async def acquire(self, cost: float = 1.0) -> None:
        if not calls_are_urgent():
            wait = self.read_pace_wait()
            if wait:
                await self._sleep(wait)
        await super().acquire(cost)
        self._roll()
        self.used_today += 1

    def status(self) -> dict[str, object]:
        self._roll()
        return {
            "used_today": self.used_today,
            "daily_budget": self.per_day,
            "reads_budget": self.reads_per_day,
            "per_second": self.rate,
            "day": self._day,
            "resets_in_seconds": round(self.seconds_to_new_day()),
        }
