"""ERP outage mode: past erp.max_staleness without an answer from the ERP, no quantity is raised
and low-stock SKUs go to 0; /ready and /api/status say so; when the ERP answers again, the orders
taken meanwhile are in the ledger before anything is raised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon.conftest import ERP_KEY, World, open_world

STALENESS = 1.0  # seconds


@pytest.fixture
async def outage_world(tmp_path: Path) -> AsyncIterator[World]:
    erp = {"type": "mock_erp", "base_url": "http://erp.test", "api_key": ERP_KEY, "retry_attempts": 1}
    async with open_world(
        tmp_path,
        stock={"safety_stock": 0, "low_stock_threshold": 5},
        erp={**erp, "max_staleness": f"{STALENESS}s"},
    ) as world:
        yield world


async def get(world: World, path: str) -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as client:
        return (await client.get(path)).json()


def erp_down(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"error": "down"})


async def test_past_the_staleness_limit_nothing_is_raised_and_the_last_units_come_down(
    outage_world: World,
) -> None:
    world = outage_world
    await world.seed({"LOW": 4, "MANY": 50}, {"LOW": 0, "MANY": 0})
    await world.engine.reconcile()
    assert await world.shop_listings() == {"LOW": 4, "MANY": 50}
    ready = await get(world, "/ready")
    assert not any("outage" in d for d in ready["degraded"])

    world.erp_wire.override = httpx.MockTransport(erp_down)
    await asyncio.sleep(STALENESS + 0.2)
    await world.engine.poll_erp()  # the ERP fails again: outage mode begins
    assert await world.shop_listings() == {"LOW": 0, "MANY": 50}
    ready = await get(world, "/ready")
    assert any("outage mode" in d for d in ready["degraded"])
    assert (await get(world, "/api/status"))["erp_outage"]["max_staleness"] == "0:00:01"

    # A restock the ledger hears of (a cancellation on the shop) raises nothing meanwhile.
    assert (await world.purchase("MANY", 2)).status_code == 201
    await world.engine.poll_orders()
    await world.engine.replan_all()
    assert await world.shop_listings() == {"LOW": 0, "MANY": 48}
    await world.shop.post("/_sandbox/listings", json={"sku": "MANY", "quantity": 30})  # by hand, lower
    await world.engine.reconcile()
    assert (await world.shop_listings())["MANY"] == 30  # not raised back while the ERP is out

    await asyncio.sleep(1.1)  # past the second of the reconcile's read (orders are stamped in seconds)
    assert (await world.purchase("MANY", 1)).status_code == 201  # not polled yet

    # The ERP answers again: the orders come in first, then quantities are planned afresh (MANY
    # is raised back, knowing of the sale it has not polled yet: never to 48).
    world.erp_wire.override = None
    await world.engine.poll_erp()
    assert sorted(line.quantity for line in world.store.lines_of_sku("MANY")) == [1, 2]
    assert await world.shop_listings() == {"LOW": 4, "MANY": 47}
    assert (await get(world, "/api/status"))["erp_outage"] is None
    ready = await get(world, "/ready")
    assert not any("outage" in d for d in ready["degraded"])
