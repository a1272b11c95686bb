"""The full reconcile: read the ERP and every channel back, record drift with its likely cause,
push corrections and keep a run record; and its dry run, which plans without writing anywhere."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from connectors.base import ChannelConnector, ErpConnector, Listing, OrderLine
from syncd.accounts import listing_sold
from syncd.allocation import ReadOutcome, judge_read
from syncd.core import Drift, DriftCause
from syncd.engine.health import Health
from syncd.engine.intake import Intake
from syncd.engine.kits import KitListings
from syncd.engine.mapping import ListingSkus
from syncd.engine.planner import Plan, Planner
from syncd.engine.reports import CycleReport, Key, finish
from syncd.engine.settlement import Settlement
from syncd.engine.shortfalls import Shortfalls
from syncd.errors import StoreError
from syncd.history import History
from syncd.metrics import Metrics
from syncd.store import Store

log = structlog.get_logger("syncd.engine")

# Plans the given SKUs (None: all) and pushes them, only to ``channels`` if given.
PlanAndPush = Callable[..., Awaitable[Plan]]

if TYPE_CHECKING:
    from syncd.engine.allocations import Allocations

# Sales recorded this close to a listing's baseline may be stamped on its whole second, so counted
# on the wrong side of it: a shortfall they can explain is not called a manual edit.
NEAR_BASELINE = timedelta(seconds=3)


class Reconciler:
    allocations: Allocations | None = None  # wired by the Engine
    reads: dict[str, dict[str, ReadOutcome]]  # the last read-back, per channel, to judge drift by
    read_from: datetime

    history: History = History.off()  # wired by the Engine
    skus: ListingSkus = ListingSkus()  # wired by the Engine: channel codes -> ERP SKUs
    kits: KitListings | None = None  # wired by the Engine when the mapping has kits

    def __init__(
        self,
        store: Store,
        erp: ErpConnector,
        channels: Mapping[str, ChannelConnector],
        health: Health,
        intake: Intake,
        settlement: Settlement,
        planner: Planner,
        plan_and_push: PlanAndPush,
        withhold: Callable[[Iterable[str]], None],
        cancelled: Counter[Key],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.erp = erp
        self.channels = channels
        self.health = health
        self.intake = intake
        self.settlement = settlement
        self.planner = planner
        self.plan_and_push = plan_and_push
        self.withhold = withhold
        self.cancelled = cancelled
        self.metrics = metrics
        self.clock = clock
        self.reads = {}
        self.read_to: dict[str, datetime] = {}
        self.judged: dict[Key, tuple[datetime, datetime | None]] = {}  # listing -> (read at, baseline)
        self.read_from = clock()
        self.shortfalls = Shortfalls(self._report)

    async def reconcile(self, *, dry_run: bool = False) -> CycleReport:
        """Read everything back, record drift with its cause, push corrections.

        A dry run reads the ERP and every channel and reports the plan, but writes nothing
        anywhere: not to the channels, not to the ERP, not to the ledger.
        """
        report = CycleReport("reconcile-dry-run" if dry_run else "reconcile")
        if dry_run:
            return await self._dry_run(report)
        try:
            self.shortfalls.flush()  # decided before this run begins: they belong to the last one
        except StoreError as exc:
            log.error("drift.not_recorded", error=str(exc))
        run_id = self.store.start_run(report.kind, self.clock())
        structlog.contextvars.bind_contextvars(run_id=run_id)
        try:
            await self.intake.pull_orders(report)
            await self.settlement.post_movements(report)
            await self.settlement.read_erp(report, full=True)
            listed, drifts = await self._read_back(report)
            # Sales that landed while the channels were read make those read-backs ambiguous.
            late = await self.intake.pull_orders(report)
            late_keys = {(line.channel, line.sku) for line in late.new}
            drifts = [d for d in drifts if (d.channel, d.sku) not in late_keys]
            drifts += self._judge_reads(late.new)
            plan = await self.plan_and_push(None, report, channels=listed)
            corrections = {(p.channel, p.sku): p.target for p in plan.pushes}
            unmapped = set(plan.unmapped)
            # A first sighting is only worth a record when syncd had to change it.
            drifts = [
                d
                for d in drifts
                if (d.channel, d.sku) not in unmapped
                and (d.cause is not DriftCause.UNKNOWN_BASELINE or (d.channel, d.sku) in corrections)
            ]
            # A level below the range that no order explained yet waits for the orders: a missed
            # order if one comes, a manual edit if a poll covering the read finds none.
            since_read: dict[str, dict[Key, int]] = {}
            for d in drifts:
                if self.shortfalls.below(d) and (d.channel, d.sku) in self.judged:
                    read_at, baseline = self.judged[(d.channel, d.sku)]
                    if d.channel not in since_read:
                        # Sales taken in since the read (a webhook meanwhile) explain it already.
                        since_read[d.channel] = self.store.sold_since(read_at)
                    self.shortfalls.hold(
                        d, read_at, baseline, corrections.get((d.channel, d.sku)),
                        explained=since_read[d.channel].get((d.channel, d.sku), 0),
                    )
            drifts = [d for d in drifts if (d.channel, d.sku) not in self.shortfalls.held]
            report.drift = drifts
            self._report(drifts, corrections)
            report.counts["drift"] += len(drifts)
        except StoreError as exc:
            report.errors.append(f"store: {exc}")
            raise
        finally:
            try:
                self.store.finish_run(run_id, self.clock(), dict(report.counts), report.error)
            except StoreError as exc:
                log.error("run.not_recorded", error=str(exc))
            finish(report, self.metrics)
            structlog.contextvars.unbind_contextvars("run_id")
        return report

    def _report(self, drifts: Sequence[Drift], corrections: Mapping[Key, int], **context: str) -> None:
        self.store.record_drift(drifts, dict(corrections), self.clock())
        for drift in drifts:
            self.metrics.drift.labels(drift.channel, drift.cause.value).inc()
            log.info(
                "drift.detected",
                channel=drift.channel,
                sku=drift.sku,
                expected=drift.expected,
                observed=drift.observed,
                cause=drift.cause.value,
                correction=corrections.get((drift.channel, drift.sku)),
                **context,
            )

    def judge_read_before_write(
        self, name: str, outcomes: Mapping[str, ReadOutcome], writes: Mapping[str, int]
    ) -> None:
        """The sender reads a listing right before writing it: a level above anything it could
        legitimately show is a manual edit (or a cancellation the channel restocked) that the write
        is about to overwrite, and reported as such; the write is its correction. A level below
        the range is left to the reconcile: between reconciles such a read mostly shows sales on
        their way (held until their orders come), not drift."""
        drifts = []
        for sku, outcome in outcomes.items():
            if not outcome.above or (self.kits is not None and self.kits.components(name, sku)):
                continue  # a kit listing is judged in kits, by the reconcile
            drift = judge_read(name, sku, outcome, cancelled=self.cancelled.get((name, sku), 0))
            if drift is not None:
                drifts.append(drift)
        if not drifts:
            return
        try:
            self._report(drifts, {(name, s): q for s, q in writes.items()}, read="before a write")
        except StoreError as exc:
            log.error("drift.not_recorded", channel=name, error=str(exc))

    async def _read_back(self, report: CycleReport) -> tuple[set[str], list[Drift]]:
        """Read every channel's listings into the ledger, judge drift against what syncd expected,
        then take the read values as the new baseline. Returns the channels that answered."""

        async def read(name: str, channel: ChannelConnector) -> tuple[str, list[Listing] | None]:
            return name, await self.health.call(name, channel.list_listings(), report)

        answered: set[str] = set()
        drifts: list[Drift] = []
        read_from = self.clock()
        self.reads = {}
        self.read_from = read_from
        for name, listings in await asyncio.gather(*(read(n, c) for n, c in self.channels.items())):
            if listings is None:
                continue
            # Kept under their ERP SKUs from here on (refs unchanged), whatever the channel calls them.
            listings, unmapped = self.skus.listings(name, listings)
            if self.allocations is not None:
                levels = {x.sku: x.quantity for x in listings if x.managed and x.quantity is not None}
                self.read_to[name] = self.clock()
                self.reads[name] = self.allocations.read(name, levels, read_from, self.read_to[name])
            self.store.sync_listings(name, listings, self.clock())
            self.skus.mark(self.store, name, unmapped)
            self.history.levels(name, {x.sku: x.quantity for x in listings}, self.clock())
            self.store.rebase_listings(name, read_from=read_from)
            report.counts["listings_read"] += len(listings)
            answered.add(name)
        return answered, drifts

    def _judge_reads(self, late: Iterable[OrderLine]) -> list[Drift]:
        """Drift of the listings just read, each judged against the range of levels it could show
        at the moment of its read (``syncd.allocation.judge_read``), once the orders found right
        after the reads are in."""
        if not self.reads:
            return []
        explained: Counter[tuple[str, str]] = Counter()
        for line in late:
            sold = listing_sold(line)  # a kit's line explains its kit listing, in kits
            if sold is not None:
                explained[(line.channel, sold[0])] += sold[1]
        meanwhile = self.store.sold_since(self.read_from)
        # Sales stamped near each listing's own baseline (a whole-second stamp may put a sale on
        # the wrong side of it), only for the listings read below their range: they excuse that
        # many units, no more (a kit listing by its components' sales).
        moments = []
        for name, outcomes in self.reads.items():
            for sku, o in outcomes.items():
                if o.baseline_at is None or o.shown is None or o.low is None or o.shown >= o.low:
                    continue
                parts = self.kits.components(name, sku) if self.kits is not None else None
                moments += [(name, c.sku, o.baseline_at) for c in parts] if parts else [(name, sku, o.baseline_at)]
        near = self.store.sold_around(moments, NEAR_BASELINE) if moments else {}
        if self.kits is not None:
            # A kit listing is judged in kits: the sales the ledger keeps by component, in kits.
            read = [(name, sku) for name, outcomes in self.reads.items() for sku in outcomes]
            meanwhile, near = self.kits.with_kits(meanwhile, read), self.kits.with_kits(near, read)
        drifts = []
        self.judged = {}
        for name, outcomes in self.reads.items():
            for sku, outcome in outcomes.items():
                key = (name, sku)
                self.judged[key] = (self.read_to.get(name, self.read_from), outcome.baseline_at)
                drift = judge_read(
                    name,
                    sku,
                    outcome,
                    # Orders found right after the reads were not reported when they were made.
                    reported_meanwhile=meanwhile.get(key, 0) - explained[key],
                    explained_later=explained[key],
                    sold_near_baseline=near.get(key, 0),
                    cancelled=self.cancelled.get(key, 0),
                )
                if drift is not None:
                    drifts.append(drift)
        self.reads = {}
        return drifts

    async def _dry_run(self, report: CycleReport) -> CycleReport:
        records = await self.health.call(self.erp.name, self.erp.read_stock(), report)
        on_hand = (
            {r.sku: r.on_hand for r in records}
            if records is not None
            else {sku: row.on_hand for sku, row in self.store.skus().items()}
        )
        believed: dict[Key, int | None] = {}
        for name, channel in self.channels.items():
            listings = await self.health.call(name, channel.list_listings(), report)
            mapped, unmapped = self.skus.listings(name, listings or [])
            for listing in mapped:
                if listing.sku in unmapped:
                    continue
                if listing.managed or listing.quantity is not None:
                    believed[(name, listing.sku)] = listing.quantity
        plan = self.planner.plan(on_hand, self.store.reserved_by_sku(), believed, "reconcile")
        self.withhold(plan.withheld)
        report.pushes = plan.pushes
        report.counts["skus_read"] = len(on_hand)
        report.counts["listings_read"] = len(believed)
        report.counts["pushes_planned"] = len(plan.pushes)
        report.counts["unmapped"] = len(plan.unmapped)
        return report
