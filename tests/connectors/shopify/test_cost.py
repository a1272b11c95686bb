"""The client's view of Shopify's cost bucket: background reads leave room for quantity writes."""

from __future__ import annotations

import asyncio

import pytest

from connectors.shopify.cost import CostBucket, QueryCost


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket_at(available: float, time: FakeTime) -> CostBucket:
    bucket = CostBucket(clock=time.clock, sleep=time.sleep)
    bucket.observe(
        "Seen", QueryCost(requested=1, actual=1, maximum=1000, available=available, restore_rate=100)
    )
    return bucket


@pytest.mark.parametrize(
    ("available", "cost", "headroom", "wait"),
    [
        (1000, 652, 0.25, 0.0),  # fits with a quarter of the bucket to spare
        (800, 652, 0.0, 0.0),  # a write-class call only needs its own cost
        (800, 652, 0.25, 1.02),  # 652 + 250 = 902 points needed: 102 more at 100/s
        (100, 10, 0.0, 0.0),
        (0, 10, 0.0, 0.1),
        (0, 1000, 0.25, 10.0),  # the spare never exceeds what the bucket can hold beside the cost
    ],
)
async def test_reserve_waits_for_cost_plus_headroom(
    available: float, cost: float, headroom: float, wait: float
) -> None:
    time = FakeTime()
    bucket = bucket_at(available, time)
    await bucket.reserve("Op", cost, headroom=headroom)
    assert sum(time.slept) == pytest.approx(wait)
    # The points are counted at once, so a second caller sees them spent.
    assert bucket.available() == pytest.approx(available + wait * 100 - cost)


async def test_a_waiting_background_read_does_not_hold_back_a_write() -> None:
    """An order poll waiting for points must not queue the flash sale's quantity write behind it."""
    release = asyncio.Event()
    now = [0.0]

    async def blocked_sleep(seconds: float) -> None:
        await release.wait()
        now[0] += seconds

    bucket = CostBucket(clock=lambda: now[0], sleep=blocked_sleep)
    bucket.observe("Seen", QueryCost(requested=1, actual=1, maximum=1000, available=300, restore_rate=100))
    poll = asyncio.create_task(bucket.reserve("Orders", 652, headroom=0.25))
    await asyncio.sleep(0)
    assert not poll.done()  # 300 points: the poll waits for 902
    await asyncio.wait_for(bucket.reserve("SetQuantities", 10), timeout=1)
    assert bucket.available() == pytest.approx(290)
    release.set()
    await asyncio.wait_for(poll, timeout=1)


async def test_a_wait_ends_even_where_the_clock_cannot_show_float_crumbs() -> None:
    """At 6.5 s, 0.1 s of refill is 9.99999999999996 points, not 10: the wait must still end."""
    time = FakeTime()
    time.now = 6.5
    bucket = bucket_at(0, time)
    await asyncio.wait_for(bucket.reserve("SetQuantities", 10), timeout=1)
    assert sum(time.slept) == pytest.approx(0.1)
