"""Alerts end to end: a ledger, the connectors' health, and a webhook receiver on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.testing import capture_logs

from connectors.base import Listing, OrderLine
from syncd.alerts import Alerter, Cover, cover_report
from syncd.config import AlertSettings
from syncd.core import Drift, DriftCause
from syncd.store import Store

from .conftest import Receiver

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SLACK_TOKEN = "T0SECRET-B0SECRET-xoxo1234"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def erp(up: bool = True, at: datetime = NOW) -> dict[str, Any]:
    return {
        "name": "erp",
        "kind": "erp",
        "healthy": up,
        "needs_human": False,
        "last_success": at.isoformat(),
        "last_error": None if up else "erp: HTTP 502",
    }


def shop(up: bool = True) -> dict[str, Any]:
    return {
        "name": "shop",
        "kind": "channel",
        "healthy": up,
        "needs_human": False,
        "last_success": (NOW - timedelta(minutes=30)).isoformat(),
        "last_error": None if up else "shop: HTTP 503 from the API",
    }


def alerter(
    receiver: Receiver, store: Store, health: list[dict[str, Any]], clock: Clock, **overrides: Any
) -> Alerter:
    settings = AlertSettings.model_validate(
        {
            "webhooks": [
                {"url": f"{receiver.url}/hook/slack/{SLACK_TOKEN}"},
                {"url": f"{receiver.url}/hook/json/plain", "format": "json"},
            ],
            "retry_attempts": 3,
            **overrides,
        }
    )
    return Alerter(
        settings,
        store,
        lambda: health,
        reconcile_interval=timedelta(minutes=5),
        started_at=NOW - timedelta(hours=1),
        clock=clock,
        backoff=0,
        secrets=[SLACK_TOKEN],
    )


async def test_an_alert_is_sent_once_while_it_lasts_then_resolved(receiver: Receiver, store: Store) -> None:
    """A channel down 30 minutes alerts both receivers once; later checks are quiet; recovery resolves it."""
    health, clock = [erp(), shop(up=False)], Clock()
    alerts = alerter(receiver, store, health, clock)
    await alerts.check()
    clock.now += timedelta(minutes=1)
    await alerts.check()
    assert receiver.texts() == [
        "[syncd] ALERT: shop has been failing for 30 min: shop: HTTP 503 from the API"
    ]
    (generic,) = [body for hook, body in receiver.received if hook == "json"]
    assert (
        generic["status"] == "open" and generic["key"] == "down:shop" and generic["kind"] == "connector_down"
    )
    health[1] = shop()
    clock.now += timedelta(minutes=1)
    await alerts.check()
    await alerts.check()
    assert receiver.texts()[1:] == [
        "[syncd] RESOLVED: shop has been failing for 30 min: shop: HTTP 503 from the API"
    ]
    assert [b["status"] for h, b in receiver.received if h == "json"] == ["open", "resolved"]


async def test_a_restart_neither_resends_nor_forgets_an_open_alert(
    receiver: Receiver, store_url: str
) -> None:
    """After a restart the open alert is not sent again, and its resolve still comes when it clears."""
    health, clock = [erp(), shop(up=False)], Clock()
    first_store = Store(store_url)
    first_store.migrate()
    first = alerter(receiver, first_store, health, clock)
    await first.check()
    first_store.close()

    again = Store(store_url)
    again.migrate()
    try:
        second = alerter(receiver, again, health, clock)
        clock.now += timedelta(minutes=5)
        assert await second.check() == []
        assert len(receiver.texts()) == 1
        health[1] = shop()
        await second.check()
        assert receiver.texts()[1].startswith("[syncd] RESOLVED: shop has been failing")
    finally:
        again.close()


async def test_transient_failures_are_retried_and_an_undelivered_alert_waits_for_the_next_check(
    receiver: Receiver, store: Store
) -> None:
    """Two 503s are retried within a check; a receiver failing every try gets the alert at the next check, once."""
    health, clock = [erp(), shop(up=False)], Clock()
    alerts = alerter(
        receiver, store, health, clock, webhooks=[{"url": f"{receiver.url}/hook/slack/{SLACK_TOKEN}"}]
    )
    receiver.fail = 2
    await alerts.check()
    assert (receiver.attempts, len(receiver.texts())) == (3, 1)
    health[1] = shop()
    receiver.fail = 3
    await alerts.check()
    assert (receiver.attempts, len(receiver.texts())) == (6, 1)
    await alerts.check()
    await alerts.check()
    assert receiver.texts()[1].startswith("[syncd] RESOLVED")
    assert len(receiver.texts()) == 2


async def test_a_receiver_down_is_tried_once_per_check_not_once_per_alert(
    receiver: Receiver, store: Store
) -> None:
    """With a receiver failing every try, a check spends its retries on the first alert and skips the rest."""
    health = [erp(), shop(up=False), {**shop(up=False), "name": "outlet"}]
    alerts = alerter(
        receiver, store, health, Clock(), webhooks=[{"url": f"{receiver.url}/hook/slack/{SLACK_TOKEN}"}]
    )
    receiver.fail = 100
    await alerts.check()
    assert receiver.attempts == 3
    receiver.fail = 0
    await alerts.check()
    assert len(receiver.texts()) == 2


async def test_a_refused_delivery_is_not_retried(receiver: Receiver, store: Store) -> None:
    """A 404 (a wrong URL) is not retried within the check: retrying cannot help."""
    health, clock = [erp(), shop(up=False)], Clock()
    alerts = alerter(
        receiver, store, health, clock, webhooks=[{"url": f"{receiver.url}/hook/slack/{SLACK_TOKEN}"}]
    )
    receiver.fail, receiver.status = 1, 404
    await alerts.check()
    assert receiver.attempts == 1 and receiver.texts() == []


async def test_webhook_urls_and_secrets_never_reach_logs_or_alerts(receiver: Receiver, store: Store) -> None:
    """Delivery failures log the receiver as scheme and host only; a secret in an error is masked in the alert."""
    leaky = {**shop(up=False), "last_error": f"shop: refused token {SLACK_TOKEN}"}
    health, clock = [erp(), leaky], Clock()
    alerts = alerter(receiver, store, health, clock)
    receiver.fail = 100
    with capture_logs() as logs:
        await alerts.check()
        receiver.fail = 0
        await alerts.check()
    assert SLACK_TOKEN not in repr(logs)
    assert {
        "event": "alert.send_failed",
        "receiver": f"{receiver.url}/***",
        "error": "HTTP 503",
        "log_level": "warning",
    } in logs
    assert receiver.texts() == ["[syncd] ALERT: shop has been failing for 30 min: shop: refused token ***"]


async def test_a_storm_of_alerts_arrives_as_a_few_posts(receiver: Receiver, store: Store) -> None:
    """Past max_messages per check, the remaining alerts come together in one summary post."""
    drifts = [Drift("shop", f"SKU-{i}", 5, 3, DriftCause.MANUAL_EDIT) for i in range(5)]
    for _ in range(3):
        store.record_drift(drifts, {}, NOW - timedelta(minutes=10))
    alerts = alerter(receiver, store, [erp()], Clock(), max_messages=3)
    await alerts.check()
    texts = receiver.texts()
    assert len(texts) == 3
    assert texts[0].startswith("[syncd] ALERT: SKU-0 on shop drifted 3 times in 1 h: something else")
    assert texts[2].splitlines()[0] == "[syncd] 3 more alert change(s):"
    assert [line.split(" on ")[0] for line in texts[2].splitlines()[1:]] == [
        "- ALERT: SKU-2",
        "- ALERT: SKU-3",
        "- ALERT: SKU-4",
    ]
    await alerts.check()
    assert len(receiver.texts()) == 3


def sale(order: str, sku: str, quantity: int, channel: str = "tiktok") -> OrderLine:
    return OrderLine(channel, order, "1", sku, quantity, "open", NOW - timedelta(minutes=20))


async def test_stock_depth_and_refused_sales_from_the_ledger(receiver: Receiver, store: Store) -> None:
    """A SKU selling 12 an hour with 5 shown alerts on cover; a sale the ERP left untaken alerts as refused."""
    store.apply_stock([("MUG-1", 40), ("TEA-1", 100)], NOW - timedelta(hours=1), NOW - timedelta(hours=1))
    store.sync_listings(
        "tiktok", [Listing("MUG-1", "p1", 5), Listing("TEA-1", "p2", 50)], NOW - timedelta(hours=1)
    )
    store.ingest_lines([sale(f"o{i}", "MUG-1", 2) for i in range(6)], NOW - timedelta(minutes=20))
    store.ingest_lines([sale("o99", "TEA-1", 1)], NOW - timedelta(minutes=20))
    store.mark_lines(
        [f"tiktok:o{i}:1" for i in range(5)] + ["tiktok:o99:1"], "posted", NOW - timedelta(minutes=19)
    )
    settings = AlertSettings(sales_window=timedelta(hours=1), hot_rate=2, min_cover=timedelta(hours=6))
    assert cover_report(store, settings, NOW) == [
        Cover("MUG-1", "tiktok", 5, 12.0, 5 / 12),
        Cover("MUG-1", "erp", 28, 12.0, 28 / 12),
    ]
    alerts = alerter(receiver, store, [erp()], Clock())
    changes = await alerts.check()
    assert [c.key for c in changes] == [
        "sale_refused:MUG-1",
        "stock_depth:erp:MUG-1",
        "stock_depth:tiktok:MUG-1",
    ]
    assert (
        "[syncd] ALERT: The ERP refused 2 sold unit(s) of MUG-1 (1 order line(s), first tiktok:o5:1)"
        in receiver.texts()[0]
    )


async def test_without_webhooks_alerts_are_kept_but_not_sent(receiver: Receiver, store: Store) -> None:
    """With no webhook configured the alerts are still recorded (for the page) and nothing is posted."""
    alerts = Alerter(
        AlertSettings(),
        store,
        lambda: [erp(), shop(up=False)],
        reconcile_interval=timedelta(minutes=5),
        started_at=NOW,
        clock=Clock(),
    )
    assert [c.key for c in await alerts.check()] == ["down:shop"]
    assert [row.key for row in store.alerts()] == ["down:shop"]
    assert receiver.attempts == 0
