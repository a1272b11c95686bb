"""The overview at /status: each connector with its circuit breaker and API budget, propagation,
sales and pushes over time, oversell risk, refused sales, drift, runs and events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.status.channels import connector_state
from syncd.status.charts import activity_chart
from syncd.status.html import data_table, duration, esc, header, page, raw, sku_link, span, timestamp

LOW_STOCK_ROWS = 25


def _state(state: str) -> tuple[str, str]:
    cls = {"healthy": "ok", "starting": "warn"}.get(state, "bad")
    return raw(f'<span class="{cls}">{esc(state)}</span>')


def _expected(value: int | None) -> str:
    return "never set by syncd" if value is None else f"expected {value}"


def render_status_page(status: Mapping[str, Any]) -> str:
    now = datetime.fromisoformat(status["as_of"]) if status.get("as_of") else None
    parts = [header(status, now)]
    if status.get("store_error"):
        parts.append(f'<section><p class="bad">Ledger: {esc(status["store_error"])}</p></section>')
    parts.append(_channels_section(status, now))
    parts.append(_speed_section(status))
    parts.append(_risk_section(status))
    parts.append(_refused_section(status, now))
    parts.append(_quarantine_section(status, now))
    parts.append(_drift_section(status, now))
    parts.append(_runs_section(status, now))
    parts.append(_events_section(status))
    return page("syncd status", "\n".join(parts), reload=True)


def _channels_section(status: Mapping[str, Any], now: datetime | None) -> str:
    connectors = status.get("channels") or status.get("connectors") or []
    rows = [
        [
            f"{c['name']}",
            f"{c['kind']} ({c['type']})",
            _state(c.get("state") or connector_state(c)),
            _breaker(c, now),
            timestamp(c.get("last_success"), now),
            duration(c.get("lag_seconds")) if c.get("lag_seconds") is not None else None,
            c.get("pending_pushes"),
            _budget(c.get("api_budget")),
            c.get("last_error"),
        ]
        for c in connectors
    ]
    table = data_table(
        [
            "Name",
            "Kind",
            "State",
            "Circuit breaker",
            "Last success",
            "Lag",
            "Queued pushes",
            "API budget today",
            "Last error",
        ],
        rows,
        "No connector.",
        numeric={6},
    )
    return f"<section><h2>Channels</h2>{table}</section>"


def _breaker(connector: Mapping[str, Any], now: datetime | None) -> tuple[str, str] | None:
    """The circuit breaker in words: closed, or open since when, after how many failures, and
    when it tries again (half-open: a trial call is due or under way)."""
    state = connector.get("circuit")
    if state is None:
        return None
    failures = connector.get("circuit_failures")
    in_a_row = f"{failures} failure{'' if failures == 1 else 's'} in a row" if failures else ""
    if state == "closed":
        note = f'<br><span class="small warn">{esc(in_a_row)}</span>' if in_a_row else ""
        return raw(f'<span class="ok">closed</span>{note}')
    opened, trial = connector.get("circuit_opened_at"), connector.get("circuit_next_trial_at")
    detail = [f"since {timestamp(opened, now)}" if opened else "", f"after {in_a_row}" if in_a_row else ""]
    if state == "half_open":
        label, cls, then = "half-open", "warn", "a trial call decides"
    else:
        label, cls, then = state, "bad", f"next trial at {timestamp(trial)}" if trial else ""
    text = ", ".join(d for d in detail if d) + ("; " if any(detail) and then else "") + then
    return raw(f'<span class="{cls}">{esc(label)}</span><br><span class="small">{esc(text)}</span>')


def _budget(budget: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """A daily API budget: requests used of those allowed (amber from 80 %, red when spent), and
    when the count starts again."""
    if not budget:
        return None
    used, allowed = budget.get("used_today"), budget.get("daily_budget")
    cls = "muted"
    if isinstance(used, int) and isinstance(allowed, int) and allowed > 0:
        cls = "bad" if used >= allowed else "warn" if used >= 0.8 * allowed else "ok"
    text = f"{_count(used)} of {_count(allowed)} requests"
    resets = budget.get("resets_in_seconds")
    note = f"resets in {span(resets)}" if isinstance(resets, int | float) else ""
    return raw(f'<span class="{cls}">{esc(text)}</span><br><span class="small muted">{esc(note)}</span>')


def _count(value: Any) -> str:
    """A count with its thousands apart by a narrow space that never breaks: 48 000."""
    return f"{value:,}".replace(",", "\u202f") if isinstance(value, int) else str(value)


def _figure(seconds: float | None) -> str:
    """A percentile as a short figure: 0.37 s, 12.5 s, 2.1 min."""
    if seconds is None:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.2f}\u00a0s"
    return f"{seconds:.1f}\u00a0s" if seconds < 120 else f"{seconds / 60:.1f}\u00a0min"


def _speed_section(status: Mapping[str, Any]) -> str:
    p = status.get("propagation_seconds") or {}
    if p.get("samples"):
        cards = "".join(
            f'<div class="card"><div class="muted small">{label}</div><div class="figure">{esc(_figure(p[label]))}</div></div>'
            for label in ("p50", "p95", "p99")
        )
        speed = f'<p class="small muted">A sale reaching every channel, over the last {esc(p["samples"])} sales:</p><div class="cards">{cards}</div>'
    else:
        speed = '<p class="muted">No sale timed yet.</p>'
    chart = activity_chart(status.get("activity") or {})
    return (
        f"<section><h2>Propagation</h2>{speed}</section><section><h2>Sales and pushes</h2>{chart}</section>"
    )


def _risk_section(status: Mapping[str, Any]) -> str:
    risk = status.get("oversell_risk")
    low = status.get("low_stock", [])
    if risk is None:  # an engine snapshot only: the planned split
        rows = [
            [s["sku"], s["ats"], s["threshold"], ", ".join(f"{k}: {v}" for k, v in s["targets"].items())]
            for s in sorted(low, key=lambda s: (s["ats"], s["sku"]))[:LOW_STOCK_ROWS]
        ]
        more = len(low) - LOW_STOCK_ROWS
        extra = f'<p class="muted">{more} more in /api/status.</p>' if more > 0 else ""
        table = data_table(["SKU", "Available", "Threshold", "Split"], rows, "No SKU is in low-stock mode.")
        return f"<section><h2>Low stock ({len(low)} SKUs)</h2>{table}{extra}</section>"
    rows = []
    for r in risk:
        shown = "<br>".join(
            f'<span class="nw">{esc(listing_label(c))} <b>{esc(c["shows"])}</b> of {esc(c["part"])}'
            + (' <span class="bad">over</span>' if c["over"] and r["risk"] else "")
            + "</span>"
            for c in r["channels"]
        )
        tags = (["hot"] if r["hot"] else []) + ([f"low (≤\u00a0{r['threshold']})"] if r["low_stock"] else [])
        rows.append(
            [
                sku_link(r["sku"]),
                ", ".join(tags),
                r["on_hand"],
                r["reserved"],
                r["ats"],
                r["sold_recently"],
                raw(shown or '<span class="muted">not listed</span>'),
                _risk(r),
            ]
        )
    table = data_table(
        [
            "SKU",
            "Why listed",
            "On hand",
            "Reserved",
            "Available",
            "Sold (1 h)",
            "Shows now of its part",
            "Risk",
        ],
        rows,
        "No hot or low-stock SKU.",
        numeric={2, 3, 4, 5},
    )
    gone = status.get("sold_out") or []
    quiet = (
        f'<p class="small muted">{len(gone)} more low-stock SKUs are sold out everywhere (0 available, every '
        f"channel at 0): {esc(', '.join(gone[:12]))}{' …' if len(gone) > 12 else ''}</p>"
        if gone
        else ""
    )
    return f"<section><h2>Oversell risk ({len(low)} SKUs in low-stock mode)</h2>{table}{quiet}</section>"


def _risk(row: Mapping[str, Any]) -> tuple[str, str]:
    if row["risk"]:
        return raw(f'<span class="bad">{esc(row["risk"])}</span>')
    if row.get("catching_up"):
        return raw(f'<span class="warn">none: {esc(row["catching_up"])}</span>')
    return raw('<span class="ok">none</span>')


def _refused_section(status: Mapping[str, Any], now: datetime | None) -> str:
    refused = status.get("refused_sales") or []
    rows = [
        [timestamp(r["at"], now), r["channel"], r["order"], sku_link(r["sku"]), r["units"], r.get("times", 1)]
        for r in refused[:50]
    ]
    table = data_table(
        ["First refused", "Channel", "Order", "SKU", "Units", "Times refused"],
        rows,
        "No sale was refused by the ERP in the last 24 h.",
        numeric={4, 5},
    )
    title = f"Sales the ERP refused ({len(refused)} in 24 h)" if refused else "Sales the ERP refused"
    note = (
        '<p class="small muted">The ERP had no stock left for these sales: units sold twice. syncd offers each again later.</p>'
        if refused
        else ""
    )
    return f"<section><h2>{esc(title)}</h2>{note}{table}</section>"


def _quarantine_section(status: Mapping[str, Any], now: datetime | None) -> str:
    """Orders and stock records refused as malformed or out of bounds: kept aside, never counted."""
    quarantine = status.get("quarantine") or {}
    if quarantine.get("error"):
        return f'<section><h2>Quarantined</h2><p class="bad">{esc(quarantine["error"])}</p></section>'
    latest = [q for q in quarantine.get("latest") or [] if q.get("resolved_at") is None]
    rows = [
        [timestamp(q["last_seen_at"], now), q["connector"], q["kind"], q.get("ref") or "(unreadable)", q["reason"], q["seen"]]
        for q in latest
    ]
    table = data_table(
        ["Last seen", "From", "Kind", "Id", "Why", "Times"],
        rows,
        "Nothing is quarantined.",
        numeric={5},
    )
    still = int(quarantine.get("open") or 0)
    title = f"Quarantined ({still} open)" if still else "Quarantined"
    note = (
        '<p class="small muted">Orders and stock records syncd could not take in as they are (malformed, or a'
        " quantity out of bounds): set aside, not counted, the rest goes on. <code>syncd quarantine</code>"
        " lists them all.</p>"
        if still
        else ""
    )
    return f"<section><h2>{esc(title)}</h2>{note}{table}</section>"


def _drift_section(status: Mapping[str, Any], now: datetime | None) -> str:
    groups = status.get("drift_24h")
    if groups is None:
        return ""
    rows = [
        [
            raw(f'<b>{esc(g["cause"])}</b><br><span class="small muted">{esc(g["meaning"])}</span>'),
            g["count"],
            g["listings"],
            g["units_off"],
            g["corrected"],
            g["already_right"],
            timestamp(g["last_at"], now),
            raw(
                "<br>".join(
                    f"{esc(d['channel'])} {sku_link(d['sku'])[1]}: {_expected(d['expected'])}, read {esc(d['observed'])}; {esc(d['done'])}"
                    for d in g["latest"][:3]
                )
            ),
        ]
        for g in groups
    ]
    table = data_table(
        ["Cause", "Times", "Listings", "Units off", "Set right", "Already right", "Last", "Latest"],
        rows,
        "No drift in the last 24 h.",
        numeric={1, 2, 3, 4, 5},
    )
    note = (
        '<p class="small muted">"Set right": reconcile pushed a correction. "Already right": the level read was '
        "already the listing's target, so it was left alone.</p>"
    )
    return f"<section><h2>Drift, last 24 h</h2>{table}{note if groups else ''}</section>"


RUNS_PER_KIND = 4


def _runs_section(status: Mapping[str, Any], now: datetime | None) -> str:
    rows, seen = [], Counter[str]()
    for r in status.get("runs", []):
        seen[r["kind"]] += 1
        if seen[r["kind"]] > RUNS_PER_KIND:
            continue
        if r.get("in_progress") or r.get("finished_at") is None:
            took: Any = raw(
                f'<span class="warn">in progress</span> ({esc(duration(r.get("duration_seconds")))} so far)'
            )
            counts = "counted at its end"
        else:
            took = duration(r.get("duration_seconds"))
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()) if v) or "nothing to do"
        rows.append([r["kind"], timestamp(r["started_at"], now), took, counts, r.get("error")])
    table = data_table(["Kind", "Started", "Took", "Counts", "Error"], rows, "No run yet.")
    note = f'<p class="small muted">The last {RUNS_PER_KIND} of each kind; more in /api/status and <code>syncd runs</code>.</p>'
    return f"<section><h2>Last runs</h2>{table}{note if rows else ''}</section>"


def _events_section(status: Mapping[str, Any]) -> str:
    events = [
        [
            e["name"],
            e["channel"],
            e["start"],
            e["end"],
            "active" if e["active"] else "scheduled",
            ", ".join(f"{k} {e[k]}" for k in ("share", "reserve", "priority") if e.get(k) is not None),
        ]
        for e in status.get("events", [])
    ]
    table = data_table(
        ["Name", "Channel", "Start", "End", "State", "Override"], events, "No event scheduled."
    )
    return f"<section><h2>Events</h2>{table}</section>"


def listing_label(channel: Mapping[str, Any]) -> str:
    """A channel's name, or for a kit listing drawing on the SKU, its channel, kit and units per kit."""
    kit = channel.get("kit")
    if kit is None:
        return str(channel["channel"])
    name = str(channel["channel"]).split("/", 1)[0]
    return f"{name} (kit {kit}, {channel.get('per_kit', 1)} per kit)"
