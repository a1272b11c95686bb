"""One SKU in full: stock, reservations, what each channel shows and why, and its history as
events and as level series over time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.core import available_to_sell
from syncd.status.stock import shown_now
from syncd.status.times import iso
from syncd.store import HistoryEvent, LineRow, ListingRow, PushRow, SkuRow

# A channel's rules as the config defaults them (ChannelPolicy): only other values explain anything.
DEFAULT_RULES: dict[str, Any] = {"share": 100, "buffer": 0, "cap": None, "priority": 100, "weight": 1}


def explain_decision(detail: Mapping[str, Any], target: int | None) -> str:
    """One line on why a decision chose its quantity."""
    if detail.get("on_hand") is None:
        # Only a kit is planned with no stock of its own (the ERP has its components, not it).
        return f"the kits its components allow -> {target} ({detail.get('reason', '?')})"
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
