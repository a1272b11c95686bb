"""A TikTok Shop webhook names an order without its lines, so syncd fetches the order: when that
fetch fails on the wire the event is tried again after a growing wait, a bounded number of times,
and then left to the order poll; no sale is lost either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.tiktok_shop.client import ORDER_DETAIL
from connectors.tiktok_shop.sandbox import create_app as tiktok_app
from syncd.daemon import Daemon
from tests.daemon.conftest import ERP_KEY, make_config
from tests.daemon.test_webhooks import TIKTOK, LateApp


class FailingOrderDetail(httpx.AsyncBaseTransport):
    """The sandbox, except that the next ``failures`` order-detail reads answer 503."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures = 0
        self.detail_calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == ORDER_DETAIL:
            self.detail_calls += 1
            if self.failures > 0:
                self.failures -= 1
                return httpx.Response(503, text="upstream unavailable")
        return await self.inner.handle_async_request(request)


@dataclass
class Shop:
    daemon: Daemon
    wire: FailingOrderDetail
    hooks: httpx.AsyncClient

    async def sell(self, quantity: int) -> None:
        response = await self.hooks.post("/_sandbox/purchase", json={"sku": "A", "quantity": quantity})
        assert response.status_code == 201

    async def settle(self, until: Any) -> None:
        """Let the webhook, its fetches and their retries run until ``until()`` holds."""
        for _ in range(400):
            if until():
                break
            await asyncio.sleep(0.025)
        await self.daemon.engine.drain_fast_path()


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    target = LateApp()
    tiktok = tiktok_app(
        **TIKTOK, webhook_url="http://syncd/webhooks/tiktok", webhook_transport=httpx.ASGITransport(app=target)
    )
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    wire = FailingOrderDetail(httpx.ASGITransport(app=tiktok))
    config = make_config(
        tmp_path,
        stock={"safety_stock": 0},
        schedule={"push_debounce": "20ms"},
        channels=[
            {
                "name": "tiktok",
                "type": "tiktok_shop",
                "base_url": "http://tiktok.test",
                "auth_base_url": "http://tiktok.test",
                "retry_attempts": 1,  # each fetch is one request on the wire
                "webhook_fetch_attempts": 3,
                "webhook_fetch_backoff": "40ms",
                **TIKTOK,
            }
        ],
    )
    daemon = Daemon(config, transports={"erp": httpx.ASGITransport(app=erp), "tiktok": wire})
    target.app = daemon.app()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(tiktok.router.lifespan_context(tiktok))
        hooks = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=tiktok), base_url="http://tiktok.test")
        )
        erp_hooks = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test")
        )
        await erp_hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 20}]})
        await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 20}]})
        await daemon.engine.reconcile()
        yield Shop(daemon, wire, hooks)
    await asyncio.gather(*daemon.supervisor.running())
    await daemon.engine.aclose()
    daemon.store.close()


async def test_a_failed_order_fetch_is_tried_again_until_it_succeeds(shop: Shop) -> None:
    """Two failed fetches of a webhook's order are each logged with the wait before the next try;
    the third gets the lines and the sale is reserved once."""
    shop.wire.failures = 2
    with capture_logs() as logs:
        await shop.sell(3)
        await shop.settle(lambda: shop.daemon.store.reserved_by_sku())
    assert shop.daemon.store.reserved_by_sku() == {"A": 3}
    failed = [e for e in logs if e["event"] == "webhook.fetch_failed"]
    assert [(e["tries"], e["retry_in"]) for e in failed] == [(1, 0.04), (2, 0.08)]
    assert not [e for e in logs if e["event"] == "webhook.fetch_given_up"]
    assert shop.wire.detail_calls == 3


async def test_fetches_stop_after_the_configured_tries_and_the_order_poll_finds_the_sale(shop: Shop) -> None:
    """A fetch that keeps failing is tried webhook_fetch_attempts times, given up with one error
    line, and the next order poll records the sale (the delivery was not marked seen)."""
    shop.wire.failures = 1_000
    with capture_logs() as logs:
        await shop.sell(2)
        await shop.settle(lambda: any(e["event"] == "webhook.fetch_given_up" for e in logs))
    given_up = [e for e in logs if e["event"] == "webhook.fetch_given_up"]
    assert len(given_up) == 1 and given_up[0]["tries"] == 3 and given_up[0]["log_level"] == "error"
    assert shop.wire.detail_calls == 3
    assert shop.daemon.store.reserved_by_sku() == {}

    shop.wire.failures = 0
    report = await shop.daemon.engine.poll_orders()
    assert not report.errors
    assert shop.daemon.store.reserved_by_sku() == {"A": 2}
