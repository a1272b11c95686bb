"""A small world for engine tests: the mock ERP and WooCommerce sandboxes in-process, a ledger on
SQLite, and a Daemon wired to them through ASGI transports (no sockets)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.config import Config, parse_config
from syncd.daemon import Daemon

ERP_KEY = "erp-test-key-1234"
WC_KEY = "ck_test_abcdef"
WC_SECRET = "cs_test_987654"
WEBHOOK_SECRET = "whsec-test-5555"


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'syncd.db'}",
        "stock": {"safety_stock": 1, "low_stock_threshold": 0},
        "erp": {"type": "mock_erp", "base_url": "http://erp.test", "api_key": ERP_KEY, "retry_attempts": 1},
        "channels": [
            {
                "name": "webstore",
                "type": "woocommerce",
                "base_url": "http://shop.test",
                "consumer_key": WC_KEY,
                "consumer_secret": WC_SECRET,
                "webhook_secret": WEBHOOK_SECRET,
                "retry_attempts": 1,
            }
        ],
    }
    for key, value in overrides.items():
        data[key] = value
    # These worlds check exact quantities right after a sale; holding back in-flight units (a few
    # seconds' worth of a SKU's sales) would blur them. test_in_flight.py covers that hold.
    data["stock"] = {"hold_in_flight": False, **data["stock"]}
    return parse_config(data, "test", env={})


class SwitchableTransport(httpx.AsyncBaseTransport):
    """Sends to the sandbox, unless a test installs ``override`` to answer oddly on the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.override: httpx.MockTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.override is not None:
            return await self.override.handle_async_request(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class World:
    daemon: Daemon
    erp: httpx.AsyncClient  # the ERP sandbox's hooks
    shop: httpx.AsyncClient  # the web store sandbox's hooks
    erp_app: Any
    shop_app: Any
    erp_wire: SwitchableTransport
    shop_wire: SwitchableTransport

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.daemon.engine

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.daemon.store

    async def erp_stock(self) -> dict[str, int]:
        return {row["sku"]: row["on_hand"] for row in (await self.erp.get("/_sandbox/stock")).json()}

    async def shop_listings(self) -> dict[str, int]:
        return {row["sku"]: row["quantity"] for row in (await self.shop.get("/_sandbox/listings")).json()}

    async def seed(self, erp: dict[str, int], shop: dict[str, int]) -> None:
        r = await self.erp.post(
            "/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in erp.items()]}
        )
        r.raise_for_status()
        r = await self.shop.post(
            "/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in shop.items()]}
        )
        r.raise_for_status()

    async def purchase(self, sku: str, quantity: int = 1) -> httpx.Response:
        return await self.shop.post("/_sandbox/purchase", json={"sku": sku, "quantity": quantity})


@contextlib.asynccontextmanager
async def open_world(tmp_path: Path, **overrides: Any) -> AsyncIterator[World]:
    """The mock ERP and a web store sandbox with a daemon over them (config ``overrides`` as for
    ``make_config``); closes what it opened."""
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET, webhook_secret=WEBHOOK_SECRET)
    config = make_config(tmp_path, **overrides)
    erp_wire = SwitchableTransport(httpx.ASGITransport(app=erp))
    shop_wire = SwitchableTransport(httpx.ASGITransport(app=shop))
    daemon = Daemon(config, transports={"erp": erp_wire, "webstore": shop_wire})
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test") as e,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shop.test") as s,
    ):
        yield World(daemon, e, s, erp, shop, erp_wire, shop_wire)
    await daemon.engine.aclose()
    daemon.store.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path) as opened:
        yield opened


@dataclass
class Shops:
    """Two web stores selling the same stock: a sale on one must reach the other."""

    daemon: Daemon
    erp: httpx.AsyncClient
    shops: dict[str, httpx.AsyncClient]

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.daemon.engine

    async def listings(self, name: str) -> dict[str, int]:
        return {
            row["sku"]: row["quantity"] for row in (await self.shops[name].get("/_sandbox/listings")).json()
        }

    async def buy(self, name: str, sku: str, quantity: int = 1) -> httpx.Response:
        return await self.shops[name].post("/_sandbox/purchase", json={"sku": sku, "quantity": quantity})


def two_shop_config(
    tmp_path: Path, stock: dict[str, Any], *, priorities: tuple[int, int] = (1, 2), **schedule: Any
) -> Config:
    channel = {
        "type": "woocommerce",
        "consumer_key": WC_KEY,
        "consumer_secret": WC_SECRET,
        "retry_attempts": 1,
    }
    return make_config(
        tmp_path,
        stock=stock,
        schedule={"push_debounce": "50ms", **schedule},
        channels=[
            {**channel, "name": "main", "base_url": "http://main.test", "policy": {"priority": priorities[0]}},
            {**channel, "name": "outlet", "base_url": "http://outlet.test", "policy": {"priority": priorities[1]}},
        ],
    )


@pytest.fixture
async def make_shops(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build a two-shop world with the given stock settings (factory, closes what it opened)."""
    opened: list[Any] = []

    async def build(stock: dict[str, Any], erp_stock: dict[str, int], *, priorities: tuple[int, int] = (1, 2)) -> Shops:
        home = tmp_path / f"world{len(opened)}"
        home.mkdir()
        erp = erp_app(api_key=ERP_KEY, db_path=str(home / "erp.db"))
        apps = {n: woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET) for n in ("main", "outlet")}
        transports = {
            "erp": httpx.ASGITransport(app=erp),
            **{n: httpx.ASGITransport(app=a) for n, a in apps.items()},
        }
        daemon = Daemon(two_shop_config(home, stock, priorities=priorities), transports=transports)
        erp_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test")
        shops = {
            n: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=f"http://{n}.test")
            for n, a in apps.items()
        }
        opened.extend([daemon, erp_client, *shops.values()])
        items = [{"sku": s, "quantity": q} for s, q in erp_stock.items()]
        (await erp_client.post("/_sandbox/seed", json={"items": items})).raise_for_status()
        for client in shops.values():
            (
                await client.post(
                    "/_sandbox/seed", json={"items": [{"sku": s, "quantity": 0} for s in erp_stock]}
                )
            ).raise_for_status()
        return Shops(daemon, erp_client, shops)

    yield build
    for item in opened:
        if isinstance(item, Daemon):
            await item.engine.aclose()
            item.store.close()
        else:
            await item.aclose()
