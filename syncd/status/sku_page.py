"""One SKU's page at /status/sku/{sku}: its stock, what each channel shows and why, a chart over
time, its reservations and its history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.status.charts import levels_chart
from syncd.status.html import data_table, esc, header, page, sku_link, timestamp


def render_sku_page(
    status: Mapping[str, Any], report: Mapping[str, Any], suggestions: Sequence[str] = ()
) -> str:
    now = datetime.fromisoformat(report["as_of"]) if report.get("as_of") else None
    sku = report["sku"]
    parts = [header({**status, "as_of": report.get("as_of")}, now, sku)]
    if not report["known"] and not report["channels"]:
        hint = ""
        if suggestions:
            hint = "<p>Did you mean: " + ", ".join(sku_link(s)[1] for s in suggestions) + "?</p>"
        parts.append(
            f'<section><h2>No SKU named “{esc(sku)}”</h2><p class="muted">Neither the ERP nor any channel lists it.</p>{hint}</section>'
        )
        return page(f"{sku}: not found", "\n".join(parts), reload=False)
    cards = "".join(
        f'<div class="card"><div class="muted small">{esc(label)}</div><div class="figure">{esc(value)}</div></div>'
        for label, value in (
            ("ERP on hand", report["on_hand"]),
            ("Reserved", report["reserved"]),
            ("Safety stock", report["safety_stock"]),
            ("Available", report["ats"]),
        )
    )
    parts.append(
        f'<section><h2>{esc(sku)}</h2><div class="cards">{cards}</div>'
        f'<p class="small muted">On hand read {esc(timestamp(report["read_at"], now))}. Available = on hand - reserved - safety stock.</p></section>'
    )
    rows = []
    for c in report["channels"]:
        why = c["decision"]["text"] if c["decision"] else "no decision recorded"
        push = (
            c["last_push"]["text"] + f" at {timestamp(c['last_push']['at'], now)}" if c["last_push"] else None
        )
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
                f"{c['last_read']} at {timestamp(c['read_at'], now)}" if c["last_read"] is not None else None,
                queued,
            ]
        )
    table = data_table(
        ["Channel", "Shows", "Listing", "Why", "Last push", "Last read", "Queued"],
        rows,
        "No channel lists this SKU.",
        numeric={1},
    )
    parts.append(f"<section><h2>What each channel shows, and why</h2>{table}</section>")
    chart = levels_chart(report["series"], report["orders"], report["as_of"])
    parts.append(f"<section><h2>Over time</h2>{chart}</section>")
    res = [
        [r["channel"], r["order"], r["units"], r["state"], timestamp(r["at"], now)]
        for r in report["reservations"]
    ]
    parts.append(
        "<section><h2>Reservations</h2>"
        + data_table(
            ["Channel", "Order", "Units", "State", "Since"], res, "No sale waits for the ERP.", numeric={2}
        )
        + "</section>"
    )
    events = [[timestamp(e["at"], now), e["kind"], e["text"]] for e in report["events"][:200]]
    parts.append(
        "<section><h2>History (newest first)</h2>"
        + data_table(["When", "What", "Detail"], events, "Nothing recorded yet.")
        + "</section>"
    )
    return page(f"{sku}: syncd", "\n".join(parts), reload=False)
