"""What syncd believes a listing shows, and what a read that falls below that belief means
(sales the channel made that syncd has not heard of)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from syncd.store import ListingRow, PushRow, Store
from syncd.unseen import UnseenSales

if TYPE_CHECKING:
    from syncd.engine.allocations import Allocations


def belief(row: ListingRow) -> int | None:
    """What a listing shows as far as syncd knows: its baseline (last write or read-back) minus
    the channel's sales seen since; the last value read if syncd never set it."""
    if row.last_pushed is None:
        return row.observed
    return max(0, row.last_pushed - row.sold_since_push)


def read_first(push: PushRow) -> bool:
    """A fast-path write of a listing syncd has a belief about is preceded by a read of it."""
    return push.compare is not None and push.reason != "reconcile"


def send_compare(planned: int | None, now: int | None) -> int | None:
    """The belief a write measures unseen sales against: the larger of the one its target was
    planned from and the one after any write of the listing that landed since. The planned one
    keeps sales syncd had not heard of at planning time out of the target; the current one counts
    sales since a write (an increase, say) that landed after the plan. Taking the larger never
    offers a unit twice; at worst it offers fewer until the next plan."""
    if planned is None or now is None:
        return now if planned is None else planned
    return max(planned, now)


class UnseenReads:
    """Records how far below syncd's belief each read found a listing (sales not reported)."""

    def __init__(self, store: Store, unseen: UnseenSales, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.unseen = unseen
        self.clock = clock

    allocations: Allocations | None = None  # wired by the Engine
    # Wired by the Engine: told the SKUs a read of a channel found units of that no report explains
    # (an order poll of the channel soon after settles them).
    found: Callable[[str, set[str]], None] | None = None

    def measure(
        self, name: str, shown: Mapping[str, int], read_from: datetime, *, accounts: bool = True
    ) -> None:
        read_to = self.clock()
        short: set[str] = set()
        if accounts and self.allocations is not None:
            outcomes = self.allocations.read(name, shown, read_from, read_to)
            short.update(sku for sku, o in outcomes.items() if o.missing)
        for row in self.store.listings(name, skus=sorted(shown)):
            believed = belief(row)
            if row.pushed_at is not None and row.pushed_at > read_from:
                continue  # written while the read was on its way: it may show the listing before
            if believed is not None and row.sku in shown:
                if believed > shown[row.sku]:
                    short.add(row.sku)
                self.unseen.measured(
                    name,
                    row.sku,
                    believed - shown[row.sku],
                    baseline=row.pushed_at,
                    read_from=read_from,
                    read_to=read_to,
                )
        if short and self.found is not None:
            self.found(name, short)
