"""The status pages' shell and parts: the style sheet, the header with the SKU search, tables
that stack into labelled rows on a phone, and times as the operator reads them. Everything shown
is escaped."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

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


def esc(value: Any) -> str:
    return escape("" if value is None else str(value))


def timestamp(value: str | None, now: datetime | None = None) -> str:
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
        text += f" ({ago((now - when).total_seconds())})"
    return text.replace(" ", "\u00a0")  # a time never wraps inside a narrow column


def ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{span(seconds)} ago"


def span(seconds: float) -> str:
    """A stretch of time, rounded to what matters at its size: 40 s, 12 min, 5.2 h, 3 days."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def duration(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}\u00a0s" if value < 60 else f"{value / 60:.1f}\u00a0min"


def data_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str, *, numeric: Collection[int] = ()
) -> str:
    """A table that stacks into labelled rows on a phone. Cells are escaped unless given as
    ``("html", markup)`` (markup built from escaped parts)."""
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
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
                content = esc(value)
            # One wrapper per cell: on a phone the label and the value are then the only two items.
            cells.append(f'<td data-label="{esc(headers[i])}"{cls}><span class="v">{content}</span></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="stack"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def raw(markup: str) -> tuple[str, str]:
    return ("html", markup)


def page(title: str, body: str, *, reload: bool) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{_STYLE}</style></head><body><main>
{body}
</main>{_RELOAD if reload else ""}</body></html>"""


def _search(value: str = "") -> str:
    return (
        '<form method="get" action="/status" role="search">'
        f'<input type="search" name="sku" placeholder="Find a SKU" aria-label="SKU" value="{esc(value)}">'
        "<button type=submit>Show</button></form>"
    )


def header(status: Mapping[str, Any], now: datetime | None, query: str = "") -> str:
    started = status.get("started_at")
    return (
        f'<header><div><h1><a href="/status">syncd {esc(status.get("version", ""))}</a></h1>'
        f'<div class="muted small">Up since {esc(timestamp(started, now))}. As of {esc(timestamp(status.get("as_of")))} UTC.</div>'
        f"</div>{_search(query)}</header>"
    )


def sku_link(sku: str) -> tuple[str, str]:
    return raw(f'<a href="/status/sku/{quote(sku, safe="")}">{esc(sku)}</a>')
