"""Order intake when the ledger fails: a webhook delivery or a polled page is recorded whole or
not at all, so nothing the platform sent is lost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, WEBHOOK_SECRET, World, make_config


@contextmanager
def ledger_refuses_order_lines(db: Path) -> Iterator[None]:
    """While open, the SQLite ledger refuses every new order line (as a full disk would), from a
    trigger in the database itself: the failure comes from the database, mid-transaction."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_lines BEFORE INSERT ON order_line "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    try:
        yield
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER refuse_lines")


class Recorder(httpx.AsyncBaseTransport):
    """Sits on the sandbox's road to the daemon and keeps every delivery, to send one again."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.sent: list[tuple[bytes, dict[str, str]]] = []
        self.answers: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((body, dict(request.headers)))
        response = await self.inner.handle_async_request(request)
        self.answers.append(response.status_code)
        return response


async def test_a_delivery_the_ledger_failed_to_record_is_taken_when_sent_again(tmp_path: Path) -> None:
    """The ledger fails while a signed sale webhook is recorded: the answer is 503 (send again),
    the delivery is not marked seen, and the same delivery sent again is recorded, once."""
    config = make_config(tmp_path)
    target: dict[str, Daemon] = {}

    async def daemon_app(scope, receive, send):  # type: ignore[no-untyped-def]
        await target["app"](scope, receive, send)

    road = Recorder(httpx.ASGITransport(app=daemon_app))
    shop = woo_app(
        consumer_key=WC_KEY,
        consumer_secret=WC_SECRET,
        webhook_url="http://syncd/webhooks/webstore",
        webhook_secret=WEBHOOK_SECRET,
        webhook_transport=road,
    )
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    transports = {"erp": httpx.ASGITransport(app=erp), "webstore": httpx.ASGITransport(app=shop)}
    daemon = Daemon(config, transports=transports)
    target["app"] = daemon.app()
    hooks = httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shop.test")
    syncd = httpx.AsyncClient(transport=httpx.ASGITransport(app=daemon_app), base_url="http://syncd")
    try:
        async with shop.router.lifespan_context(shop):
            await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 5}]})
            with ledger_refuses_order_lines(tmp_path / "syncd.db"):
                bought = await hooks.post("/_sandbox/purchase", json={"sku": "A", "quantity": 2})
                assert bought.status_code == 201
                for _ in range(500):  # the sandbox delivers in the background
                    if road.answers:
                        break
                    await asyncio.sleep(0.01)
            assert road.answers == [503]
            assert daemon.store.reserved_by_sku() == {}
            body, headers = road.sent[0]
            again = await syncd.post("/webhooks/webstore", content=body, headers=headers)
            assert again.status_code == 200 and again.json()["new"] == 1
            assert daemon.store.reserved_by_sku() == {"A": 2}
            third = await syncd.post("/webhooks/webstore", content=body, headers=headers)
            assert third.json() == {"ok": True, "duplicate": True}
            assert daemon.store.reserved_by_sku() == {"A": 2}
    finally:
        await hooks.aclose()
        await syncd.aclose()
        await daemon.engine.drain_fast_path()
        await daemon.engine.aclose()
        daemon.store.close()


async def test_a_poll_the_ledger_failed_to_record_leaves_the_cursor_and_is_read_again(world: World) -> None:
    """An order poll reads a page of sales, then the ledger fails while recording them: the
    channel's order cursor stays where it was, and the next poll records those orders."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    cursor = world.store.get_cursor("orders:webstore")
    assert (await world.purchase("A", 3)).status_code == 201
    with ledger_refuses_order_lines(Path(world.daemon.config.database_url.removeprefix("sqlite:///"))):
        try:
            await world.engine.poll_orders()
        except Exception as exc:  # the scheduler's job logs it; the cycle does not go on
            assert "disk is full" in str(exc)
        else:
            raise AssertionError("the poll went on as if its lines were recorded")
        assert world.store.get_cursor("orders:webstore") == cursor
        assert world.store.reserved_by_sku() == {}
    await world.engine.poll_orders()
    assert world.store.reserved_by_sku() == {"A": 3}
    assert world.store.get_cursor("orders:webstore") != cursor


async def test_a_webhook_body_over_the_cap_is_refused_before_it_is_read_whole(world: World) -> None:
    """A 50 MB webhook body, streamed without a length, is answered 413 with the limit named,
    after the daemon read no more than the cap (1 MiB by default) and one chunk of it."""
    chunk = b"x" * 65_536
    pulled = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(50 * 1024 * 1024 // len(chunk)):
            pulled += 1
            yield chunk

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd"
    ) as syncd:
        answer = await syncd.post("/webhooks/webstore", content=fifty_megabytes())
        assert answer.status_code == 413
        assert "1048576 bytes (server.max_webhook_body)" in answer.json()["error"]
        assert pulled * len(chunk) <= 1_048_576 + len(chunk)
        declared = await syncd.post(
            "/webhooks/webstore", content=b"{}", headers={"Content-Length": str(2 * 1_048_576)}
        )
        assert declared.status_code == 413
        # Under the cap, the delivery is read and judged as before (here: unsigned).
        assert (await syncd.post("/webhooks/webstore", content=b"{}")).status_code == 401
