"""Urgency and paired turns reach the channels through the contract: the engine says which calls
are urgent and which go together, and each channel connector applies it at its rate limits."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import syncd.engine
from connectors.base import MemoryTokenStore, QuantityUpdate
from connectors.http import calls_are_urgent
from connectors.registry import build_channel
from connectors.shopify.sandbox import create_app as shopify_app
from connectors.tiktok_shop.sandbox import create_app as tiktok_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.config import parse_config
from syncd.core import PlannedPush
from tests.daemon.conftest import WC_KEY, WC_SECRET
from tests.daemon.fakes import FakeChannel, fake_engine
from tests.daemon.test_webhooks import SHOPIFY_TOKEN, TIKTOK


def test_the_engine_depends_only_on_the_connector_contracts() -> None:
    """No module of syncd/engine imports from connectors other than connectors.base."""
    found = {}
    for module in sorted(Path(syncd.engine.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("connectors"):
                found.setdefault(node.module, []).append(module.name)
    assert set(found) == {"connectors.base"}


async def test_an_urgent_slice_asks_for_urgent_calls_and_a_routine_one_does_not(tmp_path: Path) -> None:
    """A zero-out's read and write are made urgent, a routine one-unit decrease's are not; each
    slice's read and its write take their turns together (two calls paired)."""
    main = FakeChannel("main", {"R": 41, "U": 3}, max_batch=1)
    async with fake_engine(tmp_path, {"safety_stock": 0}, dict(main.shown), main) as engine:
        await engine.reconcile()
        main.calls.clear()
        engine.store.enqueue_pushes(
            [PlannedPush("main", "U", 0, 3, "fast-path"), PlannedPush("main", "R", 40, 41, "fast-path")],
            engine.clock(),
        )
        await engine.flush()
        made = [(c.kind, c.skus, c.urgent, c.paired) for c in main.calls]
        assert made == [
            ("read", ["U"], True, 2),
            ("write", ["U"], True, 2),
            ("read", ["R"], False, 2),
            ("write", ["R"], False, 2),
        ]


class Urgency(httpx.AsyncBaseTransport):
    """On the road to a sandbox: notes whether each API request was sent as urgent."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.seen: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/token" not in request.url.path and "oauth" not in request.url.path:
            self.seen.append(calls_are_urgent())
        return await self.inner.handle_async_request(request)


CHANNELS: dict[str, tuple[Any, dict[str, Any]]] = {
    "woocommerce": (
        lambda: woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET),
        {"consumer_key": WC_KEY, "consumer_secret": WC_SECRET},
    ),
    "shopify": (lambda: shopify_app(access_token=SHOPIFY_TOKEN), {"access_token": SHOPIFY_TOKEN}),
    "tiktok_shop": (lambda: tiktok_app(**TIKTOK), {"auth_base_url": "http://shop.test", **TIKTOK}),
}


@pytest.mark.parametrize("kind", sorted(CHANNELS))
async def test_each_channel_connector_sends_urgent_calls_as_urgent(tmp_path: Path, kind: str) -> None:
    """``urgent=True`` on a read, a write or an order poll makes every request of it go first at
    the channel's rate limiter; without it they are routine."""
    make_app, settings = CHANNELS[kind]
    app = make_app()
    config = parse_config(
        {
            "database_url": f"sqlite:///{tmp_path / 'x.db'}",
            "erp": {"type": "mock_erp", "base_url": "http://erp.test", "api_key": "k" * 12},
            "channels": [{"name": "shop", "type": kind, "base_url": "http://shop.test", **settings}],
        },
        "test",
        env={},
    )
    road = Urgency(httpx.ASGITransport(app=app))
    connector = build_channel(config.channels[0], road, tokens=MemoryTokenStore())
    hooks = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")
    try:
        (await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 5}]})).raise_for_status()
        listings = await connector.list_listings()
        road.seen.clear()
        for urgent in (True, False):
            await connector.read_quantities(listings, urgent=urgent)
            await connector.orders_since(datetime.now(UTC) - timedelta(minutes=5), urgent=urgent)
            [listing] = listings
            await connector.set_quantities([QuantityUpdate("A", listing.ref, 4)], urgent=urgent)
            assert road.seen and set(road.seen) == {urgent}
            road.seen.clear()
    finally:
        await hooks.aclose()
        await connector.aclose()

