"""Compare-and-set on Shopify: a sale that races a push makes it stale; syncd re-reads the level,
pushes again from what the channel really shows, and lowers it once the sale arrives."""

from __future__ import annotations

from pathlib import Path

import httpx

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.shopify.sandbox import create_app as shopify_app
from syncd.daemon import Daemon
from tests.daemon.conftest import ERP_KEY, make_config

TOKEN = "shpat_test_token_123"


async def test_stale_push_is_replanned_with_the_racing_sale(tmp_path: Path) -> None:
    """A Shopify sale not yet ingested makes the next push stale; the retry lands; the sale's arrival
    then brings the level to on-hand minus the sale."""
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = shopify_app(access_token=TOKEN)
    config = make_config(
        tmp_path,
        stock={"safety_stock": 0},
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
    daemon = Daemon(
        config, transports={"erp": httpx.ASGITransport(app=erp), "shopify": httpx.ASGITransport(app=shop)}
    )
    hooks_erp = httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test")
    hooks_shop = httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shopify.test")
    try:
        await hooks_erp.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
        await hooks_shop.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
        await daemon.engine.reconcile()
        assert (
            await hooks_shop.post("/_sandbox/purchase", json={"sku": "A", "quantity": 2})
        ).status_code == 201
        # The ERP gets 5 more before syncd has seen the sale: it plans 15 over a believed 10.
        await hooks_erp.post("/_sandbox/stock", json={"sku": "A", "on_hand": 15})
        report = await daemon.engine.poll_erp()
        assert report.counts["pushes_stale"] == 1
        shown = {r["sku"]: r["quantity"] for r in (await hooks_shop.get("/_sandbox/listings")).json()}
        assert shown == {"A": 15}  # re-read 8, pushed again with the right compare value
        assert daemon.store.pending_pushes() == []
        await daemon.engine.poll_orders()
        shown = {r["sku"]: r["quantity"] for r in (await hooks_shop.get("/_sandbox/listings")).json()}
        assert shown == {"A": 13}  # 15 on hand minus the 2 sold and reserved
        assert daemon.store.reserved_by_sku() == {"A": 2}
    finally:
        await hooks_erp.aclose()
        await hooks_shop.aclose()
        await daemon.engine.aclose()
        daemon.store.close()
