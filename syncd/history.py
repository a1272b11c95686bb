"""The history recorder: what the engine read, decided, sent and took in, per SKU over time.

The engine calls it at a few points; it keeps events in memory and writes them to the ledger's
``history`` table in batches (at most every second), so the fast path pays no extra transaction
per sale. Reads are recorded only when a level changed: a listing read every reconcile at the
same level would otherwise fill the table with nothing new. Old rows (history, drift, finished
runs) are pruned after the configured retention.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from connectors.base import Movement, UpdateResult
from syncd.core import PlannedPush, available_to_sell
from syncd.errors import StoreError
from syncd.store import HistoryEvent, IngestResult, PushRow, Store

log = structlog.get_logger("syncd.history")

FLUSH_EVERY = timedelta(seconds=1)
FLUSH_SIZE = 500
BUFFER_MAX = 20_000  # while the ledger fails, older events are dropped past this many
PRUNE_EVERY = timedelta(hours=1)
# Cycles the engine records as runs itself; the daemon's other scheduled cycles go through record_run.
SELF_RECORDED = frozenset({"reconcile"})


class SplitLike(Protocol):
    """A low-stock split as the engine keeps it (``sku``, ``ats``, ``threshold``, ``targets``)."""

    @property
    def sku(self) -> str: ...
    @property
    def ats(self) -> int: ...
    @property
    def threshold(self) -> int: ...
    @property
    def targets(self) -> dict[str, int]: ...


class EventLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def channel(self) -> str: ...


class ReportLike(Protocol):
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def error(self) -> str | None: ...


def channel_policies(config: Any) -> dict[str, dict[str, Any]]:
    """Each channel's rules from the config, as the operator reads them."""
    return {
        c.name: {
            "share": c.policy.share,
            "buffer": c.policy.buffer,
            "cap": c.policy.cap,
            "priority": c.policy.priority,
            "weight": c.policy.weight,
        }
        for c in config.channels
    }


@dataclass
class History:
    """Records history events for ``store``. ``safety_for`` gives a SKU's safety stock and
    ``policies`` each channel's rules as shown to the operator (share, buffer, cap, priority)."""

    store: Store | None  # None: records nothing (a collaborator not wired to a ledger)
    clock: Callable[[], datetime]
    retention: timedelta = timedelta(days=7)
    safety_for: Callable[[str], int] = lambda sku: 0
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    _buffer: list[HistoryEvent] = field(default_factory=list)
    _first_buffered: datetime | None = None
    _pruned_at: datetime | None = None
    _on_hand: dict[str, int] = field(default_factory=dict)
    _levels: dict[tuple[str, str], int | None] = field(default_factory=dict)
    _failing: bool = False

    # ------------------------------------------------------------------ hooks
    def on_hand(self, records: Mapping[str, int], at: datetime | None = None) -> None:
        """The ERP's on-hand figures just read (only changed ones are kept)."""
        if self.store is None:
            return
        at = at or self.clock()
        changed = {s: q for s, q in records.items() if self._on_hand.get(s) != q}
        self._on_hand.update(changed)
        self._add(HistoryEvent(at, s, "", "on_hand", q) for s, q in sorted(changed.items()))

    def levels(self, channel: str, levels: Mapping[str, int | None], at: datetime | None = None) -> None:
        """Levels a read of ``channel`` found (only changed ones are kept)."""
        if self.store is None:
            return
        at = at or self.clock()
        changed = {s: q for s, q in levels.items() if q is not None and self._levels.get((channel, s)) != q}
        self._levels.update({(channel, s): q for s, q in changed.items()})
        self._add(HistoryEvent(at, s, channel, "read", q) for s, q in sorted(changed.items()))

    def wrote(
        self,
        channel: str,
        pushes: Sequence[PushRow],
        result: UpdateResult | None,
        shown: Mapping[str, int] | None,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """The outcome of one write of ``pushes`` to ``channel`` (``result`` None: the call failed)."""
        if self.store is None:
            return
        at = at or self.clock()
        events = []
        for push in pushes:
            read = None if shown is None else shown.get(push.sku)
            detail: dict[str, Any] = {"target": push.target, "reason": push.reason, "read": read}
            if result is None:
                outcome, quantity, detail["error"] = "failed", push.target, (error or "failed")[:300]
            elif push.sku in result.applied:
                outcome, quantity = "sent", result.applied[push.sku]
                self._levels[(channel, push.sku)] = quantity
            elif push.sku in result.rejected:
                outcome, quantity, detail["error"] = "rejected", push.target, result.rejected[push.sku][:300]
            elif push.sku in result.stale:
                outcome, quantity = "stale", push.target
            else:
                continue  # skipped: the read showed it was already in place
            events.append(HistoryEvent(at, push.sku, channel, "push", quantity, outcome, detail))
        self._add(events)

    def orders(self, result: IngestResult, at: datetime | None = None) -> None:
        """Order lines the ledger took in as new, and cancellations of known ones."""
        at = at or self.clock()
        events = [
            # Kept at the time syncd took it in (the channel's own stamp, often whole seconds, in
            # the detail): the history then reads in the order syncd acted.
            HistoryEvent(
                at,
                line.sku,
                line.channel,
                "order",
                line.quantity,
                line.order_id,
                {"sold_at": line.updated_at.isoformat()},
            )
            for line in result.new
        ] + [
            HistoryEvent(at, line.sku, line.channel, "cancel", line.quantity, line.order_id, {})
            for line in [*result.released, *result.to_compensate]
        ]
        self._add(events)

    def movements(
        self, movements: Sequence[Movement], acked: Collection[str], at: datetime | None = None
    ) -> None:
        """Movements sent to the ERP; the refused sales (not acknowledged) are kept."""
        at = at or self.clock()
        self._add(
            HistoryEvent(
                at, m.sku, m.key.split(":", 1)[0], "refused", -m.delta, m.reference, {"movement": m.reason}
            )
            for m in movements
            if m.key not in acked and m.delta < 0
        )

    def decisions(
        self,
        pushes: Sequence[PlannedPush],
        low_stock: Iterable[SplitLike],
        on_hand: Mapping[str, int],
        reserved: Mapping[str, int],
        events: Iterable[EventLike] = (),
        unaccounted: Mapping[str, int] | None = None,
        at: datetime | None = None,
    ) -> None:
        """The quantities the planner chose for these pushes, with the figures behind them."""
        at = at or self.clock()
        splits = {s.sku: s for s in low_stock}
        active = list(events)
        rows = []
        for push in pushes:
            sku = push.sku
            safety = self.safety_for(sku)
            split = splits.get(sku)
            detail: dict[str, Any] = {
                "reason": push.reason,
                "from": push.compare,
                "on_hand": on_hand.get(sku),
                "reserved": reserved.get(sku, 0),
                "safety_stock": safety,
                "ats": available_to_sell(on_hand.get(sku, 0), reserved.get(sku, 0), safety),
                "low_stock": split is not None,
                "policy": dict(self.policies.get(push.channel, {})),
                "events": [e.name for e in active if e.channel == push.channel],
            }
            if split is not None:
                detail |= {"ats": split.ats, "threshold": split.threshold, "split": dict(split.targets)}
            if unaccounted and unaccounted.get(sku):
                detail["unaccounted"] = unaccounted[sku]
            rows.append(HistoryEvent(at, sku, push.channel, "decision", push.target, "", detail))
        self._add(rows)

    # ------------------------------------------------------------------ writing
    @classmethod
    def off(cls) -> History:
        """A recorder that keeps nothing: the default of the engine's collaborators."""
        return cls(None, lambda: datetime.min)

    def _add(self, events: Iterable[HistoryEvent]) -> None:
        if self.store is None:
            return
        fresh = list(events)
        if not fresh:
            return
        now = self.clock()
        if not self._buffer:
            self._first_buffered = now
        self._buffer.extend(fresh)
        if len(self._buffer) > BUFFER_MAX:
            del self._buffer[: len(self._buffer) - BUFFER_MAX]
        first = self._first_buffered or now
        if len(self._buffer) >= FLUSH_SIZE or now - first >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (and prune, once an hour). A failing ledger is logged once, not
        raised: history must never stop a sale from being propagated."""
        if self.store is None:
            return
        now = self.clock()
        try:
            # Swapped out first: the status page flushes from a worker thread while the engine
            # keeps adding in the event loop.
            batch, self._buffer = self._buffer, []
            if batch:
                try:
                    self.store.record_history(batch)
                except StoreError:
                    self._buffer[:0] = batch[-BUFFER_MAX:]
                    raise
            if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
                self._pruned_at = now
                deleted = self.store.prune(now - self.retention)
                if any(deleted.values()):
                    log.info("history.pruned", retention=str(self.retention), **deleted)
        except StoreError as exc:
            if not self._failing:
                log.error("history.not_recorded", error=str(exc), buffered=len(self._buffer))
            self._failing = True
            return
        if self._failing:
            log.info("history.recorded_again")
        self._failing = False


async def record_run(
    store: Store,
    kind: str,
    cycle: Callable[[], Awaitable[ReportLike]],
    clock: Callable[[], datetime],
    *,
    after: Callable[[], None] = lambda: None,
) -> ReportLike | None:
    """Run a scheduled cycle and keep it as a run (start, end, counts, error), as reconcile does;
    then call ``after`` (the daemon flushes the history: a quiet shop still gets pruned)."""
    if kind in SELF_RECORDED:
        try:
            return await cycle()
        finally:
            after()
    run_id = store.start_run(kind, clock())
    counts: Mapping[str, int] = {}
    error: str | None = None
    try:
        report = await cycle()
        counts, error = report.counts, report.error
        return report
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:
        try:
            store.finish_run(run_id, clock(), dict(counts), error)
        except StoreError as exc:
            log.error("run.not_recorded", kind=kind, error=str(exc))
        after()
