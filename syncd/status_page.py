"""The /status page: what a person checks first (channel health, low stock, drift, last runs)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}
th{background:#f4f4f4}.ok{color:#176d2b;font-weight:600}.bad{color:#b00020;font-weight:600}
.muted{color:#777}
"""


LOW_STOCK_ROWS = 25


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="muted">&ndash;</td>'
    return f"<td>{escape(str(value))}</td>"


def _table(headers: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_status_page(status: dict[str, Any]) -> str:
    connectors = "".join(
        "<tr>"
        f"<td>{escape(c['name'])}</td><td>{escape(c['kind'])} ({escape(c['type'])})</td>"
        + (
            '<td class="ok">healthy</td>'
            if c["healthy"]
            else f'<td class="bad">{"needs a human" if c["needs_human"] else "failing"}</td>'
        )
        + _cell(c["last_success"])
        + _cell(c["last_error"])
        + "</tr>"
        for c in status.get("connectors", [])
    )
    all_low = status.get("low_stock", [])
    low = [
        [s["sku"], s["ats"], s["threshold"], ", ".join(f"{k}: {v}" for k, v in s["targets"].items())]
        for s in sorted(all_low, key=lambda s: (s["ats"], s["sku"]))[:LOW_STOCK_ROWS]
    ]
    more = len(all_low) - LOW_STOCK_ROWS
    low_more = f'<p class="muted">{more} more in /api/status.</p>' if more > 0 else ""
    p = status.get("propagation_seconds") or {}
    speed = (
        f"Sale to all channels (last {p['samples']} sales): p50 {p['p50']} s, p95 {p['p95']} s, p99 {p['p99']} s."
        if p.get("samples")
        else "No sale timed yet."
    )
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
    drift = [
        [d["at"], d["channel"], d["sku"], d["expected"], d["observed"], d["cause"], d["correction"]]
        for d in status.get("drift", [])
    ]
    runs = [
        [
            r["started_at"],
            r["kind"],
            ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()) if v),
            r["error"],
        ]
        for r in status.get("runs", [])
    ]
    store_error = status.get("store_error")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>syncd status</title><style>{_STYLE}</style></head><body>
<h1>syncd {escape(str(status.get("version", "")))}</h1>
<p class="muted">Started {escape(str(status.get("started_at", "")))}. This page refreshes every 10 seconds.</p>
{f'<p class="bad">Store: {escape(store_error)}</p>' if store_error else ""}
<h2>Connectors</h2>
<table><thead><tr><th>Name</th><th>Kind</th><th>State</th><th>Last success</th><th>Last error</th></tr></thead>
<tbody>{connectors}</tbody></table>
<p>{escape(speed)}</p>
<h2>Last runs</h2>
{_table(["Started", "Kind", "Counts", "Error"], runs, "No run yet.")}
<h2>Recent drift</h2>
{_table(["When", "Channel", "SKU", "Expected", "Observed", "Likely cause", "Set to"], drift, "No drift recorded.")}
<h2>Low stock ({len(all_low)} SKUs)</h2>
{_table(["SKU", "Available", "Threshold", "Split between channels"], low, "No SKU is in low-stock mode.")}
{low_more}
<h2>Events</h2>
{_table(["Name", "Channel", "Start", "End", "State", "Override"], events, "No event scheduled.")}
</body></html>"""
