"""Compare-and-set on Shopify. The fast path reads a level just before writing it, so a sale syncd
has not heard of is left out of the write at once; a sale that lands between that read and the
write makes the write stale, and syncd re-reads the level and writes again at once, without
compare-and-set (the SKU sells faster than a round trip)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.shopify.sandbox import create_app as shopify_app
from syncd.daemon import Daemon
from tests.daemon.conftest import ERP_KEY, make_config

TOKEN = "shpat_test_token_123"


class SaleBeforeWrite(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox; just before the first quantity write, a shopper buys one unit
    (the write was planned, and its compare value read, before that sale)."""

    def __init__(self, app: httpx.ASGITransport, sku: str, times: int = 1):
        self.app, self.sku, self.fired, self.times = app, sku, False, times
        self.writes: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b"SetQuantities" in request.content:
            self.writes.append(json.loads(request.content))
        if not self.fired and b"SetQuantities" in request.content:
            self.times -= 1
            self.fired = self.times <= 0
            buy = httpx.Request(
                "POST", "http://shopify.test/_sandbox/purchase", json={"sku": self.sku, "quantity": 1}
            )
            assert (await self.app.handle_async_request(buy)).status_code == 201
        return await self.app.handle_async_request(request)


@dataclass
class World:
    daemon: Daemon
    erp: httpx.AsyncClient  # the ERP sandbox's test hooks
    shop: httpx.AsyncClient  # the Shopify sandbox's test hooks

    async def shown(self) -> dict[str, int]:
        return {r["sku"]: r["quantity"] for r in (await self.shop.get("/_sandbox/listings")).json()}


@asynccontextmanager
async def shopify_world(
    tmp_path: Path, wrap: type[SaleBeforeWrite] | None = None
) -> AsyncIterator[tuple[World, SaleBeforeWrite | None]]:
    """The mock ERP and one Shopify shop, both holding 10 of A; ``wrap`` sits on syncd's road to
    the shop."""
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = shopify_app(access_token=TOKEN)
    config = make_config(
        tmp_path,
        stock={"safety_stock": 0, "low_stock_threshold": 0},
        channels=[
            {
                "name": "shopify",
                "type": "shopify",
                "base_url": "http://shopify.test",
                "access_token": TOKEN,
                "retry_attempts": 1,
            }
        ],
    )
    racing = wrap(httpx.ASGITransport(app=shop), "A") if wrap is not None else None
    road: httpx.AsyncBaseTransport = racing if racing is not None else httpx.ASGITransport(app=shop)
    daemon = Daemon(config, transports={"erp": httpx.ASGITransport(app=erp), "shopify": road})
    world = World(
        daemon,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test"),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shopify.test"),
    )
    try:
        await world.erp.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
        await world.shop.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
        yield world, racing
    finally:
        await world.erp.aclose()
        await world.shop.aclose()
        await daemon.engine.aclose()
        daemon.store.close()


async def test_unseen_sale_is_left_out_of_the_write(tmp_path: Path) -> None:
    """A Shopify sale not yet ingested: the read before the write shows it, the write leaves it out
    (no stale round trip), and its arrival later changes nothing."""
    async with shopify_world(tmp_path) as (world, _):
        await world.daemon.engine.reconcile()
        assert (
            await world.shop.post("/_sandbox/purchase", json={"sku": "A", "quantity": 2})
        ).status_code == 201
        # The ERP gets 5 more before syncd has seen the sale: it plans 15 over a believed 10.
        await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 15})
        report = await world.daemon.engine.poll_erp()
        assert report.counts["pushes_stale"] == 0
        assert await world.shown() == {
            "A": 13
        }  # read 8 where 10 was believed: 15 planned, minus the 2 unseen
        assert world.daemon.store.pending_pushes() == []
        report = await world.daemon.engine.poll_orders()
        assert report.counts["pushes_planned"] == 0
        assert await world.shown() == {"A": 13}  # 15 on hand minus the 2 sold and reserved
        assert world.daemon.store.reserved_by_sku() == {"A": 2}


async def test_sale_between_read_and_write_makes_it_stale_and_is_pushed_again(tmp_path: Path) -> None:
    """The level changes between the read and the write: Shopify refuses the stale write, syncd
    re-reads the level and writes again against it; the channel never shows the sold unit."""
    async with shopify_world(tmp_path, SaleBeforeWrite) as (world, racing):
        assert racing is not None
        racing.fired = True  # the first reconcile writes nothing racy
        await world.daemon.engine.reconcile()
        racing.fired = False
        await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 6})
        report = await world.daemon.engine.poll_erp()
        assert report.counts["pushes_stale"] == 1
        assert await world.shown() == {
            "A": 5
        }  # 6 planned; re-read 9 where 10 was believed: the sold unit left out
        assert world.daemon.store.pending_pushes() == []
        await world.daemon.engine.poll_orders()
        assert await world.shown() == {"A": 5}  # 6 on hand minus the sale, reserved until the ERP has it
        assert world.daemon.store.reserved_by_sku() == {"A": 1}


async def test_a_stale_push_is_written_again_at_once_without_compare(tmp_path: Path) -> None:
    """A sale lands before the write and another before its retry. A stale write means the SKU
    sells faster than a round trip, so the retry (read afresh) goes without compare-and-set and
    cannot be stale again; it forgets the sale that raced it, as a write to a channel without
    compare-and-set does, and the channel is lowered once that sale is reported."""
    async with shopify_world(tmp_path, SaleBeforeWrite) as (world, racing):
        assert racing is not None
        racing.fired = True
        await world.daemon.engine.reconcile()
        racing.fired, racing.times, racing.writes = False, 2, []
        await world.erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 6})
        report = await world.daemon.engine.poll_erp()
        assert report.counts["pushes_stale"] == 1
        assert report.counts["pushes_planned"] == 1
        [first, retry] = [w["variables"]["input"]["quantities"][0] for w in racing.writes]
        assert (first["quantity"], first["changeFromQuantity"]) == (6, 10)
        assert (retry["quantity"], retry["changeFromQuantity"]) == (5, None)  # read 9: one sale left out
        assert await world.shown() == {"A": 5}  # the sale racing the retry is forgotten for now
        assert world.daemon.store.pending_pushes() == []
        await world.daemon.engine.poll_orders()
        assert await world.shown() == {"A": 4}  # 6 on hand minus the 2 sales, reserved
        assert world.daemon.store.reserved_by_sku() == {"A": 2}
