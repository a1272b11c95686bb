"""A start takes in the sales made while the daemon was down before anything else, every channel on
its own: one channel whose order poll hangs holds up neither the others' sales nor their pushes;
runs a crash left open are closed as interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from syncd.store import Store
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, two_shop_config


class Gate(httpx.AsyncBaseTransport):
    """The road to a sandbox; while ``closed``, order reads wait at the gate (a hung API)."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.closed = False
        self.opened = asyncio.Event()
        self.waiting = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.closed and request.url.path.endswith("/orders"):
            self.waiting += 1
            await self.opened.wait()
        return await self.inner.handle_async_request(request)


@dataclass
class TwoShops:
    daemon: Daemon
    shops: dict[str, httpx.AsyncClient]
    outlet_gate: Gate

    async def shown(self, name: str, sku: str) -> int:
        rows = (await self.shops[name].get("/_sandbox/listings")).json()
        return int(next(r["quantity"] for r in rows if r["sku"] == sku))


@pytest.fixture
async def two_shops(tmp_path: Path) -> AsyncIterator[TwoShops]:
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    apps = {n: woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET) for n in ("main", "outlet")}
    gate = Gate(httpx.ASGITransport(app=apps["outlet"]))
    daemon = Daemon(
        two_shop_config(tmp_path, {"safety_stock": 1, "low_stock_threshold": 0}),
        transports={
            "erp": httpx.ASGITransport(app=erp),
            "main": httpx.ASGITransport(app=apps["main"]),
            "outlet": gate,
        },
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test") as e:
        (await e.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})).raise_for_status()
    shops = {
        n: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=f"http://{n}.test")
        for n, a in apps.items()
    }
    for client in shops.values():
        (
            await client.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 0}]})
        ).raise_for_status()
    yield TwoShops(daemon, shops, gate)
    gate.opened.set()
    for client in shops.values():
        await client.aclose()
    await daemon.engine.aclose()
    daemon.store.close()


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for ``check()`` to hold (the daemon works in the background), or fail naming ``what``."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def test_a_hung_channel_delays_neither_the_others_sales_nor_their_pushes(two_shops: TwoShops) -> None:
    """Two units sold on the main shop while the daemon was down, and the outlet's order API hung
    at the start: the start-up poll reserves the main shop's sale and lowers the outlet to what is
    left while the outlet's own poll still hangs; once it answers the start-up poll ends."""
    engine = two_shops.daemon.engine
    store = two_shops.daemon.store
    await engine.reconcile()
    assert await two_shops.shown("outlet", "A") == 9
    sold = await two_shops.shops["main"].post("/_sandbox/purchase", json={"sku": "A", "quantity": 2})
    assert sold.status_code == 201
    two_shops.outlet_gate.closed = True

    start_up = asyncio.create_task(engine.start_up_orders())

    async def main_sale_in() -> bool:
        return store.reserved_by_sku() == {"A": 2}

    async def outlet_lowered() -> bool:
        return await two_shops.shown("outlet", "A") == 7

    await until(main_sale_in, "the main shop's sale reserved")
    await until(outlet_lowered, "the outlet lowered to 7")
    assert not start_up.done() and two_shops.outlet_gate.waiting >= 1

    two_shops.outlet_gate.opened.set()
    report = await start_up
    assert report.counts["order_lines_new"] == 1 and report.errors == []


async def test_runs_a_crash_left_open_are_closed_as_interrupted(tmp_path: Path) -> None:
    """A reconcile a kill left unfinished is closed as interrupted when the next daemon starts; a
    finished run is left as it was."""
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    store = Store(url)
    store.migrate()
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    killed = store.start_run("reconcile", at)
    done = store.start_run("orders", at)
    store.finish_run(done, at, {"order_lines_new": 1})
    store.close()

    daemon = Daemon(two_shop_config(tmp_path, {"safety_stock": 1}))
    try:
        assert daemon.engine.close_interrupted_runs() == [killed]
        runs = {r.id: r for r in daemon.store.recent_runs()}
    finally:
        await daemon.engine.aclose()
        daemon.store.close()
    assert runs[killed].finished_at == at and (runs[killed].error or "").startswith("interrupted:")
    assert runs[done].error is None and runs[done].counts == {"order_lines_new": 1}
