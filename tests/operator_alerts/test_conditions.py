"""Which conditions a snapshot raises: connectors down or refused, refused sales, drift, overruns, cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.alerts import ConnectorView, Cover, Snapshot, Unposted, conditions, hours_of_cover, mask_url
from syncd.config import AlertSettings

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SETTINGS = AlertSettings(
    channel_down_after=timedelta(minutes=10), drift_repeats=3, min_cover=timedelta(hours=6)
)
ERP_UP = ConnectorView("erp", "erp", True, False, NOW - timedelta(seconds=30), None)


def shop(
    *,
    healthy: bool = True,
    needs_human: bool = False,
    last_success: datetime | None = NOW,
    error: str | None = None,
) -> ConnectorView:
    return ConnectorView("shop", "channel", healthy, needs_human, last_success, error)


def keys(snapshot: Snapshot) -> list[str]:
    return [c.key for c in conditions(snapshot, SETTINGS)]


@pytest.mark.parametrize(
    ("connector", "expected"),
    [
        (shop(), []),
        (shop(healthy=False, last_success=NOW - timedelta(minutes=9), error="shop: HTTP 503"), []),
        (
            shop(healthy=False, last_success=NOW - timedelta(minutes=10), error="shop: HTTP 503"),
            ["down:shop"],
        ),
        (shop(healthy=False, last_success=None, error="shop: timeout"), ["down:shop"]),
        (shop(healthy=False, last_success=None), []),
        (shop(healthy=False, needs_human=True, error="shop: HTTP 401"), ["needs_human:shop"]),
    ],
    ids=["healthy", "down-9-min", "down-10-min", "never-answered", "not-tried-yet", "credentials"],
)
def test_connector_conditions(connector: ConnectorView, expected: list[str]) -> None:
    """A connector alerts once down for channel_down_after, or at once when its credentials are refused."""
    started = NOW - timedelta(hours=1)
    assert keys(Snapshot(NOW, started, connectors=(connector,))) == expected


@pytest.mark.parametrize(
    ("erp", "recorded_ago", "expected"),
    [
        (ERP_UP, timedelta(minutes=5), ["sale_refused:MUG-1"]),
        (ERP_UP, timedelta(minutes=1), []),
        (
            ConnectorView("erp", "erp", False, False, NOW - timedelta(minutes=9), "erp: HTTP 502"),
            timedelta(minutes=5),
            [],
        ),
        (
            ConnectorView("erp", "erp", True, False, NOW - timedelta(minutes=4), None),
            timedelta(minutes=5),
            [],
        ),
    ],
    ids=["refused", "not-due-yet", "erp-down", "erp-not-asked-since"],
)
def test_a_sale_the_erp_has_not_taken_while_answering_is_refused(
    erp: ConnectorView, recorded_ago: timedelta, expected: list[str]
) -> None:
    """A sale still unposted refused_after its recording, with the ERP answering since, is an oversell."""
    sale = Unposted("shop:1001:1", "MUG-1", 2, NOW - recorded_ago)
    assert keys(Snapshot(NOW, NOW, connectors=(erp,), unposted=(sale,))) == expected


def test_refused_sales_are_one_alert_per_sku_with_the_units() -> None:
    """Several refused lines of one SKU make one alert naming the units and lines."""
    old = NOW - timedelta(minutes=5)
    sales = (Unposted("shop:1:1", "MUG-1", 2, old), Unposted("tiktok:9:1", "MUG-1", 1, old))
    (found,) = conditions(Snapshot(NOW, NOW, connectors=(ERP_UP,), unposted=sales), SETTINGS)
    assert found.text.startswith("The ERP refused 3 sold unit(s) of MUG-1 (2 order line(s), first shop:1:1)")


def test_repeated_drift_needs_k_drifts() -> None:
    """A listing that drifted drift_repeats times in the window alerts; fewer do not."""
    drift = {("shop", "MUG-1"): 3, ("shop", "TEA-1"): 2}
    assert keys(Snapshot(NOW, NOW, drift=drift)) == ["drift:shop:MUG-1"]


@pytest.mark.parametrize(
    ("started_ago", "took", "expected"),
    [
        (timedelta(minutes=6), None, ["reconcile_overrun"]),
        (timedelta(minutes=4), None, []),
        (timedelta(minutes=20), timedelta(minutes=7), ["reconcile_overrun"]),
        (timedelta(minutes=20), timedelta(minutes=2), []),
    ],
    ids=["running-too-long", "running", "took-too-long", "took-less"],
)
def test_reconcile_overrun(started_ago: timedelta, took: timedelta | None, expected: list[str]) -> None:
    """The latest reconcile overruns when it runs, or ran, longer than its interval."""
    started = NOW - started_ago
    snapshot = Snapshot(NOW, NOW, reconcile=(started, started + took if took else None))
    assert keys(snapshot) == expected


def test_hours_of_cover_per_channel_and_erp() -> None:
    """Cover is shown units over the channel's rate, and ERP units left over all channels' rate."""
    sold = {("tiktok", "MUG-1"): 20, ("shop", "MUG-1"): 4, ("shop", "TEA-1"): 1}
    shown = {("tiktok", "MUG-1"): 30, ("shop", "MUG-1"): 40, ("shop", "TEA-1"): 5}
    covers = hours_of_cover(sold, shown, {"MUG-1": 60, "TEA-1": 5}, timedelta(hours=2), hot_rate=2.0)
    assert covers == [
        Cover("MUG-1", "tiktok", 30, 10.0, 3.0),
        Cover("MUG-1", "erp", 60, 12.0, 5.0),
        Cover("MUG-1", "shop", 40, 2.0, 20.0),
    ]


def test_stock_depth_alerts_below_min_cover() -> None:
    """A hot SKU with less than min_cover of cover alerts, named by where it runs out."""
    covers = (
        Cover("MUG-1", "shop", 0, 4.0, 0.0),
        Cover("MUG-1", "tiktok", 30, 10.0, 3.0),
        Cover("MUG-1", "erp", 70, 10.0, 7.0),
    )
    sold_out, found = conditions(Snapshot(NOW, NOW, covers=covers), SETTINGS)
    assert sold_out.text == "MUG-1: 0 unit(s) shown on shop, selling 4.0 an hour: sold out; restock"
    assert found.key == "stock_depth:tiktok:MUG-1"
    assert found.text == (
        "MUG-1: 30 unit(s) shown on tiktok, selling 10.0 an hour: about 3.0 h of cover left; restock before it runs out"
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/***"),
        ("http://user:pw@127.0.0.1:9000/hook?token=x", "http://127.0.0.1:9000/***"),
        ("not a url", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    """A webhook URL in a log keeps only scheme and host: the path, query and user info are secrets."""
    assert mask_url(url) == masked
