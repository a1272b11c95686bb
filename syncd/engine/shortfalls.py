"""Listings a reconcile read below anything they could legitimately show, waiting for the orders
that explain them.

Such a read is either a missed order (a sale the channel made and syncd had not heard of: a
webhook late or lost) or a manual edit down. Only the orders can tell, and they may come a little
later than the reconcile's own poll: by a webhook, a poll soon after, or the next scheduled one.
So the drift is held until a poll of its channel that covers the read has been taken in: a sale
of the listing made before the read explains it (``missed_order``), none does (``manual_edit``).
What is still held when the next reconcile starts is reported as a manual edit then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from connectors.base import OrderLine
from syncd.accounts import listing_sold
from syncd.allocation import COARSE, sold_after
from syncd.core import Drift, DriftCause
from syncd.engine.reports import Key

Report = Callable[[Sequence[Drift], Mapping[Key, int]], None]


@dataclass
class Short:
    drift: Drift
    read_at: datetime  # when the read was answered
    baseline_at: datetime | None  # when the level it was judged against began
    correction: int | None = None
    explained: int = 0  # units of sales made before the read, reported since


class Shortfalls:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.held: dict[Key, Short] = {}

    @staticmethod
    def below(drift: Drift) -> bool:
        """A manual edit judged from a level below the range: what a missed order looks like too."""
        return (
            drift.cause is DriftCause.MANUAL_EDIT
            and drift.expected is not None
            and drift.observed < drift.expected
        )

    def hold(
        self,
        drift: Drift,
        read_at: datetime,
        baseline_at: datetime | None,
        correction: int | None,
        *,
        explained: int = 0,
    ) -> None:
        """Hold ``drift`` until a poll covering its read; ``explained``: units of the listing's
        sales taken in since the read, before it is held (they were not known when it was made)."""
        self.held[(drift.channel, drift.sku)] = Short(drift, read_at, baseline_at, correction, explained)

    def sold(self, lines: Iterable[OrderLine]) -> None:
        """New order lines taken in: a sale of a held listing made before its read explains it."""
        for line in lines:
            sold = listing_sold(line)
            short = None if sold is None else self.held.get((line.channel, sold[0]))
            if short is not None and sold is not None and not sold_after(line.updated_at, short.read_at):
                short.explained += sold[1]

    def polled(self, channel: str, started: datetime, since: datetime | None) -> None:
        """A poll of ``channel`` started at ``started`` was taken in, from its cursor (``since``
        None) or from ``since``: the held listings whose read it covers are decided."""
        decided = [
            key
            for key, short in self.held.items()
            if key[0] == channel
            and short.read_at + COARSE <= started
            and (since is None or (short.baseline_at is not None and since <= short.baseline_at - COARSE))
        ]
        self._decide(decided)

    def flush(self) -> None:
        """Before the next reconcile: what no order explained by now was an edit."""
        self._decide(list(self.held))

    def _decide(self, keys: Sequence[Key]) -> None:
        if not keys:
            return
        drifts: list[Drift] = []
        corrections: dict[Key, int] = {}
        for key in keys:
            short = self.held.pop(key)
            cause = DriftCause.MISSED_ORDER if short.explained > 0 else DriftCause.MANUAL_EDIT
            drifts.append(replace(short.drift, cause=cause))
            if short.correction is not None:
                corrections[key] = short.correction
        self.report(drifts, corrections)
