"""The status pages' charts as inline SVG: sales and pushes over time on the overview, and one
SKU's levels over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.status.html import duration, esc

COLOURS = ["#1f6feb", "#d1242f", "#8250df", "#bf8700", "#0a7f5a", "#cf222e", "#57606a"]

# Drawn in a fixed-height box that stretches to the page's width (preserveAspectRatio="none",
# strokes that do not scale); the labels are HTML beside it, so they read at the page's size on
# a phone as on a desktop.
_W, _H = 1000, 200


def _svg(body: str, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img" '
        f'aria-label="{esc(label)}">{body}</svg>'
    )


def activity_chart(activity: Mapping[str, Any]) -> str:
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
    per = esc(duration(activity.get("bucket_seconds")))
    return (
        f'<div class="axis"><span>top: {top_sales} sold</span><span>top: {top_pushes} pushes</span></div>'
        + _svg(bars + line, "Sales and pushes over time")
        + f'<div class="axis"><span>{esc(_clock(start, seconds=fine))}</span>'
        f"<span>{esc(_clock(end, seconds=fine))} UTC</span></div>"
        '<div class="legend small"><span><i style="background:#1f6feb"></i>units sold</span>'
        '<span><i style="background:#d1242f"></i>pushes sent</span>'
        f'<span class="muted">per {per}, each on its own scale</span></div>'
    )


def _clock(value: str, *, seconds: bool = False) -> str:
    return datetime.fromisoformat(value).strftime("%H:%M:%S" if seconds else "%H:%M") if value else ""


def levels_chart(
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
        legend.append(f'<span><i style="background:{colour}"></i>{esc(name)}</span>')
    ticks = "".join(
        f'<line x1="{x(datetime.fromisoformat(o[0])):.1f}" y1="{_H - 14}" x2="{x(datetime.fromisoformat(o[0])):.1f}" '
        f'y2="{_H}" stroke="#57606a" stroke-width="1.5" vector-effect="non-scaling-stroke">'
        f"<title>{esc(o[2])} sold on {esc(o[1])}</title></line>"
        for o in orders
    )
    legend.append('<span class="muted">ticks at the bottom: orders</span>')
    return (
        f'<div class="axis"><span>top {top} units</span></div>'
        + _svg("".join(lines) + ticks, "Quantities over time")
        + f'<div class="axis"><span>{esc(start.strftime("%H:%M:%S"))}</span>'
        f"<span>{esc(end.strftime('%H:%M:%S'))} UTC</span></div>"
        f'<div class="legend small">{"".join(legend)}</div>'
    )
