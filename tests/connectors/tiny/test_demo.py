"""`syncd demo --erp tiny`: the demo's Tiny settings and its sandbox fit together."""

from __future__ import annotations

import httpx

from connectors.base import MemoryTokenStore, Movement, StockRecord
from connectors.tiny.auth import exchange_code
from connectors.tiny.client import TinyConnector
from syncd.demo import build_sandbox, demo_erp_settings


async def test_the_demo_connector_reads_and_sells_on_the_demo_sandbox() -> None:
    """With the demo's credentials and addresses, the seller's consent yields tokens and the
    connector reads stock and records a sale on the sandbox that `syncd demo --erp tiny` starts."""
    app = build_sandbox("tiny")
    settings = demo_erp_settings("tiny", "http://127.0.0.1:8101")
    transport = httpx.ASGITransport(app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8101") as hooks:
        await hooks.post("/_sandbox/seed", json={"items": [{"sku": "TEE-BLK-M", "quantity": 4}]})
        code = (
            await hooks.post(
                "/_sandbox/oauth/code",
                json={"client_id": settings.client_id, "redirect_uri": settings.redirect_uri},
            )
        ).json()["code"]
        tokens = MemoryTokenStore()
        await exchange_code(settings, code, tokens, transport=transport)
        erp = TinyConnector(settings, transport=transport, tokens=tokens)
        try:
            assert await erp.read_stock() == [StockRecord("TEE-BLK-M", 4)]
            assert await erp.record_movements(
                [Movement("tiktok:1:1", "TEE-BLK-M", -1, "sale", "tiktok:1")]
            ) == ["tiktok:1:1"]
            rows = (await hooks.get("/_sandbox/stock")).json()
        finally:
            await erp.aclose()
    assert rows[0]["on_hand"] == 3
