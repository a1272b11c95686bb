"""The status data's only I/O: read the ledger and the daemon, and hand the rows to the pure
functions of the other modules. The daemon passes its engine's snapshot; the report commands
pass none."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from syncd.errors import StoreError
from syncd.history import channel_policies
from syncd.status.channels import breakers, channel_health, with_breakers
from syncd.status.drift import drift_summary
from syncd.status.runs import activity, run_rows
from syncd.status.sku_report import sku_report
from syncd.status.stock import oversell_risk, refused_sales, sold_by_sku, sold_out
from syncd.status.times import iso

RISK_WINDOW = timedelta(hours=1)  # "hot" means most units sold over this window
CHART_WINDOW = timedelta(hours=3)
CHART_BUCKETS = 36
DRIFT_WINDOW = timedelta(hours=24)


def load_status(
    store: Any, config: Any, snapshot: Mapping[str, Any], now: datetime, kits: Any = None
) -> dict[str, Any]:
    """The main page's data: ``snapshot`` is the engine's (connectors, low stock, propagation);
    ``kits`` the engine's kit listings, if the mapping has kits."""
    pushes = store.pushes_in_states(("pending", "failed"))
    listings = store.listings()
    skus = store.skus()
    sold = sold_by_sku(store.history_totals(now - RISK_WINDOW, ("order", "cancel")))
    low = snapshot.get("low_stock", [])
    chart: tuple[datetime, float, dict[tuple[str, int], tuple[int, int]]] = store.history_buckets(
        now - CHART_WINDOW, now, CHART_BUCKETS, ("order", "push")
    )
    chosen = {*(s["sku"] for s in low), *sold}
    risk = oversell_risk(
        low,
        sold,
        skus,
        store.reserved_by_sku(chosen),
        listings,
        pushes,
        {s: config.stock.safety_for(s) for s in chosen},
        kits_of=kits.kits_of if kits else None,
    )
    return {
        "as_of": iso(now),
        "channels": channel_health(snapshot.get("connectors", []), pushes, now),
        "oversell_risk": risk,
        "sold_out": [sku for sku in sold_out(low) if sku not in {r["sku"] for r in risk}],
        "refused_sales": refused_sales(
            store.history(since=now - DRIFT_WINDOW, kinds=("refused",), limit=200)
        ),
        "drift_24h": drift_summary(store.drift_since(now - DRIFT_WINDOW)),
        "runs": run_rows(store.recent_runs_by_kind(8), now),
        "activity": activity(*chart, now, CHART_BUCKETS),
        "outbox": {
            "pending": sum(1 for p in pushes if p.state == "pending"),
            "failed": sum(1 for p in pushes if p.state == "failed"),
        },
        "sku_count": len(skus),
    }


def load_sku(
    store: Any, config: Any, sku: str, now: datetime, active_events: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """One SKU's page (and ``syncd explain``)."""
    row = store.skus([sku]).get(sku)
    return sku_report(
        sku,
        row,
        store.reserved_by_sku([sku]).get(sku, 0),
        config.stock.safety_for(sku),
        store.lines_of_sku(sku),
        store.listings(skus=[sku]),
        [p for p in store.pushes_in_states(("pending", "failed")) if p.sku == sku],
        store.history(sku=sku, limit=1000),
        channel_policies(config),
        active_events,
        now,
    )


def matching_skus(store: Any, text: str, limit: int = 20) -> list[str]:
    """SKUs whose code contains ``text`` (case-insensitive), for a search that is not exact."""
    needle = text.casefold()
    return sorted(s for s in store.skus() if needle in s.casefold())[:limit]


def _flush_history(daemon: Any) -> None:
    history = getattr(daemon.engine, "history", None)
    if history is not None:
        history.flush()


def daemon_breakers(daemon: Any) -> dict[str, dict[str, Any]]:
    """Each connector's circuit breaker and API budget, by name (for /api/status and /metrics)."""
    return breakers([daemon.engine.erp, *daemon.engine.channels.values()])


def daemon_status(daemon: Any) -> dict[str, Any]:
    """/api/status: the daemon's own status, extended with the operator's view."""
    _flush_history(daemon)
    status: dict[str, Any] = daemon.status()
    status["connectors"] = with_breakers(status.get("connectors", []), daemon_breakers(daemon))
    if "store_error" in status:
        return status
    try:
        status |= load_status(daemon.store, daemon.config, status, daemon.engine.clock(), daemon.engine.kits)
    except StoreError as exc:
        status["store_error"] = str(exc)
    return status


def daemon_sku(daemon: Any, sku: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """One SKU's page data: (the daemon's header data, the SKU's report, near matches if unknown)."""
    _flush_history(daemon)
    now = daemon.engine.clock()
    status = {"version": daemon.status().get("version"), "started_at": iso(daemon.started_at)}
    events = [e for e in daemon.engine.status().get("events", []) if e.get("active")]
    report = load_sku(daemon.store, daemon.config, sku, now, events)
    kits = daemon.engine.kits
    if kits and not report["known"]:
        explain_kit_decisions(report, lambda channel: kits.components(channel, sku) is not None)
    near = [] if report["known"] or report["channels"] else matching_skus(daemon.store, sku)
    return status, report, near


def explain_kit_decisions(report: dict[str, Any], is_kit: Callable[[str], bool]) -> None:
    """A kit listing's quantity is made of its components' (the ERP has no stock of the kit
    itself): its decisions say so instead of quoting on-hand figures of a SKU the ERP lacks."""
    for channel in report["channels"]:
        decision = channel.get("decision")
        if decision and is_kit(channel["channel"]):
            decision["text"] = f"decided {channel['channel']} = {decision['quantity']}: the kits its components allow"
