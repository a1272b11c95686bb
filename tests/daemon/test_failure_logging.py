"""One outage, a few log lines: a connector that starts failing is logged once with its error, then
reminded of at most every ten minutes while it stays down, and logged once when it recovers;
read from the JSON log of an engine polling a web store sandbox that answers 503."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from syncd.logs import configure_logging
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, WEBHOOK_SECRET, SwitchableTransport, make_config


@dataclass
class Run:
    daemon: Daemon
    shop_wire: SwitchableTransport
    log: io.StringIO
    now: list[datetime]

    async def polls(self, count: int, every: timedelta) -> None:
        for _ in range(count):
            self.now[0] += every
            await self.daemon.engine.poll_orders()

    def lines(self, connector: str = "webstore") -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]
        return [e for e in parsed if e.get("connector") == connector and e["event"].startswith("connector.")]


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET, webhook_secret=WEBHOOK_SECRET)
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    shop_wire = SwitchableTransport(httpx.ASGITransport(app=shop))
    config = make_config(tmp_path)
    # The circuit opens on the outage as usual; with no cooldown its trial calls follow the polls
    # (the breaker keeps real time, the engine the test's clock).
    webstore = config.channels[0].model_copy(update={"circuit_cooldown": timedelta(0)})
    daemon = Daemon(
        config.model_copy(update={"channels": [webstore]}),
        transports={"erp": httpx.ASGITransport(app=erp), "webstore": shop_wire},
        clock=lambda: now[0],
    )
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield Run(daemon, shop_wire, stream, now)
    await daemon.engine.aclose()
    daemon.store.close()


async def test_an_outage_is_one_line_reminders_and_one_recovery(run: Run) -> None:
    """60 failed order polls over 30 minutes give one connector.failed with the error, a
    still_failing reminder per ten minutes, and one connector.recovered with the count."""
    await run.polls(1, timedelta(seconds=30))
    assert run.lines() == []  # healthy: nothing to say

    run.shop_wire.override = httpx.MockTransport(lambda request: httpx.Response(503, text="down"))
    await run.polls(60, timedelta(seconds=30))
    run.shop_wire.override = None
    await run.polls(2, timedelta(seconds=30))

    lines = run.lines()
    assert [e["event"] for e in lines] == [
        "connector.failed",
        "connector.still_failing",
        "connector.still_failing",
        "connector.recovered",
    ]
    failed, first, second, recovered = lines
    assert failed["level"] == "warning" and "503" in failed["error"] and failed["needs_human"] is False
    assert first["since"] == "2026-12-01T09:01:00+00:00" and first["failures"] == 21
    assert second["failures"] == 41
    assert recovered["level"] == "info" and recovered["failures"] == 60 and recovered["failed_for"] == 1800.0
    assert run.lines("erp") == []  # the ERP kept answering


async def test_credentials_refused_mid_outage_is_said_at_once(run: Run) -> None:
    """A connector already failing on 503s whose credentials are then refused (401) logs that at
    once, as it now needs a human; more refusals add nothing until the reminder is due."""
    run.shop_wire.override = httpx.MockTransport(lambda request: httpx.Response(503, text="down"))
    await run.polls(3, timedelta(seconds=30))
    run.shop_wire.override = httpx.MockTransport(lambda request: httpx.Response(401, json={"code": "unauthorized"}))
    await run.polls(3, timedelta(seconds=30))
    assert [(e["event"], e["needs_human"]) for e in run.lines()] == [
        ("connector.failed", False),
        ("connector.failed", True),
    ]
