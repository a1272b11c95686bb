"""Sales a channel has made that syncd has not heard of, as reads show them.

Before a fast-path write syncd reads the listing: when it shows fewer units than syncd believes,
the difference is sales not reported yet (a webhook on its way, or lost) or sales syncd counted
as made before its last write while they came just after it (order times are whole seconds).
Only the first kind will still lower the ERP's stock; until syncd knows which is which, those
units must not be offered on another channel. A reported sale the read already showed explains
one unit; an order poll started after the read finds every sale made before it, so what is still
unexplained then was counted already and is released.

Pure bookkeeping: callers pass the times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

COARSE = timedelta(seconds=1)  # order times stamped on a whole second may be up to this early


@dataclass
class Unseen:
    """Units a read of one listing showed sold beyond syncd's belief.

    ``baseline`` is when the belief was last set (syncd's write, None: never), ``read_from`` and
    ``read_to`` bracket the read, ``units`` are the ones not explained yet."""

    baseline: datetime | None
    read_from: datetime
    read_to: datetime
    units: int


def _before(sold_at: datetime, moment: datetime) -> bool:
    """Whether a sale stamped ``sold_at`` was surely made before ``moment``: a time on a whole
    second may stand for any instant of that second."""
    slack = COARSE if sold_at.microsecond == 0 else timedelta(0)
    return sold_at + slack <= moment


class UnseenSales:
    """Per listing (channel, sku), the units reads showed sold and no report has explained yet."""

    def __init__(self) -> None:
        self._by_sku: dict[str, dict[str, list[Unseen]]] = {}

    def _store(self, channel: str, sku: str, entries: list[Unseen]) -> None:
        listings = self._by_sku.setdefault(sku, {})
        if entries:
            listings[channel] = entries
        else:
            listings.pop(channel, None)
            if not listings:
                del self._by_sku[sku]

    def measured(
        self,
        channel: str,
        sku: str,
        units: int,
        *,
        baseline: datetime | None,
        read_from: datetime,
        read_to: datetime,
    ) -> None:
        """A read found the listing ``units`` below syncd's belief (0 or less: nothing unseen).

        A read since the same baseline measures every unreported sale the previous one did (or
        they were reported meanwhile and lowered the belief), so it replaces that one; a write
        since sets a new baseline and the earlier units stay until explained or released."""
        entries = [e for e in self._by_sku.get(sku, {}).get(channel, []) if e.baseline != baseline]
        if units > 0:
            entries.append(Unseen(baseline, read_from, read_to, units))
        self._store(channel, sku, entries)

    def may_be_forgotten(
        self, channel: str, sku: str, units: int, *, read_at: datetime, written_at: datetime
    ) -> None:
        """A write without compare-and-set, based on a read at ``read_at`` and made at
        ``written_at``, left ``units`` out for sales the channel may have made in between: the
        write forgets those, so their units must not be offered elsewhere until their reports
        (sales stamped between the two) or an order poll show how many there were."""
        if units > 0:
            entries = self._by_sku.get(sku, {}).get(channel, [])
            self._store(channel, sku, [*entries, Unseen(read_at, written_at, written_at, units)])

    def reported(self, channel: str, sku: str, quantity: int, sold_at: datetime) -> None:
        """A sale was reported: it explains units of a read made surely after it and on the same
        baseline (a sale before the baseline was overwritten by that write, not shown as unseen)."""
        entries = self._by_sku.get(sku, {}).get(channel)
        if not entries:
            return
        left = quantity
        for entry in entries:
            if left <= 0:
                break
            after_baseline = entry.baseline is None or entry.baseline < sold_at
            if after_baseline and _before(sold_at, entry.read_from):
                taken = min(left, entry.units)
                entry.units -= taken
                left -= taken
        self._store(channel, sku, [e for e in entries if e.units > 0])

    def polled(self, channel: str, started: datetime, since: datetime | None = None) -> None:
        """An order poll of the channel that started at ``started`` has been ingested: every sale
        made before a read that ended over a second earlier has been reported by now, so what is
        left of such a read was counted already. A poll of the orders from ``since`` on settles
        only reads whose explaining sales (after their baseline) all fall in it."""

        def settled(entry: Unseen) -> bool:
            if entry.read_to + COARSE > started:
                return False
            return since is None or (entry.baseline is not None and entry.baseline - COARSE >= since)

        for sku in [s for s, listings in self._by_sku.items() if channel in listings]:
            self._store(channel, sku, [e for e in self._by_sku[sku][channel] if not settled(e)])

    def found_since(self, sku: str, moment: datetime) -> bool:
        """Whether a read that ended after ``moment`` showed units of ``sku`` not explained yet
        (a plan made at ``moment`` did not know of them)."""
        return any(e.read_to > moment for entries in self._by_sku.get(sku, {}).values() for e in entries)

    def held(self, sku: str) -> int:
        """Units of ``sku`` sold somewhere as far as reads show, not yet reported or released."""
        return sum(e.units for entries in self._by_sku.get(sku, {}).values() for e in entries)

    def waiting(self, skus: set[str], now: datetime) -> dict[str, datetime | None]:
        """Channels with unexplained units of these SKUs that an order poll started ``now`` would
        settle (their reads ended over a second ago), each with the time from which such a poll
        must look (the oldest baseline, a second early for whole-second order times; None: from
        the channel's cursor, a read of a listing syncd never wrote)."""
        starts: dict[str, list[datetime | None]] = {}
        for sku in skus:
            for channel, entries in self._by_sku.get(sku, {}).items():
                due = [e for e in entries if e.read_to + COARSE <= now]
                starts.setdefault(channel, []).extend(
                    None if e.baseline is None else e.baseline - COARSE for e in due
                )
        return {
            channel: None if None in times else min(t for t in times if t is not None)
            for channel, times in starts.items()
            if times
        }
