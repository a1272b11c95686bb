"""The /status pages a person reads: the overview and one SKU's history, as self-contained HTML
(inline CSS and SVG, no external assets, laid out for a phone too). Everything shown is escaped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

LOW_STOCK_ROWS = 25
COLOURS = ["#1f6feb", "#d1242f", "#8250df", "#bf8700", "#0a7f5a", "#cf222e", "#57606a"]

_STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:75rem;margin:0 auto;padding:1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;justify-content:space-between}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.1rem;margin:0 0 .6rem}
h1 a{color:inherit;text-decoration:none}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.9rem 1rem;margin:1rem 0}
form{display:flex;gap:.4rem;flex:1 1 16rem;max-width:26rem}
input[type=search]{flex:1;min-width:0;font:inherit;padding:.45rem .6rem;border:1px solid #8c959f;border-radius:6px}
button{font:inherit;padding:.45rem .9rem;border:0;border-radius:6px;background:#1f6feb;color:#fff}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e4e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:.9rem}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#116329;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.muted{color:#656d76}.small{font-size:.85rem}.nw{white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(4.6rem,1fr));gap:.5rem}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.6rem .8rem}
.card b{font-size:1.05rem}
.figure{font-size:1.4rem;font-weight:650;overflow-wrap:anywhere}
svg{width:100%;height:auto;display:block}
svg.chart{height:12rem;background:#fbfcfd;border:1px solid #eaeef2;border-radius:4px}
.axis{display:flex;justify-content:space-between;font-size:.85rem;color:#57606a;margin:.2rem 0}
.legend span{display:inline-block;margin-right:1rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
@media (max-width:640px){
 main{padding:.5rem}section{padding:.7rem}.figure{font-size:1.15rem}
 table.stack thead{display:none}
 table.stack tr{display:block;border-bottom:2px solid #d0d7de;padding:.3rem 0}
 table.stack td{display:flex;gap:.75rem;border:0;padding:.15rem .2rem;text-align:left}
 table.stack td::before{content:attr(data-label);flex:0 0 38%;font-weight:600;color:#57606a;text-align:left}
 table.stack td .v{min-width:0;overflow-wrap:anywhere}
}
"""

# Reloads the overview every 15 s, unless the operator is typing in the search box.
_RELOAD = (
    "<script>setInterval(function(){var a=document.activeElement;"
    "if(!a||a.tagName!=='INPUT'){location.reload()}},15000)</script>"
)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _when(value: str | None, now: datetime | None = None) -> str:
    """A time as the operator reads it: HH:MM:SS UTC (with the date if not today) and its age."""
    if not value:
        return "never"
    when = datetime.fromisoformat(value)
    text = (
        when.strftime("%H:%M:%S")
        if now is None or when.date() == now.date()
        else when.strftime("%Y-%m-%d %H:%M")
    )
    if now is not None:
        text += f" ({_ago((now - when).total_seconds())})"
    return text.replace(" ", "\u00a0")  # a time never wraps inside a narrow column


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}\u00a0s" if value < 60 else f"{value / 60:.1f}\u00a0min"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str, *, numeric: Collection[int] = ()
) -> str:
    """A table that stacks into labelled rows on a phone. Cells are escaped unless given as
    ``("html", markup)`` (markup this module built from escaped parts)."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="n"' if i in numeric else ""
            if isinstance(value, tuple) and value[0] == "html":
                content = value[1]
            elif value is None:
                content = '<span class="muted">&ndash;</span>'
            else:
                content = _e(value)
            # One wrapper per cell: on a phone the label and the value are then the only two items.
            cells.append(f'<td data-label="{_e(headers[i])}"{cls}><span class="v">{content}</span></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="stack"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _html(markup: str) -> tuple[str, str]:
    return ("html", markup)


def _state(state: str) -> tuple[str, str]:
    cls = {"healthy": "ok", "starting": "warn"}.get(state, "bad")
    return _html(f'<span class="{cls}">{_e(state)}</span>')


def _page(title: str, body: str, *, reload: bool) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_STYLE}</style></head><body><main>
{body}
</main>{_RELOAD if reload else ""}</body></html>"""


def _search(value: str = "") -> str:
    return (
        '<form method="get" action="/status" role="search">'
        f'<input type="search" name="sku" placeholder="Find a SKU" aria-label="SKU" value="{_e(value)}">'
        "<button type=submit>Show</button></form>"
    )


def _header(status: Mapping[str, Any], now: datetime | None, query: str = "") -> str:
    started = status.get("started_at")
    return (
        f'<header><div><h1><a href="/status">syncd {_e(status.get("version", ""))}</a></h1>'
        f'<div class="muted small">Up since {_e(_when(started, now))}. As of {_e(_when(status.get("as_of")))} UTC.</div>'
        f"</div>{_search(query)}</header>"
    )


# ---------------------------------------------------------------------- charts
# Drawn in a fixed-height box that stretches to the page's width (preserveAspectRatio="none",
# strokes that do not scale); the labels are HTML beside it, so they read at the page's size on
# a phone as on a desktop.
_W, _H = 1000, 200


def _svg(body: str, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img" '
        f'aria-label="{_e(label)}">{body}</svg>'
    )


def _activity_chart(activity: Mapping[str, Any]) -> str:
    """Bars of units sold and a line of pushes sent per time slice, each on its own scale (a
    reconcile's hundreds of pushes would flatten the sales)."""
    sales: list[int] = list(activity.get("sales") or [])
    pushes: list[int] = list(activity.get("pushes") or [])
    if not sales or not (any(sales) or any(pushes)):
        return '<p class="muted">No sale or push in the last hours.</p>'
    top_sales, top_pushes = max(max(sales), 1), max(max(pushes), 1)
    step = _W / len(sales)

    def y(v: float, top: int) -> float:
        return _H - 4 - (_H - 12) * v / top

    bars = "".join(
        f'<rect x="{i * step + step * 0.15:.1f}" y="{y(v, top_sales):.1f}" width="{step * 0.7:.1f}" '
        f'height="{_H - 4 - y(v, top_sales):.1f}" fill="#1f6feb" opacity=".8"><title>{v} sold</title></rect>'
        for i, v in enumerate(sales)
        if v
    )
    points = " ".join(f"{(i + 0.5) * step:.1f},{y(v, top_pushes):.1f}" for i, v in enumerate(pushes))
    line = (
        f'<polyline points="{points}" fill="none" stroke="#d1242f" stroke-width="2" '
        'vector-effect="non-scaling-stroke"/>'
    )
    start, end = activity.get("start") or "", activity.get("end") or ""
    fine = (
        bool(start and end)
        and (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() < 3600
    )
    per = _e(_seconds(activity.get("bucket_seconds")))
    return (
        f'<div class="axis"><span>top: {top_sales} sold</span><span>top: {top_pushes} pushes</span></div>'
        + _svg(bars + line, "Sales and pushes over time")
        + f'<div class="axis"><span>{_e(_clock(start, seconds=fine))}</span>'
        f"<span>{_e(_clock(end, seconds=fine))} UTC</span></div>"
        '<div class="legend small"><span><i style="background:#1f6feb"></i>units sold</span>'
        '<span><i style="background:#d1242f"></i>pushes sent</span>'
        f'<span class="muted">per {per}, each on its own scale</span></div>'
    )


def _expected(value: int | None) -> str:
    return "never set by syncd" if value is None else f"expected {value}"


def _clock(value: str, *, seconds: bool = False) -> str:
    return datetime.fromisoformat(value).strftime("%H:%M:%S" if seconds else "%H:%M") if value else ""


def _levels_chart(
    series: Mapping[str, Sequence[tuple[str, int]]], orders: Sequence[Sequence[Any]], now: str
) -> str:
    """Step lines of on-hand and each channel's shown level over time; ticks for orders."""
    if not any(series.values()):
        return '<p class="muted">No history recorded for this SKU yet.</p>'
    times = [datetime.fromisoformat(t) for s in series.values() for t, _ in s]
    times += [datetime.fromisoformat(o[0]) for o in orders]
    end = max([*times, datetime.fromisoformat(now)])
    start = min(times)
    span = max((end - start).total_seconds(), 1.0)
    top = max([v for s in series.values() for _, v in s] + [1])

    def x(t: datetime) -> float:
        return _W * (t - start).total_seconds() / span

    def y(v: float) -> float:
        return _H - 4 - (_H - 14) * v / top

    lines, legend = [], []
    for i, (name, points) in enumerate(sorted(series.items(), key=lambda kv: (kv[0] != "on hand", kv[0]))):
        colour = COLOURS[i % len(COLOURS)]
        path: list[str] = []
        last: int | None = None
        for t, v in points:
            px = x(datetime.fromisoformat(t))
            if last is not None:
                path.append(f"L{px:.1f},{y(last):.1f}")
            path.append(f"{'M' if last is None else 'L'}{px:.1f},{y(v):.1f}")
            last = v
        if last is not None:
            path.append(f"L{x(end):.1f},{y(last):.1f}")
        dash = ' stroke-dasharray="6 4"' if name == "on hand" else ""
        lines.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"{dash} '
            'vector-effect="non-scaling-stroke"/>'
        )
        legend.append(f'<span><i style="background:{colour}"></i>{_e(name)}</span>')
    ticks = "".join(
        f'<line x1="{x(datetime.fromisoformat(o[0])):.1f}" y1="{_H - 14}" x2="{x(datetime.fromisoformat(o[0])):.1f}" '
        f'y2="{_H}" stroke="#57606a" stroke-width="1.5" vector-effect="non-scaling-stroke">'
        f"<title>{_e(o[2])} sold on {_e(o[1])}</title></line>"
        for o in orders
    )
    legend.append('<span class="muted">ticks at the bottom: orders</span>')
    return (
        f'<div class="axis"><span>top {top} units</span></div>'
        + _svg("".join(lines) + ticks, "Quantities over time")
        + f'<div class="axis"><span>{_e(start.strftime("%H:%M:%S"))}</span>'
        f"<span>{_e(end.strftime('%H:%M:%S'))} UTC</span></div>"
        f'<div class="legend small">{"".join(legend)}</div>'
    )


# ---------------------------------------------------------------------- the overview
def render_status_page(status: Mapping[str, Any]) -> str:
    now = datetime.fromisoformat(status["as_of"]) if status.get("as_of") else None
    parts = [_header(status, now)]
    if status.get("store_error"):
        parts.append(f'<section><p class="bad">Ledger: {_e(status["store_error"])}</p></section>')
    parts.append(_channels_section(status, now))
    parts.append(_speed_section(status))
    parts.append(_risk_section(status))
    parts.append(_refused_section(status, now))
    parts.append(_drift_section(status, now))
    parts.append(_runs_section(status, now))
    parts.append(_events_section(status))
    return _page("syncd status", "\n".join(parts), reload=True)


def _channels_section(status: Mapping[str, Any], now: datetime | None) -> str:
    connectors = status.get("channels") or status.get("connectors") or []
    rows = [
        [
            f"{c['name']}",
            f"{c['kind']} ({c['type']})",
            _state(
                c.get("state")
                or ("healthy" if c.get("healthy") else "needs a human" if c.get("needs_human") else "failing")
            ),
            _when(c.get("last_success"), now),
            _seconds(c.get("lag_seconds")) if c.get("lag_seconds") is not None else None,
            c.get("pending_pushes"),
            c.get("last_error"),
        ]
        for c in connectors
    ]
    table = _table(
        ["Name", "Kind", "State", "Last success", "Lag", "Queued pushes", "Last error"],
        rows,
        "No connector.",
        numeric={5},
    )
    return f"<section><h2>Channels</h2>{table}</section>"


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
            f'<div class="card"><div class="muted small">{label}</div><div class="figure">{_e(_figure(p[label]))}</div></div>'
            for label in ("p50", "p95", "p99")
        )
        speed = f'<p class="small muted">A sale reaching every channel, over the last {_e(p["samples"])} sales:</p><div class="cards">{cards}</div>'
    else:
        speed = '<p class="muted">No sale timed yet.</p>'
    chart = _activity_chart(status.get("activity") or {})
    return (
        f"<section><h2>Propagation</h2>{speed}</section><section><h2>Sales and pushes</h2>{chart}</section>"
    )


def _sku_link(sku: str) -> tuple[str, str]:
    return _html(f'<a href="/status/sku/{quote(sku, safe="")}">{_e(sku)}</a>')


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
        table = _table(["SKU", "Available", "Threshold", "Split"], rows, "No SKU is in low-stock mode.")
        return f"<section><h2>Low stock ({len(low)} SKUs)</h2>{table}{extra}</section>"
    rows = []
    for r in risk:
        shown = "<br>".join(
            f'<span class="nw">{_e(c["channel"])} <b>{_e(c["shows"])}</b> of {_e(c["part"])}'
            + (' <span class="bad">over</span>' if c["over"] and r["risk"] else "")
            + "</span>"
            for c in r["channels"]
        )
        tags = (["hot"] if r["hot"] else []) + ([f"low (≤\u00a0{r['threshold']})"] if r["low_stock"] else [])
        rows.append(
            [
                _sku_link(r["sku"]),
                ", ".join(tags),
                r["on_hand"],
                r["reserved"],
                r["ats"],
                r["sold_recently"],
                _html(shown or '<span class="muted">not listed</span>'),
                _risk(r),
            ]
        )
    table = _table(
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
        f"channel at 0): {_e(', '.join(gone[:12]))}{' …' if len(gone) > 12 else ''}</p>"
        if gone
        else ""
    )
    return f"<section><h2>Oversell risk ({len(low)} SKUs in low-stock mode)</h2>{table}{quiet}</section>"


def _risk(row: Mapping[str, Any]) -> tuple[str, str]:
    if row["risk"]:
        return _html(f'<span class="bad">{_e(row["risk"])}</span>')
    if row.get("catching_up"):
        return _html(f'<span class="warn">none: {_e(row["catching_up"])}</span>')
    return _html('<span class="ok">none</span>')


def _refused_section(status: Mapping[str, Any], now: datetime | None) -> str:
    refused = status.get("refused_sales") or []
    rows = [
        [_when(r["at"], now), r["channel"], r["order"], _sku_link(r["sku"]), r["units"], r.get("times", 1)]
        for r in refused[:50]
    ]
    table = _table(
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
    return f"<section><h2>{_e(title)}</h2>{note}{table}</section>"


def _drift_section(status: Mapping[str, Any], now: datetime | None) -> str:
    groups = status.get("drift_24h")
    if groups is None:
        return ""
    rows = [
        [
            _html(f'<b>{_e(g["cause"])}</b><br><span class="small muted">{_e(g["meaning"])}</span>'),
            g["count"],
            g["listings"],
            g["units_off"],
            g["corrected"],
            g["already_right"],
            _when(g["last_at"], now),
            _html(
                "<br>".join(
                    f"{_e(d['channel'])} {_sku_link(d['sku'])[1]}: {_expected(d['expected'])}, read {_e(d['observed'])}; {_e(d['done'])}"
                    for d in g["latest"][:3]
                )
            ),
        ]
        for g in groups
    ]
    table = _table(
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
            took: Any = _html(
                f'<span class="warn">in progress</span> ({_e(_seconds(r.get("duration_seconds")))} so far)'
            )
            counts = "counted at its end"
        else:
            took = _seconds(r.get("duration_seconds"))
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()) if v) or "nothing to do"
        rows.append([r["kind"], _when(r["started_at"], now), took, counts, r.get("error")])
    table = _table(["Kind", "Started", "Took", "Counts", "Error"], rows, "No run yet.")
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
    table = _table(["Name", "Channel", "Start", "End", "State", "Override"], events, "No event scheduled.")
    return f"<section><h2>Events</h2>{table}</section>"


# ---------------------------------------------------------------------- one SKU
def render_sku_page(
    status: Mapping[str, Any], report: Mapping[str, Any], suggestions: Sequence[str] = ()
) -> str:
    now = datetime.fromisoformat(report["as_of"]) if report.get("as_of") else None
    sku = report["sku"]
    parts = [_header({**status, "as_of": report.get("as_of")}, now, sku)]
    if not report["known"] and not report["channels"]:
        hint = ""
        if suggestions:
            hint = "<p>Did you mean: " + ", ".join(_sku_link(s)[1] for s in suggestions) + "?</p>"
        parts.append(
            f'<section><h2>No SKU named “{_e(sku)}”</h2><p class="muted">Neither the ERP nor any channel lists it.</p>{hint}</section>'
        )
        return _page(f"{sku}: not found", "\n".join(parts), reload=False)
    cards = "".join(
        f'<div class="card"><div class="muted small">{_e(label)}</div><div class="figure">{_e(value)}</div></div>'
        for label, value in (
            ("ERP on hand", report["on_hand"]),
            ("Reserved", report["reserved"]),
            ("Safety stock", report["safety_stock"]),
            ("Available", report["ats"]),
        )
    )
    parts.append(
        f'<section><h2>{_e(sku)}</h2><div class="cards">{cards}</div>'
        f'<p class="small muted">On hand read {_e(_when(report["read_at"], now))}. Available = on hand - reserved - safety stock.</p></section>'
    )
    rows = []
    for c in report["channels"]:
        why = c["decision"]["text"] if c["decision"] else "no decision recorded"
        push = c["last_push"]["text"] + f" at {_when(c['last_push']['at'], now)}" if c["last_push"] else None
        queued = (
            f"{c['queued']['target']} ({c['queued']['state']}, {c['queued']['reason']})"
            if c["queued"]
            else None
        )
        rows.append(
            [
                c["channel"],
                c["shows"],
                c["status"] + (f": {c['detail']}" if c["detail"] else ""),
                why,
                push,
                f"{c['last_read']} at {_when(c['read_at'], now)}" if c["last_read"] is not None else None,
                queued,
            ]
        )
    table = _table(
        ["Channel", "Shows", "Listing", "Why", "Last push", "Last read", "Queued"],
        rows,
        "No channel lists this SKU.",
        numeric={1},
    )
    parts.append(f"<section><h2>What each channel shows, and why</h2>{table}</section>")
    chart = _levels_chart(report["series"], report["orders"], report["as_of"])
    parts.append(f"<section><h2>Over time</h2>{chart}</section>")
    res = [
        [r["channel"], r["order"], r["units"], r["state"], _when(r["at"], now)]
        for r in report["reservations"]
    ]
    parts.append(
        "<section><h2>Reservations</h2>"
        + _table(
            ["Channel", "Order", "Units", "State", "Since"], res, "No sale waits for the ERP.", numeric={2}
        )
        + "</section>"
    )
    events = [[_when(e["at"], now), e["kind"], e["text"]] for e in report["events"][:200]]
    parts.append(
        "<section><h2>History (newest first)</h2>"
        + _table(["When", "What", "Detail"], events, "Nothing recorded yet.")
        + "</section>"
    )
    return _page(f"{sku}: syncd", "\n".join(parts), reload=False)
