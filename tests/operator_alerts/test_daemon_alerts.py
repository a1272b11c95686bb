"""The daemon's scheduler runs the alert checks: refused ERP credentials reach the receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.config import parse_config
from syncd.daemon import Daemon

from .conftest import Receiver

WC_KEY, WC_SECRET = "ck_test_abcdef", "cs_test_987654"


async def test_the_daemon_alerts_when_the_erp_refuses_its_credentials(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A running daemon whose ERP answers 401 posts one 'credentials refused' alert, with no secret in it."""
    config = parse_config(
        {
            "database_url": f"sqlite:///{tmp_path / 'syncd.db'}",
            "erp": {
                "type": "mock_erp",
                "base_url": "http://erp.test",
                "api_key": "erp-key-never-shown",
                "retry_attempts": 1,
            },
            "channels": [
                {
                    "name": "webstore",
                    "type": "woocommerce",
                    "base_url": "http://shop.test",
                    "consumer_key": WC_KEY,
                    "consumer_secret": WC_SECRET,
                    "retry_attempts": 1,
                }
            ],
            "alerts": {
                "webhooks": [{"url": f"{receiver.url}/hook/slack/T0-B0-token"}],
                "check_interval": "1s",
            },
        },
        "test",
        env={},
    )
    refusing = httpx.MockTransport(lambda request: httpx.Response(401, json={"error": "invalid api key"}))
    shop = httpx.ASGITransport(app=woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET))
    daemon = Daemon(config, transports={"erp": refusing, "webstore": shop})
    daemon.start_scheduler()
    try:
        for _ in range(300):
            if receiver.received:
                break
            await asyncio.sleep(0.05)
    finally:
        await daemon.stop()
    (text,) = receiver.texts()
    assert text.startswith("[syncd] ALERT: erp: credentials refused, a person must fix them")
    assert "erp-key-never-shown" not in text
