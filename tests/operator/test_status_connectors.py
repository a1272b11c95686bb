"""Each connector's circuit breaker and daily API budget on /status, /api/status and /metrics:
a channel whose sandbox fails every call opens its breaker and all three say so; Bling's budget
is counted on the page and in the metrics; the page spells each state out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from syncd.status.overview import render_status_page
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, WEBHOOK_SECRET, make_config
from tests.daemon.test_erp_webhooks import BlingWorld, bling

__all__ = ["bling"]  # the Bling world, as a fixture of this module too

FAILURES = 2  # the web store's circuit_failures


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text, or None when it is not there."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


def thousands(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


@pytest.fixture
async def failing_shop(tmp_path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    """The mock ERP and a web store whose sandbox answers every API call with a 500; the
    store's breaker opens after two failures and waits an hour before its first trial."""
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET, webhook_secret=WEBHOOK_SECRET)
    config = make_config(tmp_path)
    hour = timedelta(hours=1)
    breaker = {"circuit_failures": FAILURES, "circuit_cooldown": hour, "circuit_max_cooldown": hour}
    store = config.channels[0].model_copy(update=breaker)
    daemon = Daemon(
        config.model_copy(update={"channels": [store]}),
        transports={"erp": httpx.ASGITransport(app=erp), "webstore": httpx.ASGITransport(app=shop)},
    )
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.test") as e,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shop.test") as s,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd.test") as d,
    ):
        await e.post("/_sandbox/seed", json={"items": [{"sku": "MUG", "quantity": 5}]})
        await s.post("/_sandbox/seed", json={"items": [{"sku": "MUG", "quantity": 5}]})
        await s.post("/_sandbox/faults", json={"error_rate": 1.0})
        yield daemon, d
    await daemon.engine.aclose()
    daemon.store.close()


async def test_a_channel_failing_every_call_opens_its_breaker_on_every_surface(
    failing_shop: tuple[Daemon, httpx.AsyncClient],
) -> None:
    """Reconciles against a store that fails every call open its breaker: /api/status gives the
    state, failures and times; /status shows it open with when it tries again; /metrics has the
    state gauge at 1 for open (the ERP's at 1 for closed) and the failures."""
    daemon, syncd = failing_shop
    for _ in range(FAILURES + 1):  # each reconcile's listing read fails once; then it is refused
        await daemon.engine.reconcile()

    status = (await syncd.get("/api/status")).json()
    shop = next(c for c in status["channels"] if c["name"] == "webstore")
    assert shop["circuit"] == "open" and shop["circuit_failures"] == FAILURES
    assert shop["circuit_opened_at"] and shop["circuit_next_trial_at"] > shop["circuit_opened_at"]
    assert next(c for c in status["connectors"] if c["name"] == "webstore")["circuit"] == "open"
    erp = next(c for c in status["channels"] if c["kind"] == "erp")
    assert erp["circuit"] == "closed" and erp["api_budget"] is None

    page = (await syncd.get("/status")).text
    assert "Circuit breaker" in page and "API budget today" in page
    assert '<span class="bad">open</span>' in page
    assert f"after {FAILURES} failures in a row; next trial at" in page

    metrics = (await syncd.get("/metrics")).text
    assert sample(metrics, "syncd_connector_circuit_state", connector="webstore", state="open") == 1
    assert sample(metrics, "syncd_connector_circuit_state", connector="webstore", state="closed") == 0
    assert sample(metrics, "syncd_connector_circuit_state", connector="webstore", state="half_open") == 0
    assert sample(metrics, "syncd_connector_circuit_state", connector=erp["name"], state="closed") == 1
    assert sample(metrics, "syncd_connector_circuit_failures", connector="webstore") == FAILURES
    assert sample(metrics, "syncd_connector_up", connector="webstore") == 0  # the same label
    assert sample(metrics, "syncd_connector_api_requests_today", connector="webstore") is None


async def test_blings_daily_budget_is_on_the_page_and_in_the_metrics(bling: BlingWorld) -> None:
    """The requests Bling counted today against syncd's share show on /status and in /metrics,
    the same figures as /api/status; a connector without such a budget has no budget sample."""
    status = (await bling.syncd.get("/api/status")).json()
    name = bling.daemon.engine.erp.name
    metrics = (await bling.syncd.get("/metrics")).text
    page = (await bling.syncd.get("/status")).text
    budget = next(c for c in status["channels"] if c["name"] == name)["api_budget"]
    used, allowed = budget["used_today"], budget["daily_budget"]
    assert used > 0
    # Nothing is called between the reads above unless a background task runs; none is started.
    assert sample(metrics, "syncd_connector_api_requests_today", connector=name) == used
    assert sample(metrics, "syncd_connector_api_daily_budget", connector=name) == allowed
    assert sample(metrics, "syncd_connector_api_daily_budget", connector="webstore") is None
    assert f"{thousands(used)} of {thousands(allowed)} requests" in page and "resets in" in page


def overview(**connector: Any) -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "as_of": "2026-11-23T10:30:00+00:00",
        "connectors": [
            {
                "name": "erp",
                "kind": "erp",
                "type": "bling",
                "healthy": True,
                "last_success": None,
                **connector,
            }
        ],
    }


@pytest.mark.parametrize(
    ("connector", "shown", "absent"),
    [
        ({"circuit": "closed", "circuit_failures": 0}, ['<span class="ok">closed</span>'], ["in a row"]),
        ({"circuit": "closed", "circuit_failures": 1}, ["closed", "1 failure in a row"], ["failures"]),
        (
            {
                "circuit": "open",
                "circuit_failures": 5,
                "circuit_opened_at": "2026-11-23T10:27:00+00:00",
                "circuit_next_trial_at": "2026-11-23T10:31:00+00:00",
            },
            ['class="bad">open<', "since 10:27:00\u00a0(3\u00a0min\u00a0ago), after 5 failures in a row"],
            [],
        ),
        (
            {"circuit": "half_open", "circuit_failures": 5, "circuit_opened_at": "2026-11-23T10:27:00+00:00"},
            ['class="warn">half-open<', "a trial call decides"],
            ["next trial"],
        ),
        ({"circuit": "open"}, ['class="bad">open<'], ["since", "after"]),  # the engine's bare state
        ({"api_budget": {"used_today": 120, "daily_budget": 1000}}, ['class="ok">120 of 1\u202f000'], []),
        ({"api_budget": {"used_today": 850, "daily_budget": 1000}}, ['class="warn">850 of 1\u202f000'], []),
        (
            {"api_budget": {"used_today": 1000, "daily_budget": 1000, "resets_in_seconds": 7200}},
            ['class="bad">1\u202f000 of 1\u202f000 requests', "resets in 2.0 h"],
            [],
        ),
    ],
)
def test_the_page_spells_out_each_breaker_state_and_budget(
    connector: dict[str, Any], shown: list[str], absent: list[str]
) -> None:
    """Closed (with the failures so far), open since when and until when, half-open awaiting
    its trial, and a budget green, amber from 80 % and red when spent."""
    page = render_status_page(overview(**connector))
    channels = page[page.index("<h2>Channels</h2>") : page.index("<h2>Propagation</h2>")]
    for text in shown:
        assert text in channels
    for text in absent:
        assert text not in channels
