"""The /status pages a person reads: escaped, phone-ready, the facts an operator looks for, and
the SKU search that opens one SKU's history (rendered, and served by an in-process daemon)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from syncd.status.overview import LOW_STOCK_ROWS, render_status_page
from syncd.status.sku_page import render_sku_page
from syncd.store import HistoryEvent
from tests.daemon.conftest import World

NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)


def overview(**extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "version": "0.1.0",
        "started_at": "2026-11-23T10:00:00+00:00",
        "as_of": NOW.isoformat(),
        "connectors": [
            {
                "name": "shop",
                "kind": "channel",
                "type": "woocommerce",
                "healthy": False,
                "needs_human": True,
                "last_success": None,
                "last_error": "<script>alert(1)</script>",
            }
        ],
        "low_stock": [],
        "propagation_seconds": {"samples": 12, "p50": 0.2, "p95": 0.9, "p99": 1.4},
        "events": [
            {"name": "live", "channel": "shop", "start": "a", "end": "b", "active": True, "reserve": 5}
        ],
        "runs": [],
    }
    return status | extra


def test_page_escapes_and_fits_a_phone() -> None:
    """Remote text is escaped, the viewport is set for phones, and propagation and events show."""
    page = render_status_page(overview())
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "needs a human" in page and "reserve 5" in page
    assert "last 12 sales" in page and "0.90\u00a0s" in page and "1.40\u00a0s" in page  # p95, p99
    assert "http://" not in page and "https://" not in page  # no external asset of any kind


def test_an_engine_snapshot_alone_still_shows_the_low_stock_split() -> None:
    """Without the ledger's view the page falls back to the planned split, cut to the worst rows."""
    low = [{"sku": f"S{i:03d}", "ats": i, "threshold": 50, "targets": {"shop": i}} for i in range(40)]
    page = render_status_page(overview(low_stock=low))
    assert "S000" in page and f"S{LOW_STOCK_ROWS:03d}" not in page and "15 more" in page
    assert "Low stock (40 SKUs)" in page


def test_runs_drift_refusals_and_chart_are_spelled_out() -> None:
    """A run in progress says so, durations show, drift corrections read in words, refused sales
    are listed, and the activity chart is an inline SVG."""
    page = render_status_page(
        overview(
            runs=[
                {
                    "kind": "reconcile",
                    "started_at": NOW.isoformat(),
                    "finished_at": None,
                    "in_progress": True,
                    "duration_seconds": 3.0,
                    "counts": {},
                    "error": None,
                },
                {
                    "kind": "orders",
                    "started_at": NOW.isoformat(),
                    "finished_at": NOW.isoformat(),
                    "in_progress": False,
                    "duration_seconds": 1.25,
                    "counts": {"order_lines_new": 2},
                    "error": None,
                },
            ],
            drift_24h=[
                {
                    "cause": "manual_edit",
                    "meaning": "manual edit on the channel",
                    "count": 3,
                    "listings": 2,
                    "units_off": 7,
                    "corrected": 1,
                    "already_right": 2,
                    "last_at": NOW.isoformat(),
                    "latest": [
                        {
                            "channel": "shop",
                            "sku": "A/1",
                            "expected": 5,
                            "observed": 7,
                            "done": "already right: left at 7 (its target)",
                        }
                    ],
                },
            ],
            refused_sales=[
                {"at": NOW.isoformat(), "channel": "shop", "order": "1001", "sku": "A/1", "units": 2}
            ],
            activity={
                "start": NOW.isoformat(),
                "end": NOW.isoformat(),
                "bucket_seconds": 300.0,
                "sales": [0, 3, 1],
                "pushes": [1, 0, 2],
            },
            oversell_risk=[],
        )
    )
    assert "in progress" in page and "1.25\u00a0s" in page and "order_lines_new 2" in page
    assert "already right: left at 7 (its target)" in page and "Already right" in page
    assert "Sales the ERP refused (1 in 24 h)" in page and "1001" in page
    assert '<a href="/status/sku/A%2F1">A/1</a>' in page
    assert "<svg" in page and "3 sold" in page


def test_sku_page_shows_stock_channels_history_and_chart() -> None:
    """One SKU: its figures, why each channel shows what it shows, a chart and the history."""
    report = {
        "sku": "A",
        "known": True,
        "on_hand": 9,
        "read_at": NOW.isoformat(),
        "reserved": 2,
        "safety_stock": 1,
        "ats": 6,
        "reservations": [
            {"channel": "shop", "order": "o1", "units": 2, "state": "reserved", "at": NOW.isoformat()}
        ],
        "channels": [
            {
                "channel": "shop",
                "shows": 3,
                "status": "ok",
                "detail": None,
                "last_set": 3,
                "set_at": NOW.isoformat(),
                "sold_since_set": 0,
                "last_read": 4,
                "read_at": NOW.isoformat(),
                "last_push": {"at": NOW.isoformat(), "text": "push sent: shop set to 3"},
                "decision": {"text": "decided shop = 3: on hand 9 - reserved 2 = 7 available -> 3 (sale)"},
                "unaccounted": None,
                "rules": {},
                "events": [],
                "queued": None,
            }
        ],
        "series": {
            "on hand": [(NOW.isoformat(), 9)],
            "shop": [(NOW.isoformat(), 4), ((NOW + timedelta(seconds=5)).isoformat(), 3)],
        },
        "orders": [(NOW.isoformat(), "shop", 2)],
        "events": [{"at": NOW.isoformat(), "kind": "order", "text": "order o1 on shop: 2 sold"}],
        "as_of": (NOW + timedelta(seconds=9)).isoformat(),
    }
    page = render_sku_page({"version": "0.1.0", "started_at": NOW.isoformat()}, report)
    assert "ERP on hand" in page and "decided shop = 3" in page and "push sent: shop set to 3" in page
    assert "<svg" in page and "order o1 on shop: 2 sold" in page and 'value="A"' in page


def test_an_unknown_sku_suggests_near_matches() -> None:
    """A SKU nobody lists says so and offers the SKUs that contain the text."""
    report = {"sku": "a-1", "known": False, "channels": [], "as_of": NOW.isoformat()}
    page = render_sku_page({"version": "0.1.0"}, report, ["A-100", "A-101"])
    assert "No SKU named" in page and 'href="/status/sku/A-100"' in page


async def test_daemon_serves_the_overview_the_search_and_a_sku(world: World) -> None:
    """Against a daemon that reconciled: /status shows channels and runs, the search box lands on
    the SKU's page, an unknown SKU is a 404 page, and /api/status carries the same data."""
    await world.seed({"A-1": 10, "B-2": 3}, {"A-1": 0, "B-2": 0})
    await world.engine.reconcile()
    world.store.record_history([HistoryEvent(world.engine.clock(), "A-1", "webstore", "order", 2, "o-77")])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd"
    ) as client:
        page = await client.get("/status")
        assert page.status_code == 200 and "webstore" in page.text and "Last runs" in page.text
        assert "Oversell risk" in page.text and "Drift, last 24 h" in page.text
        found = await client.get("/status", params={"sku": " A-1 "}, follow_redirects=True)
        assert found.status_code == 200 and str(found.url).endswith("/status/sku/A-1")
        assert "order o-77 on webstore: 2 sold" in found.text and "What each channel shows" in found.text
        missing = await client.get("/status/sku/A-")
        assert missing.status_code == 404 and 'href="/status/sku/A-1"' in missing.text
        api = (await client.get("/api/status")).json()
        assert {"channels", "oversell_risk", "refused_sales", "drift_24h", "runs", "activity"} <= set(api)
        assert api["runs"][0]["kind"] == "reconcile" and api["runs"][0]["duration_seconds"] >= 0
        assert api["oversell_risk"][0]["sku"] == "A-1"  # the hot SKU (2 sold in the last hour)
        sku = (await client.get("/api/status/sku/A-1")).json()
        assert sku["on_hand"] == 10 and sku["channels"][0]["shows"] == 9
