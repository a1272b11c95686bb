"""One slice of a channel's pushes: read what the channel shows, decide each write's quantity
from the planned target and that read, write, and record the outcome in the ledger."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from connectors.base import ChannelConnector, Listing, QuantityUpdate
from syncd.config import Config
from syncd.core import race_allowance
from syncd.engine.allocations import Allocations, Intended
from syncd.engine.beliefs import UnseenReads, belief, read_first, send_compare
from syncd.engine.demand import Demand
from syncd.engine.health import Health
from syncd.engine.mapping import ListingSkus
from syncd.engine.reports import CycleReport, Key, Propagation
from syncd.history import History
from syncd.metrics import Metrics
from syncd.store import ListingRow, PushRow, Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")


def quantity_update(push: PushRow, ref: str, shown: int | None, spare: int = 0) -> QuantityUpdate:
    """The write for one push, given what the channel was just read to show (None: not read).

    Units the channel sold that syncd has not heard of yet (it shows less than the push's compare
    value) are left out of the target, and so are ``spare`` units (sales the write may forget);
    the value read becomes the compare value.
    """
    offered = offered_units(push, shown)
    if offered is None:
        return QuantityUpdate(push.sku, ref, push.target, push.compare, key=f"syncd-push-{push.id}")
    return QuantityUpdate(push.sku, ref, max(0, offered - spare), shown, key=f"syncd-push-{push.id}")


def offered_units(push: PushRow, shown: int | None) -> int | None:
    """What a push's write offers given the value just read: its target less the sales the
    channel made that syncd has not heard of (it shows less than the compare value); None when
    the write is not based on a read."""
    if shown is None or push.compare is None:
        return None
    return max(0, push.target - max(0, push.compare - shown))


class SliceWriter:
    allocations: Allocations | None = None  # wired by the Engine
    regrant: Callable[[set[str]], None] = staticmethod(lambda skus: None)  # plans SKUs again (the Engine)
    history: History = History.off()  # wired by the Engine
    skus: ListingSkus = ListingSkus()  # wired by the Engine: reads ask by the channel's codes

    def __init__(
        self,
        config: Config,
        store: Store,
        health: Health,
        demand: Demand,
        unseen: UnseenSales,
        reads: UnseenReads,
        propagation: Propagation,
        cancelled: Counter[Key],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.health = health
        self.demand = demand
        self.unseen = unseen
        self.reads = reads
        self.propagation = propagation
        self.cancelled = cancelled
        self.metrics = metrics
        self.clock = clock
        # Wired by the Sender: the outbox version, and what to do once a channel's writes landed.
        self.version: Callable[[], int] = lambda: 0
        self.landed: Callable[[str], None] = lambda name: None
        # The outbox claim a push takes before its write (the Sender's; see Sender.claim), and
        # whether this replica is still the syncer.
        self.claim: Callable[[Sequence[PushRow]], list[PushRow]] = list
        self.active: Callable[[], bool] = lambda: True

    async def send(
        self,
        name: str,
        channel: ChannelConnector,
        pending: list[PushRow],
        report: CycleReport,
        *,
        urgent: bool = False,
        absolute: frozenset[str] = frozenset(),
    ) -> list[PushRow]:
        """Read and write one slice of pushes; returns those a compare-and-set write found stale
        (a sale landed between the read and the write): they are still pending, for the caller to
        try again. SKUs in ``absolute`` are written without compare-and-set, leaving out the
        sales the write may forget, as on a channel without it."""
        rows = {row.sku: row for row in self.store.listings(name, skus=[p.sku for p in pending])}
        refs = {sku: row.ref for sku, row in rows.items()}
        now = self.clock()
        sendable = []
        for push in pending:
            if push.sku in refs:
                sendable.append(replace(push, compare=send_compare(push.compare, belief(rows[push.sku]))))
            else:
                self.store.fail_push(push.id, "no listing on the channel", now, give_up=True)
        if not sendable:
            return []
        reading = any(read_first(p) for p in sendable)
        # The read and the writes take their rate-limit turns together, so the writes follow the
        # read at once: sales in between are the ones a write without compare-and-set forgets.
        writes = len(sendable) if channel.writes_per_item else 1
        version = self.version()
        with channel.paired(1 + writes) if reading else contextlib.nullcontext():
            read_from = self.clock()
            shown = await self._read_before_write(name, channel, sendable, refs, report, urgent=urgent)
            read_to = self.clock()
            if not self.active():
                # The lease was lost during the read (a pause, a lost database): another replica
                # is the syncer now and plans these listings again; its pushes replace these.
                log.warning("push.not_syncer", channel=name, pushes=len(sendable))
                return []
            if shown:
                # The allocation accounts take this read with the grants below, in one transaction.
                self.reads.measure(name, shown, read_from, accounts=False)
            if version != self.version():
                sendable = self._newest(name, sendable, rows)
                if not sendable:
                    return []
            # The new baseline starts with the write: a sale after the read but before the write
            # is overwritten (the channel shows the written value), so it must not lower the belief.
            started = self.clock()
            spare: dict[str, int] = {}
            racing = [
                p for p in sendable if p.sku in absolute or (urgent and not channel.supports_compare_and_set)
            ]
            if shown and racing:
                spare = self.race_spares(racing, rows, shown, read_from, started)
            if shown is None:
                result = None
            else:
                updates = [
                    quantity_update(p, refs[p.sku], shown.get(p.sku), spare.get(p.sku, 0)) for p in sendable
                ]
                # Only a level just read may be written without compare-and-set.
                updates = [
                    replace(u, compare=None) if u.sku in absolute and u.sku in shown else u for u in updates
                ]
                updates = self._granted(name, sendable, updates, shown, spare, read_from, read_to, started)
                updates = self._skip_unchanged(name, sendable, updates, shown)
                if not updates:
                    return []
                writing = {u.sku for u in updates}
                sendable = [p for p in sendable if p.sku in writing]
                result = await self.health.call(name, channel.set_quantities(updates, urgent=urgent), report)
        now = self.clock()
        self.history.wrote(name, sendable, result, shown, self.health[name].last_error, now)
        if self.allocations is not None and shown is not None:
            written = {p.sku: p.id for p in sendable}
            if result is None:
                self.allocations.lost(name, written, started)
            else:
                undone = [*result.stale, *result.rejected]
                self.allocations.answered(
                    name, written, applied=result.applied, undone=undone, at=now, sent_at=started
                )
                again = self.allocations.freed(result.applied)
                if again:
                    self.regrant(again)
        if result is None:
            health = self.health[name]
            for push in sendable:
                give_up = push.attempts + 1 >= self.config.schedule.push_attempts and not health.needs_human
                self.store.fail_push(push.id, health.last_error or "failed", now, give_up=give_up)
                self.metrics.pushes.labels(name, "error").inc()
            report.counts["pushes_failed"] += len(sendable)
            return []
        by_sku = {p.sku: p for p in sendable}
        if result.applied:
            for sku, units in spare.items():
                if sku in result.applied:
                    self.unseen.may_be_forgotten(name, sku, units, read_at=read_from, written_at=started)
            # The values held from the moment the write started.
            self.store.record_pushed(name, result.applied, started)
            # A read right after the write is a later baseline: sales before it are in its value.
            read_back = {s: q for s, q in result.read_back.items() if s in result.applied}
            if read_back:
                # Sales between the write and the read-back that syncd has not heard of are in
                # the value read: held like any other unseen sales until reported or polled.
                self.reads.measure(name, read_back, started)
                self.store.record_pushed(name, read_back, now)
            self.store.complete_pushes([by_sku[s].id for s in result.applied if s in by_sku], now)
            self.propagation.acknowledged(name, result.applied)
            for sku, quantity in result.applied.items():
                self.cancelled.pop((name, sku), None)
                sent = by_sku.get(sku)
                log.info(
                    "push.sent",
                    channel=name,
                    sku=sku,
                    push=sent.id if sent else None,
                    quantity=quantity,
                    target=sent.target if sent else None,
                    believed=sent.compare if sent else None,
                    read=None if shown is None else shown.get(sku),
                )
            self.metrics.pushes.labels(name, "sent").inc(len(result.applied))
            report.counts["pushes_sent"] += len(result.applied)
            self.landed(name)
        for sku, reason in result.rejected.items():
            if sku in by_sku:
                self.store.set_listing_status(name, sku, "rejected", reason[:500])
                self.store.fail_push(by_sku[sku].id, reason[:500], now, give_up=True)
                log.warning("push.rejected", channel=name, sku=sku, reason=reason)
        # A rejected listing will not take this quantity: sales stop waiting on it (the listing's
        # status says what is wrong).
        self.propagation.acknowledged(name, [s for s in result.rejected if s in by_sku])
        self.metrics.pushes.labels(name, "rejected").inc(len(result.rejected))
        self.metrics.pushes.labels(name, "stale").inc(len(result.stale))
        report.counts["pushes_rejected"] += len(result.rejected)
        report.counts["pushes_stale"] += len(result.stale)
        return [by_sku[s] for s in dict.fromkeys(result.stale) if s in by_sku]

    def _granted(
        self,
        name: str,
        pushes: Sequence[PushRow],
        updates: list[QuantityUpdate],
        shown: Mapping[str, int],
        spare: Mapping[str, int],
        read_from: datetime,
        read_to: datetime,
        sent_at: datetime,
    ) -> list[QuantityUpdate]:
        """The writes as the allocator grants them at the moment they are sent: an increase takes
        at most the free units, a write without compare-and-set holds its race allowance. Each
        write is recorded as sent in the ledger before it goes out."""
        if self.allocations is None:
            return updates
        by_sku = {p.sku: p for p in pushes}
        intended = [
            Intended(by_sku[u.sku].id, u.sku, u.quantity, u.compare, spare.get(u.sku, 0), shown.get(u.sku))
            for u in updates
        ]
        grants = self.allocations.grant(name, intended, sent_at, (shown, read_from, read_to))
        out = []
        for update in updates:
            granted = grants[update.sku]
            if granted.quantity < update.quantity:
                log.debug(
                    "push.granted_less",
                    channel=name,
                    sku=update.sku,
                    planned=update.quantity,
                    granted=granted.quantity,
                    reason=granted.reason,
                )
            out.append(replace(update, quantity=min(update.quantity, granted.quantity)))
        return out

    def _newest(self, name: str, pushes: Sequence[PushRow], rows: Mapping[str, ListingRow]) -> list[PushRow]:
        """The pushes to write after a read during which SKUs were planned again. A push still
        pending is written; one superseded by a decrease is replaced by it, written with this
        read (a hot SKU is planned again every debounce, often faster than a read comes back: it
        would otherwise never be written); one superseded by anything else, or sent meanwhile, is
        dropped (an increase goes through the sender's checks first)."""
        current = self.store.pending_for(name, [p.sku for p in pushes])
        kept: list[PushRow] = []
        replacing: list[PushRow] = []
        for push in pushes:
            newest = current.get(push.sku)
            if newest is None:
                continue
            if newest.id == push.id:
                kept.append(push)
            elif read_first(newest) and newest.compare is not None and newest.target < newest.compare:
                kept.append(replace(newest, compare=send_compare(newest.compare, belief(rows[push.sku]))))
                replacing.append(newest)
        # A replacement is a push of its own: it takes its claim before the write.
        allowed = {p.id for p in pushes} | {p.id for p in self.claim(replacing)}
        return [p for p in kept if p.id in allowed]

    def _skip_unchanged(
        self, name: str, pushes: Sequence[PushRow], updates: list[QuantityUpdate], shown: Mapping[str, int]
    ) -> list[QuantityUpdate]:
        """The updates that change something. Where the read just now shows exactly what the write
        would set (the listing's unseen sales took it there, or an earlier write did), the push is
        done without a call. The value read becomes the listing's baseline, as a read-back after a
        write does (the read has already counted the unseen sales below the old one)."""
        by_sku = {p.sku: p for p in pushes}
        unchanged = {u.sku: u.quantity for u in updates if u.sku in shown and shown[u.sku] == u.quantity}
        if not unchanged:
            return updates
        now = self.clock()
        self.store.record_pushed(name, unchanged, now)
        self.store.complete_pushes([by_sku[sku].id for sku in unchanged], now)
        self.propagation.acknowledged(name, unchanged)
        self.metrics.pushes.labels(name, "unchanged").inc(len(unchanged))
        for sku, quantity in unchanged.items():
            log.debug("push.unchanged", channel=name, sku=sku, quantity=quantity)
        self.landed(name)
        return [u for u in updates if u.sku not in unchanged]

    def race_spares(
        self,
        pushes: Sequence[PushRow],
        rows: Mapping[str, ListingRow],
        shown: Mapping[str, int],
        read_from: datetime,
        read_to: datetime,
    ) -> dict[str, int]:
        """Units to leave out of urgent writes to a channel without compare-and-set: the sales it
        likely makes between the read and the write, which the write would forget. The rate is
        the listing's since syncd last wrote it, or the SKU's reported sales over the last
        IN_FLIGHT_WINDOW on all channels if higher (a listing written a moment ago has sold
        nothing yet, while at the end of a flash sale every unit shown sells within a second),
        over the read's round trip. Only units the write would have offered count (a write to 0
        forgets nothing that matters)."""
        window = max(0.0, (read_to - read_from).total_seconds())
        spares: dict[str, int] = {}
        for push in pushes:
            row, now = rows.get(push.sku), shown.get(push.sku)
            offered = offered_units(push, now)
            if offered is None or now is None:
                continue
            rate = self.demand.recent_rate(push.sku, read_from)
            if row is not None and row.last_pushed is not None and row.pushed_at is not None:
                span = max(1.0, (read_from - row.pushed_at).total_seconds())
                rate = max(rate, max(0, row.last_pushed - now) / span)
            units = min(offered, race_allowance(rate * window))
            if units:
                spares[push.sku] = units
        return spares

    async def _read_before_write(
        self,
        name: str,
        channel: ChannelConnector,
        pushes: Sequence[PushRow],
        refs: Mapping[str, str],
        report: CycleReport,
        *,
        urgent: bool,
    ) -> dict[str, int] | None:
        """What the channel shows now for the fast path's pushes, per SKU (None: the read failed).

        syncd's belief lags by the sales it has not heard of yet. A channel without compare-and-set
        takes quantities absolutely, so a write would put such sales back on sale; one with it
        would refuse a write whose compare value lags, again and again while a SKU sells fast.
        Reading just before writing shows both: the write then leaves the unseen sales out and
        compares against the value read. Pushes of a full reconcile are planned from a fresh read
        already and skip this.
        """
        fresh = [p for p in pushes if read_first(p)]
        if not fresh:
            return {}
        listings = [Listing(p.sku, refs[p.sku], None) for p in fresh]
        read = self.skus.read_quantities(name, channel, listings, urgent=urgent)
        return await self.health.call(name, read, report)
