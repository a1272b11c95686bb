"""A seller with several warehouses, end to end in process: the daemon over the mock ERP (two of
its three warehouses counted), Shopify (two sync locations) and TikTok Shop (two named warehouses,
one it does not manage), each its own sandbox behind an ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.shopify.sandbox import create_app as shopify_app
from connectors.tiktok_shop.sandbox import create_app as tiktok_app
from syncd.config import parse_config
from syncd.daemon import Daemon

ERP_KEY = "erp-test-key-1234"
SHOPIFY_TOKEN = "shpat_0123456789abcdef"
TIKTOK = {
    "app_key": "tts-app",
    "app_secret": "tts-secret",
    "access_token": "TTP_access",
    "refresh_token": "TTP_refresh",
    "shop_cipher": "ROW_cipher",
}
MAIN, BACK = "gid://shopify/Location/1", "gid://shopify/Location/2"


@dataclass
class Seller:
    daemon: Daemon
    erp: httpx.AsyncClient
    shopify: httpx.AsyncClient
    tiktok: httpx.AsyncClient

    async def erp_levels(self, sku: str) -> dict[str, int]:
        rows = (await self.erp.get("/_sandbox/stock")).json()
        levels: dict[str, int] = next(r for r in rows if r["sku"] == sku)["warehouses"]
        return levels

    async def shopify_levels(self, sku: str) -> dict[str, int]:
        rows = (await self.shopify.get("/_sandbox/listings")).json()
        levels: dict[str, int] = next(r for r in rows if r["sku"] == sku)["locations"]
        return levels

    async def tiktok_levels(self, sku: str) -> dict[str, int]:
        rows = (await self.tiktok.get("/_sandbox/listings")).json()
        levels: dict[str, int] = next(r for r in rows if r["sku"] == sku)["warehouses"]
        return levels


@pytest.fixture
async def seller(tmp_path: Path) -> AsyncIterator[Seller]:
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shopify = shopify_app(access_token=SHOPIFY_TOKEN, bucket_size=1_000_000, restore_rate=1_000_000)
    tiktok = tiktok_app(**TIKTOK, qps=100_000)
    fast: dict[str, Any] = {"retry_attempts": 1, "rate_limit": 10_000, "burst": 10_000}
    config = parse_config(
        {
            "database_url": f"sqlite:///{tmp_path / 'syncd.db'}",
            "stock": {"safety_stock": 1, "low_stock_threshold": 0, "hold_in_flight": False},
            "erp": {
                "type": "mock_erp",
                "base_url": "http://erp.test",
                "api_key": ERP_KEY,
                "warehouses": ["main", "store"],
            }
            | fast,
            "channels": [
                {
                    "name": "shopify",
                    "type": "shopify",
                    "base_url": "http://shopify.test",
                    "access_token": SHOPIFY_TOKEN,
                    "location_ids": [MAIN, BACK],
                }
                | fast,
                {
                    "name": "tiktok",
                    "type": "tiktok_shop",
                    "base_url": "http://tiktok.test",
                    "auth_base_url": "http://tiktok.test",
                    "warehouse_ids": ["W-EAST", "W-WEST"],
                }
                | TIKTOK
                | fast,
            ],
        },
        "test",
        env={},
    )
    transports = {
        name: httpx.ASGITransport(app=app)
        for name, app in (("erp", erp), ("shopify", shopify), ("tiktok", tiktok))
    }
    daemon = Daemon(config, transports=transports)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test") as e,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=shopify), base_url="http://shopify.test") as s,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=tiktok), base_url="http://tiktok.test") as t,
    ):
        stock = [
            {"sku": "TEE", "on_hand": 6},
            {"sku": "TEE", "on_hand": 4, "warehouse": "store"},
            {"sku": "TEE", "on_hand": 50, "warehouse": "damaged"},
        ]
        assert (await e.post("/_sandbox/stock", json=stock)).status_code == 200
        shop_item = {"sku": "TEE", "quantity": 0, "locations": {BACK: 3}}
        assert (await s.post("/_sandbox/seed", json={"items": [shop_item]})).status_code == 201
        tts_item = {"sku": "TEE", "warehouses": {"W-EAST": 1, "W-WEST": 1, "W-FBT": 5}}
        assert (await t.post("/_sandbox/seed", json={"items": [tts_item]})).status_code == 201
        yield Seller(daemon, e, s, t)
    await daemon.engine.aclose()
    daemon.store.close()


async def test_counted_warehouses_reach_the_named_locations_and_a_sale_leaves_them(seller: Seller) -> None:
    """On-hand is main + store; each channel's named places add up to it less safety stock, the
    places not named keep theirs, and a sale is taken from the counted warehouses."""
    report = await seller.daemon.engine.reconcile()
    assert report.error is None

    # 6 + 4 counted, 1 of safety stock: 9 on each channel, split by the documented rule.
    assert await seller.shopify_levels("TEE") == {MAIN: 6, BACK: 3}
    assert await seller.tiktok_levels("TEE") == {"W-EAST": 8, "W-WEST": 1, "W-FBT": 5}

    bought = await seller.shopify.post("/_sandbox/purchase", json={"sku": "TEE", "quantity": 7})
    assert bought.status_code == 201
    await seller.daemon.engine.reconcile()
    await seller.daemon.engine.reconcile()

    # The ERP took the 7 units from main, then store; damaged is not syncd's and keeps its 50.
    assert await seller.erp_levels("TEE") == {"main": 0, "store": 3, "damaged": 50}
    assert sum((await seller.shopify_levels("TEE")).values()) == 2
    levels = await seller.tiktok_levels("TEE")
    assert levels["W-EAST"] + levels["W-WEST"] == 2 and levels["W-FBT"] == 5
