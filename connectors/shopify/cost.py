"""Shopify's calculated-cost leaky bucket, tracked from ``extensions.cost`` on every response.

Each answer says how many points the bucket holds and how fast it refills; before a query whose
expected cost exceeds what is left, the client waits for the bucket to refill instead of being
throttled. A query's expected cost is what the same operation last asked for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueryCost:
    """One response's ``extensions.cost``."""

    requested: float | None
    actual: float | None
    maximum: float
    available: float
    restore_rate: float

    @classmethod
    def parse(cls, extensions: Any) -> QueryCost | None:
        """The cost block of a response's ``extensions``, None when absent or malformed."""
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(cost, dict) or not isinstance(status, dict):
            return None
        maximum = _number(status.get("maximumAvailable"))
        available = _number(status.get("currentlyAvailable"))
        restore_rate = _number(status.get("restoreRate"))
        if maximum is None or available is None or restore_rate is None or restore_rate <= 0 or maximum <= 0:
            return None
        return cls(
            _number(cost.get("requestedQueryCost")),
            _number(cost.get("actualQueryCost")),
            maximum,
            available,
            restore_rate,
        )

    def wait_for(self, cost: float) -> float:
        """Seconds until the bucket holds ``cost`` points (capped at its size)."""
        return max(0.0, (min(cost, self.maximum) - self.available) / self.restore_rate)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class CostBucket:
    """The client's view of the shop's bucket; ``reserve`` waits until a query fits."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._status: QueryCost | None = None
        self._seen_at = 0.0
        self._available = 0.0
        self._expected: dict[str, float] = {}
        self.waited = 0.0

    def expected_cost(self, operation: str, default: float) -> float:
        return self._expected.get(operation, default)

    def available(self) -> float | None:
        """Points the bucket holds now, by the last answer and the time since; None before any."""
        status = self._status
        if status is None:
            return None
        refilled = self._available + (self._clock() - self._seen_at) * status.restore_rate
        return min(status.maximum, refilled)

    async def reserve(self, operation: str, default: float, *, headroom: float = 0.0) -> None:
        """Wait until ``operation`` (expected to cost its last requested cost) fits, then count it.

        ``headroom`` is a share of the bucket (0 to 1) the operation must leave untouched: background
        reads pass one so that they never starve the quantity writes that follow them. A caller
        waits outside the lock, so a write is never queued behind a read that waits for points.
        """
        while True:
            async with self._lock:
                status = self._status
                available = self.available()
                if status is None or available is None:
                    return
                cost = min(self.expected_cost(operation, default), status.maximum)
                spare = min(status.maximum - cost, headroom * status.maximum)
                # (A float error must not leave a wait of 1e-16 s that the clock cannot show.)
                if available + 1e-9 >= cost + spare:
                    # Counted now so that concurrent callers do not all spend the same points.
                    self._available = available - cost
                    self._seen_at = self._clock()
                    return
                wait = (cost + spare - available) / status.restore_rate
                self.waited += wait
            await self._sleep(wait)

    def observe(self, operation: str, cost: QueryCost | None) -> None:
        """Record what an answer said about the bucket and about this operation's cost."""
        if cost is None:
            return
        self._status = cost
        self._available = cost.available
        self._seen_at = self._clock()
        if cost.requested is not None:
            self._expected[operation] = cost.requested
