"""The stock at risk: hot and low-stock SKUs against what each channel shows, SKUs sold out
everywhere, and the sales the ERP refused (units sold twice)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from syncd.accounts import KitShare
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
    kits_of: Callable[[str], Sequence[KitShare]] | None = None,
    hot: int = 10,
    limit: int = 25,
) -> list[dict[str, Any]]:
    """Hot SKUs (most sold recently) and low-stock ones: stock, and what each channel shows now
    against its part. Rows at risk (a channel shows more than its part, or the channels together
    more than exists in low-stock mode) come first. ``kits_of`` names the kit listings drawing on
    a SKU: each shows its kits in units of the SKU (kits x units per kit), beside the SKU's own
    listings, under ``channel/kit``."""
    splits = {s["sku"]: s for s in low_stock}
    hottest = [sku for sku, units in sorted(sold.items(), key=lambda kv: (-kv[1], kv[0])) if units > 0][:hot]
    chosen = list(dict.fromkeys([*hottest, *splits]))
    by_sku: dict[str, list[ListingRow]] = defaultdict(list)
    rows_by_key: dict[tuple[str, str], ListingRow] = {}
    for row in listings:
        rows_by_key[(row.channel, row.sku)] = row
        if row.sku in chosen:
            by_sku[row.sku].append(row)
    # A kit listing counts in units of each component it draws on (k kits expose k x per kit).
    kit_rows: dict[str, list[tuple[str, int, ListingRow]]] = defaultdict(list)
    for sku in chosen:
        for share in kits_of(sku) if kits_of is not None else ():
            kit_row = rows_by_key.get((share.channel, share.kit_sku))
            if kit_row is not None:
                kit_rows[sku].append((share.key, share.per_kit, kit_row))
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
        listed = [(row.channel, 1, row) for row in sorted(by_sku.get(sku, []), key=lambda r: r.channel)]
        for name, per_kit, row in [*listed, *kit_rows.get(sku, [])]:
            kits = shown_now(row)
            shows = None if kits is None else kits * per_kit
            if split:
                part = split["targets"].get(name)
            else:
                pushed = queued.get((row.channel, row.sku), row.last_pushed)
                part = None if pushed is None else pushed * per_kit
            over = shows is not None and part is not None and shows > part
            if over and split:
                # In low-stock mode the parts add up to what exists: a unit over is one that can
                # be sold twice.
                risks.append(f"{name} shows {(shows or 0) - (part or 0)} more than its part")
            elif shows is not None and shows > ats:
                # Channels share the pool outside it; only more than the pool itself is at risk.
                risks.append(f"{name} shows {shows - ats} more than exist")
            elif over:
                catching_up.append(f"{name} lowering {shows} to {part}")
            queued_units = queued.get((row.channel, row.sku))
            channels.append(
                {
                    "channel": name,
                    "shows": shows,
                    "part": part,
                    "queued": None if queued_units is None else queued_units * per_kit,
                    "over": over,
                    "status": row.status,
                    **({"kit": row.sku, "per_kit": per_kit} if per_kit != 1 or name != row.channel else {}),
                }
            )
        total = sum(c["shows"] or 0 for c in channels)
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
