"""The operator's view as data: pure functions from ledger rows and the engine's snapshot to the
dicts that /status, /api/status and the report commands show (no I/O, no clock: ``now`` is passed).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from syncd.core import available_to_sell
from syncd.errors import StoreError
from syncd.history import channel_policies
from syncd.store import DriftRow, HistoryEvent, LineRow, ListingRow, PushRow, RunRow, SkuRow

# A channel's rules as the config defaults them (ChannelPolicy): only other values explain anything.
DEFAULT_RULES: dict[str, Any] = {"share": 100, "buffer": 0, "cap": None, "priority": 100, "weight": 1}

CAUSES = {
    "missed_order": "missed order (the channel sold units syncd never heard of)",
    "manual_edit": "manual edit on the channel",
    "missed_cancellation": "missed cancellation (the channel restocked a cancelled order)",
    "unknown_baseline": "first sighting (syncd had never set this listing)",
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def age_seconds(then: datetime | str | None, now: datetime) -> float | None:
    if then is None:
        return None
    when = datetime.fromisoformat(then) if isinstance(then, str) else then
    return round(max(0.0, (now - when).total_seconds()), 1)


def shown_now(row: ListingRow) -> int | None:
    """What a listing shows as far as the ledger knows: the last level set or read, less the
    sales the channel reported since; the last read if syncd never set it."""
    if row.last_pushed is None:
        return row.observed
    return max(0, row.last_pushed - row.sold_since_push)


def correction_label(row: DriftRow) -> str:
    """What reconcile did about a drift, spelled out (a missing correction is not a dash)."""
    if row.correction is None:
        return f"already right: left at {row.observed} (its target)"
    if row.correction == row.observed:
        return f"kept at {row.observed}"
    return f"set to {row.correction}"


# ---------------------------------------------------------------------- the main page
def channel_health(
    connectors: Sequence[Mapping[str, Any]], pushes: Iterable[PushRow], now: datetime
) -> list[dict[str, Any]]:
    """Each connector's state, with the age of its last success and what waits in its outbox."""
    waiting: dict[str, list[PushRow]] = defaultdict(list)
    for push in pushes:
        if push.state == "pending":
            waiting[push.channel].append(push)
    result = []
    for c in connectors:
        queued = waiting.get(c["name"], [])
        if c.get("healthy"):
            state = "healthy"
        elif c.get("needs_human"):
            state = "needs a human"
        elif c.get("last_success") is None and not c.get("last_error"):
            state = "starting"
        else:
            state = "failing"
        result.append(
            {
                **c,
                "state": state,
                "lag_seconds": age_seconds(c.get("last_success"), now),
                "pending_pushes": len(queued),
                "oldest_pending_seconds": age_seconds(min((p.created_at for p in queued), default=None), now),
            }
        )
    return result


def sold_by_sku(totals: Mapping[tuple[str, str], int]) -> Counter[str]:
    """Units sold per SKU from history totals per (SKU, kind): orders less cancellations."""
    sold: Counter[str] = Counter()
    for (sku, kind), units in totals.items():
        if kind == "order":
            sold[sku] += units
        elif kind == "cancel":
            sold[sku] -= units
    return sold


def oversell_risk(
    low_stock: Sequence[Mapping[str, Any]],
    sold: Mapping[str, int],
    skus: Mapping[str, SkuRow],
    reserved: Mapping[str, int],
    listings: Iterable[ListingRow],
    pending: Iterable[PushRow],
    safety: Mapping[str, int],
    *,
    hot: int = 10,
    limit: int = 25,
) -> list[dict[str, Any]]:
    """Hot SKUs (most sold recently) and low-stock ones: stock, and what each channel shows now
    against its part. Rows at risk (a channel shows more than its part, or the channels together
    more than exists in low-stock mode) come first."""
    splits = {s["sku"]: s for s in low_stock}
    hottest = [sku for sku, units in sorted(sold.items(), key=lambda kv: (-kv[1], kv[0])) if units > 0][:hot]
    chosen = list(dict.fromkeys([*hottest, *splits]))
    by_sku: dict[str, list[ListingRow]] = defaultdict(list)
    for row in listings:
        if row.sku in chosen:
            by_sku[row.sku].append(row)
    queued = {(p.channel, p.sku): p.target for p in pending if p.state == "pending"}
    rows = []
    for sku in chosen:
        split = splits.get(sku)
        on_hand = skus[sku].on_hand if sku in skus else None
        units_reserved = reserved.get(sku, 0)
        ats = split["ats"] if split else available_to_sell(on_hand or 0, units_reserved, safety.get(sku, 0))
        channels: list[dict[str, Any]] = []
        risks: list[str] = []
        catching_up: list[str] = []  # above their target, within what exists: a push on its way
        for row in sorted(by_sku.get(sku, []), key=lambda r: r.channel):
            shows = shown_now(row)
            part = (
                split["targets"].get(row.channel)
                if split
                else queued.get((row.channel, sku), row.last_pushed)
            )
            over = shows is not None and part is not None and shows > part
            if over and split:
                # In low-stock mode the parts add up to what exists: a unit over is one that can
                # be sold twice.
                risks.append(f"{row.channel} shows {(shows or 0) - (part or 0)} more than its part")
            elif shows is not None and shows > ats:
                # Channels share the pool outside it; only more than the pool itself is at risk.
                risks.append(f"{row.channel} shows {shows - ats} more than exist")
            elif over:
                catching_up.append(f"{row.channel} lowering {shows} to {part}")
            channels.append(
                {
                    "channel": row.channel,
                    "shows": shows,
                    "part": part,
                    "queued": queued.get((row.channel, sku)),
                    "over": over,
                    "status": row.status,
                }
            )
        total = sum(shown_now(row) or 0 for row in by_sku.get(sku, []))
        if split and total > ats:
            risks.insert(0, f"channels show {total} units, {ats} available")
        rows.append(
            {
                "sku": sku,
                "on_hand": on_hand,
                "reserved": units_reserved,
                "ats": ats,
                "low_stock": split is not None,
                "threshold": split["threshold"] if split else None,
                "sold_recently": sold.get(sku, 0),
                "hot": sku in hottest,
                "channels": channels,
                "shown_total": total,
                "risk": "; ".join(risks) or None,
                "catching_up": "; ".join(catching_up) or None,
            }
        )
    # Sold out everywhere and not selling: nothing can go wrong there (the page counts them).
    rows = [r for r in rows if r["risk"] or r["hot"] or r["ats"] > 0 or r["shown_total"] > 0]
    # At risk first, fewest units first; then hot SKUs; then the rest, fewest units first.
    rows.sort(key=lambda r: (r["risk"] is None, 0 if r["risk"] else not r["hot"], r["ats"], r["sku"]))
    return rows[:limit]


def sold_out(low_stock: Sequence[Mapping[str, Any]]) -> list[str]:
    """Low-stock SKUs with nothing left to split: 0 available, 0 for every channel."""
    return sorted(s["sku"] for s in low_stock if s["ats"] == 0 and not any(s["targets"].values()))


def refused_sales(events: Iterable[HistoryEvent]) -> list[dict[str, Any]]:
    """Sales the ERP refused to record (the stock was already gone: an oversell), newest first.
    The engine offers a refused sale again and again (backing off); each sale is listed once,
    with how often it was refused."""
    by_sale: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in sorted((e for e in events if e.kind == "refused"), key=lambda e: e.at):
        key = (e.channel, e.outcome, e.sku)
        row = by_sale.setdefault(
            key,
            {
                "at": iso(e.at),
                "channel": e.channel,
                "order": e.outcome,
                "sku": e.sku,
                "units": e.quantity,
                "times": 0,
            },
        )
        row["times"] += 1
        row["last_at"] = iso(e.at)
    return sorted(by_sale.values(), key=lambda r: r["at"] or "", reverse=True)


def drift_summary(rows: Iterable[DriftRow]) -> list[dict[str, Any]]:
    """Drift grouped by cause: how often, on how many listings, how far off, and what was done."""
    groups: dict[str, list[DriftRow]] = defaultdict(list)
    for row in rows:
        groups[row.cause].append(row)
    summary = []
    for cause, found in groups.items():
        ordered = sorted(found, key=lambda r: r.at, reverse=True)
        summary.append(
            {
                "cause": cause,
                "meaning": CAUSES.get(cause, cause),
                "count": len(found),
                "listings": len({(r.channel, r.sku) for r in found}),
                "units_off": sum(abs(r.observed - r.expected) for r in found if r.expected is not None),
                "corrected": sum(1 for r in found if r.correction is not None and r.correction != r.observed),
                "already_right": sum(1 for r in found if r.correction is None or r.correction == r.observed),
                "last_at": iso(ordered[0].at),
                "latest": [drift_row(r) for r in ordered[:5]],
            }
        )
    return sorted(summary, key=lambda g: (-g["count"], g["cause"]))


def drift_row(row: DriftRow) -> dict[str, Any]:
    return {
        "at": iso(row.at),
        "channel": row.channel,
        "sku": row.sku,
        "expected": row.expected,
        "observed": row.observed,
        "cause": row.cause,
        "correction": row.correction,
        "done": correction_label(row),
    }


def run_rows(rows: Iterable[RunRow], now: datetime) -> list[dict[str, Any]]:
    """Runs with their duration; one not finished is in progress (counts come at its end)."""
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "in_progress": r.finished_at is None,
            "duration_seconds": round(((r.finished_at or now) - r.started_at).total_seconds(), 3),
            "counts": {k: v for k, v in sorted(r.counts.items()) if v},
            "error": r.error,
        }
        for r in rows
    ]


def activity(
    start: datetime,
    size: float,
    counts: Mapping[tuple[str, int], tuple[int, int]],
    now: datetime,
    buckets: int,
) -> dict[str, Any]:
    """The chart's series from history counted per time slice ((kind, slice) -> (events, units)):
    units sold and pushes sent per slice."""
    return {
        "start": iso(start),
        "end": iso(now),
        "bucket_seconds": round(size, 1),
        "sales": [counts.get(("order", i), (0, 0))[1] for i in range(buckets)],
        "pushes": [counts.get(("push", i), (0, 0))[0] for i in range(buckets)],
    }


def outbox(
    pushes: Iterable[PushRow], health: Mapping[str, Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """What waits to be sent, oldest first, with why it waits (or why it was given up)."""
    rows = []
    for p in pushes:
        direction = "set" if p.compare is None else ("decrease" if p.target < p.compare else "increase")
        channel = health.get(p.channel, {})
        if p.state == "failed":
            why = f"given up after {p.attempts} attempts: {p.last_error or 'no reason recorded'}"
        elif p.attempts:
            why = f"retrying after {p.attempts} failed attempts: {p.last_error or 'no reason recorded'}"
        elif channel and not channel.get("healthy", True):
            why = f"channel {p.channel} is {'refusing credentials' if channel.get('needs_human') else 'failing'}"
        else:
            why = "queued: the channel's sender takes it next (decreases go first)"
        rows.append(
            {
                "id": p.id,
                "channel": p.channel,
                "sku": p.sku,
                "from": p.compare,
                "target": p.target,
                "direction": direction,
                "reason": p.reason,
                "state": p.state,
                "attempts": p.attempts,
                "waiting_seconds": age_seconds(p.created_at, now),
                "last_error": p.last_error or None,
                "why": why,
            }
        )
    return rows


# ---------------------------------------------------------------------- one SKU
def explain_decision(detail: Mapping[str, Any], target: int | None) -> str:
    """One line on why a decision chose its quantity."""
    parts = [f"on hand {detail.get('on_hand')} - reserved {detail.get('reserved', 0)}"]
    if detail.get("safety_stock"):
        parts.append(f"- safety {detail['safety_stock']}")
    text = " ".join(parts) + f" = {detail.get('ats')} available"
    if detail.get("unaccounted"):
        text += f"; {detail['unaccounted']} probably sold, not reported yet"
    if detail.get("low_stock"):
        split = ", ".join(f"{c} {q}" for c, q in sorted((detail.get("split") or {}).items()))
        text += f"; low stock (threshold {detail.get('threshold')}): split {split}"
    policy = {k: v for k, v in (detail.get("policy") or {}).items() if DEFAULT_RULES.get(k, object()) != v}
    if policy:
        text += "; rules " + ", ".join(f"{k} {v}" for k, v in sorted(policy.items()))
    if detail.get("events"):
        text += "; events " + ", ".join(detail["events"])
    return f"{text} -> {target} ({detail.get('reason', '?')})"


def level_series(events: Sequence[HistoryEvent]) -> dict[str, list[tuple[str, int]]]:
    """Step series over time: "on hand" from ERP reads, and per channel the level it showed
    (reads and writes set it; its own sales and cancellations move it in between)."""
    series: dict[str, list[tuple[str, int]]] = defaultdict(list)
    level: dict[str, int] = {}
    for e in sorted(events, key=lambda e: e.at):
        at = e.at.isoformat()
        if e.kind == "on_hand" and e.quantity is not None:
            series["on hand"].append((at, e.quantity))
        elif (
            e.channel
            and e.quantity is not None
            and (e.kind == "read" or (e.kind == "push" and e.outcome == "sent"))
        ):
            level[e.channel] = e.quantity
            series[e.channel].append((at, e.quantity))
        elif e.kind in ("order", "cancel") and e.channel in level:
            step = -(e.quantity or 0) if e.kind == "order" else e.quantity or 0
            level[e.channel] = max(0, level[e.channel] + step)
            series[e.channel].append((at, level[e.channel]))
    return dict(series)


def event_row(e: HistoryEvent) -> dict[str, Any]:
    d = e.detail
    if e.kind == "on_hand":
        text = f"ERP on hand {e.quantity}"
    elif e.kind == "read":
        text = f"read: {e.channel} shows {e.quantity}"
    elif e.kind == "push":
        text = f"push {e.outcome}: {e.channel} set to {e.quantity}"
        if d.get("read") is not None:
            text += f" (read {d['read']} just before)"
        if d.get("error"):
            text += f": {d['error']}"
    elif e.kind == "order":
        text = f"order {e.outcome} on {e.channel}: {e.quantity} sold"
    elif e.kind == "cancel":
        text = f"order {e.outcome} on {e.channel} cancelled: {e.quantity} back"
    elif e.kind == "refused":
        text = f"the ERP refused the sale of {e.quantity} (order {e.outcome} on {e.channel}): oversold"
    elif e.kind == "decision":
        text = f"decided {e.channel} = {e.quantity}: " + explain_decision(d, e.quantity)
    else:
        text = f"{e.kind} {e.quantity}"
    return {
        "at": iso(e.at),
        "kind": e.kind,
        "channel": e.channel or None,
        "quantity": e.quantity,
        "text": text,
    }


def sku_report(
    sku: str,
    row: SkuRow | None,
    reserved: int,
    safety: int,
    lines: Sequence[LineRow],
    listings: Iterable[ListingRow],
    pushes: Iterable[PushRow],
    events: Sequence[HistoryEvent],
    policies: Mapping[str, Mapping[str, Any]],
    active_events: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """Everything about one SKU: stock, reservations, and for each channel what it shows and why
    (last decision, last push, last read, what is queued), plus its history over time."""
    on_hand = row.on_hand if row else None
    queued = {p.channel: p for p in pushes if p.sku == sku and p.state in ("pending", "failed")}
    last: dict[tuple[str, str], HistoryEvent] = {}
    for e in events:
        last[(e.kind, e.channel)] = e
    channels = []
    for listing in sorted((r for r in listings if r.sku == sku), key=lambda r: r.channel):
        c = listing.channel
        decision = last.get(("decision", c))
        push = last.get(("push", c))
        channels.append(
            {
                "channel": c,
                "shows": shown_now(listing),
                "status": listing.status,
                "detail": listing.detail or None,
                "last_set": listing.last_pushed,
                "set_at": iso(listing.pushed_at),
                "sold_since_set": listing.sold_since_push,
                "last_read": listing.observed,
                "read_at": iso(listing.observed_at),
                "last_push": event_row(push) if push else None,
                "decision": event_row(decision) if decision else None,
                "unaccounted": (decision.detail.get("unaccounted") if decision else None),
                "rules": dict(policies.get(c, {})),
                "events": [e["name"] for e in active_events if e.get("channel") == c],
                "queued": (
                    {"target": queued[c].target, "state": queued[c].state, "reason": queued[c].reason}
                    if c in queued
                    else None
                ),
            }
        )
    open_lines = [x for x in lines if x.state in ("reserved", "posted")]
    return {
        "sku": sku,
        "known": row is not None,
        "on_hand": on_hand,
        "read_at": iso(row.read_at) if row else None,
        "reserved": reserved,
        "safety_stock": safety,
        "ats": available_to_sell(on_hand or 0, reserved, safety) if row else None,
        "reservations": [
            {
                "channel": x.channel,
                "order": x.order_id,
                "units": x.quantity,
                "state": x.state,
                "at": iso(x.updated_at),
            }
            for x in open_lines
        ],
        "channels": channels,
        "series": level_series(events),
        "orders": [(iso(e.at), e.channel, e.quantity) for e in events if e.kind == "order"],
        "pushes": [(iso(e.at), e.channel, e.quantity, e.outcome) for e in events if e.kind == "push"],
        "events": [event_row(e) for e in reversed(events)],
        "as_of": iso(now),
    }


# ---------------------------------------------------------------------- reading the ledger
# The only I/O of this module: the loaders below read the store and hand the rows to the pure
# functions above. The daemon passes its engine's snapshot; the report commands pass none.
RISK_WINDOW = timedelta(hours=1)  # "hot" means most units sold over this window
CHART_WINDOW = timedelta(hours=3)
CHART_BUCKETS = 36
DRIFT_WINDOW = timedelta(hours=24)


def load_status(store: Any, config: Any, snapshot: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The main page's data: ``snapshot`` is the engine's (connectors, low stock, propagation)."""
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


def daemon_status(daemon: Any) -> dict[str, Any]:
    """/api/status: the daemon's own status, extended with the operator's view."""
    _flush_history(daemon)
    status: dict[str, Any] = daemon.status()
    if "store_error" in status:
        return status
    try:
        status |= load_status(daemon.store, daemon.config, status, daemon.engine.clock())
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
    near = [] if report["known"] or report["channels"] else matching_skus(daemon.store, sku)
    return status, report, near
