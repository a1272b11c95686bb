"""The stock at risk: hot and low-stock SKUs against what each channel shows, SKUs sold out
everywhere, and the sales the ERP refused (units sold twice)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from syncd.core import available_to_sell
from syncd.status.times import iso
from syncd.store import HistoryEvent, ListingRow, PushRow, SkuRow


def shown_now(row: ListingRow) -> int | None:
    """What a listing shows as far as the ledger knows: the last level set or read, less the
    sales the channel reported since; the last read if syncd never set it."""
    if row.last_pushed is None:
        return row.observed
    return max(0, row.last_pushed - row.sold_since_push)


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
