"""ERP webhooks into the daemon's HTTP app (in-process) with Bling's sandbox as the ERP: a signed
stock delivery makes the daemon read that SKU's on-hand again and re-plan the channels; forged,
malformed, repeated and out-of-order deliveries change nothing; an ERP without webhooks says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import OrderLine
from connectors.bling.sandbox import create_app as bling_app
from connectors.bling.webhooks import sign
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from tests.daemon.conftest import WC_KEY, WC_SECRET, WEBHOOK_SECRET, World, make_config

CLIENT_ID, CLIENT_SECRET = "syncd-daemon-test", "bling-daemon-secret-77"


class LateApp:
    """The daemon's app, set once it exists (the sandbox needs its address first)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class Gate(httpx.AsyncBaseTransport):
    """The wire to Bling, holding sales-order requests while ``open`` is clear (a slow ERP)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.open = asyncio.Event()
        self.open.set()
        self.reached = asyncio.Event()  # a sales order was sent while held

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/pedidos/vendas" and not self.open.is_set():
            self.reached.set()
            await self.open.wait()
        return await self.inner.handle_async_request(request)


@dataclass
class BlingWorld:
    daemon: Daemon
    bling_app: Starlette
    hooks: httpx.AsyncClient  # the Bling sandbox's hooks
    shop: httpx.AsyncClient  # the web store sandbox's hooks
    syncd: httpx.AsyncClient  # the daemon's HTTP app
    gate: Gate

    async def shown(self, sku: str) -> int:
        rows = (await self.shop.get("/_sandbox/listings")).json()
        return next(r["quantity"] for r in rows if r["sku"] == sku)

    async def product_id(self, sku: str) -> int:
        rows = (await self.hooks.get("/_sandbox/stock")).json()
        return int(next(r["id"] for r in rows if r["sku"] == sku))

    async def balance_reads(self) -> int:
        return int((await self.hooks.get("/_sandbox/stats")).json()["calls"].get("GET /estoques/saldos", 0))

    async def deliver(self, body: bytes, signature: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        headers["X-Bling-Signature-256"] = sign(CLIENT_SECRET, body) if signature is None else signature
        response = await self.syncd.post("/webhooks/erp", content=body, headers=headers)
        await self.daemon.engine.drain_fast_path()
        return response


def stock_event(product: int, event_id: str, date: str = "2026-12-01T10:00:00-03:00") -> bytes:
    body = {
        "eventId": event_id,
        "date": date,
        "version": "v1",
        "event": "stock.updated",
        "companyId": "c",
        "data": {"produto": {"id": product}, "deposito": {"id": 1}},
    }
    return json.dumps(body).encode()


@pytest.fixture
async def bling(tmp_path: Path) -> AsyncIterator[BlingWorld]:
    target = LateApp()
    bling = bling_app(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        per_second=10_000,
        webhook_url="http://syncd.test/webhooks/erp",
        webhook_transport=httpx.ASGITransport(app=target),
        seed=5,
    )
    shop = woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET, webhook_secret=WEBHOOK_SECRET)
    erp = {
        "type": "bling",
        "base_url": "http://bling.test",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "contact_id": 1,
        "retry_attempts": 1,
        "account_requests_per_second": 10_000,
    }
    config = make_config(tmp_path, erp=erp, schedule={"push_debounce": "10ms"})
    gate = Gate(httpx.ASGITransport(app=bling))
    transports = {"erp": gate, "webstore": httpx.ASGITransport(app=shop)}
    daemon = Daemon(config, transports=transports)
    target.app = daemon.app()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=bling), base_url="http://bling.test") as b,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shop.test") as s,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=target), base_url="http://syncd.test") as d,
    ):
        # Seeded before the sandbox serves: these stock changes send no webhooks.
        await b.post("/_sandbox/seed", json={"items": [{"sku": "MUG", "quantity": 6}]})
        await s.post("/_sandbox/seed", json={"items": [{"sku": "MUG", "quantity": 6}]})
        code = (await b.post("/_sandbox/oauth/code")).json()["code"]
        await daemon.engine.erp.auth.exchange_code(code)  # type: ignore[attr-defined]
        await daemon.engine.reconcile()
        async with bling.router.lifespan_context(bling):
            yield BlingWorld(daemon, bling, b, s, d, gate)
    await daemon.engine.drain_fast_path()
    await daemon.engine.aclose()
    daemon.store.close()


async def test_a_signed_stock_webhook_reads_the_sku_and_replans_the_channels(bling: BlingWorld) -> None:
    """A stock change in Bling reaches the web store through the sandbox's signed webhook alone:
    the daemon reads MUG's balance (6 -> 2) and lowers the store to 2 - 1 safety = 1."""
    assert await bling.shown("MUG") == 5
    reads = await bling.balance_reads()
    await bling.hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": 2})
    await bling.bling_app.state.webhooks.drain()
    await bling.daemon.engine.drain_fast_path()
    assert bling.bling_app.state.webhooks.delivered == 1
    assert await bling.balance_reads() == reads + 1
    assert await bling.shown("MUG") == 1
    sku = (await bling.syncd.get("/api/status/sku/MUG")).json()
    assert sku["on_hand"] == 2


async def test_a_sale_bling_is_still_recording_holds_back_no_later_change(bling: BlingWorld) -> None:
    """While Bling has not answered the order that records a sale, a stock change it delivers by
    webhook is still read and reaches the store (2 - 1 reserved - 1 safety = 0); the sale is then
    recorded once."""
    engine = bling.daemon.engine
    bling.gate.open.clear()
    sold = OrderLine("webstore", "77", "1", "MUG", 1, "open", datetime.now(UTC))
    engine.ingest([sold])
    engine.touch(["MUG"])
    await asyncio.wait_for(bling.gate.reached.wait(), 30)  # the recording is on its way and held
    await bling.hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": 2})
    await bling.bling_app.state.webhooks.drain()
    while busy := [*engine.erp_events.running(), *engine.intake.running(), *engine.sender.running()]:
        await asyncio.wait_for(asyncio.wait(busy), 30)
    assert await bling.shown("MUG") == 0
    bling.gate.open.set()
    await engine.drain_fast_path()
    orders = (await bling.hooks.get("/_sandbox/orders")).json()
    assert [o["numeroLoja"] for o in orders] == ["webstore:77:1"]


async def test_a_bad_signature_is_refused_with_401_and_reads_nothing(bling: BlingWorld) -> None:
    """A delivery signed with another secret, or not signed, gets 401 and costs no Bling call."""
    reads = await bling.balance_reads()
    body = stock_event(await bling.product_id("MUG"), "forged-1")
    response = await bling.deliver(body, signature=sign("someone-else", body))
    assert response.status_code == 401 and response.json() == {"error": "invalid signature"}
    unsigned = await bling.syncd.post("/webhooks/erp", content=body)
    assert unsigned.status_code == 401
    assert await bling.balance_reads() == reads


async def test_a_malformed_delivery_is_refused_with_400_naming_the_problem(bling: BlingWorld) -> None:
    """A signed body that is not JSON gets 400 saying so."""
    response = await bling.deliver(b"{not json")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


async def test_a_delivery_twice_is_answered_duplicate_and_read_once(bling: BlingWorld) -> None:
    """The same eventId delivered again is answered 200 duplicate and does not read Bling again."""
    body = stock_event(await bling.product_id("MUG"), "ev-twice")
    first = await bling.deliver(body)
    reads = await bling.balance_reads()
    again = await bling.deliver(body)
    assert first.status_code == 200 and first.json() == {"ok": True}
    assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
    assert await bling.balance_reads() == reads


async def test_an_older_delivery_after_a_newer_one_changes_nothing(bling: BlingWorld) -> None:
    """Out of order: once the 10:05 event was read (on-hand 3, the store at 2), the 10:00 one
    arriving late reads nothing, though Bling now holds 5: the store stays at 2."""
    await bling.hooks.post("/_sandbox/faults", json={"webhook_drop_rate": 1.0})  # only ours arrive
    product = await bling.product_id("MUG")
    await bling.hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": 3})
    newer = await bling.deliver(stock_event(product, "ev-new", "2026-12-31T10:05:00-03:00"))
    assert newer.status_code == 200 and await bling.shown("MUG") == 2
    await bling.hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": 5})
    reads = await bling.balance_reads()
    late = await bling.deliver(stock_event(product, "ev-old", "2026-12-31T10:00:00-03:00"))
    assert late.status_code == 200
    assert await bling.balance_reads() == reads
    assert await bling.shown("MUG") == 2


async def test_the_mock_erp_answers_404_saying_it_takes_no_webhooks(world: World) -> None:
    """With the mock ERP, POST /webhooks/erp is a 404 whose message names the ERP and the poll."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as syncd:
        response = await syncd.post("/webhooks/erp", content=b"{}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert "takes no webhooks" in error and "ERP poll" in error


async def test_an_oversized_erp_delivery_is_refused_with_413(bling: BlingWorld) -> None:
    """A body above server.max_webhook_body is refused before it is parsed."""
    limit = bling.daemon.config.server.max_webhook_body
    response = await bling.deliver(b"x" * (limit + 1))
    assert response.status_code == 413 and "max_webhook_body" in response.json()["error"]


async def test_the_status_shows_blings_daily_budget_and_each_circuit(bling: BlingWorld) -> None:
    """/api/status shows, per connector, its circuit breaker and, for Bling, the day's requests
    against syncd's share of the account's budget."""
    status = (await bling.syncd.get("/api/status")).json()
    connectors = {c["name"]: c for c in status["connectors"]}
    erp = connectors[bling.daemon.engine.erp.name]
    assert erp["circuit"] in (None, "closed")
    budget = erp["api_budget"]
    assert budget is not None and int(str(budget["used_today"])) > 0
    shop = next(c for name, c in connectors.items() if name != bling.daemon.engine.erp.name)
    assert shop["api_budget"] is None and "circuit" in shop
