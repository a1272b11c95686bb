"""The Engine: owns the connectors, the ledger and the collaborators that do each job, and runs
the flows (design section 5) by handing work between them.

Order ingestion (poll or webhook, intake.py) -> reservations -> plans for the touched SKUs
(planner.py) -> the outbox -> each channel's sender (sender.py, slices.py); ERP poll
(settlement.py) -> on-hand and settlement -> plans; full reconcile (reconcile.py). Connectors fail
one at a time: an error is recorded against its connector (health.py) and the others go on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from connectors.base import ChannelConnector, ErpConnector, OrderLine, WebhookEvent
from syncd.config import Config
from syncd.engine.allocations import Allocations
from syncd.engine.beliefs import UnseenReads, belief
from syncd.engine.demand import Demand
from syncd.engine.erp_events import ErpEvents
from syncd.engine.health import ConnectorHealth, Health
from syncd.engine.intake import Intake
from syncd.engine.kits import KitListings
from syncd.engine.mapping import ListingSkus, held_by_mapping
from syncd.engine.outage import ErpOutage
from syncd.engine.planner import LowStock, Plan, Planner
from syncd.engine.reconcile import Reconciler
from syncd.engine.reports import CycleReport, Key, Propagation, finish
from syncd.engine.sender import Sender
from syncd.engine.settlement import Settlement
from syncd.engine.slices import SliceWriter
from syncd.engine.sold_out import RECHECK_DELAY, SoldOutChecks
from syncd.engine.status import EngineStatus
from syncd.engine.supervisor import Supervisor
from syncd.history import History, channel_policies
from syncd.mapping import SkuMap, load_mapping
from syncd.metrics import Metrics
from syncd.store import IngestResult, Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine(EngineStatus):
    def __init__(
        self,
        config: Config,
        store: Store,
        erp: ErpConnector,
        channels: Mapping[str, ChannelConnector],
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        recheck_delay: timedelta = RECHECK_DELAY,
        supervisor: Supervisor | None = None,
        syncer: Callable[[], bool] | None = None,
        holder: str = "local",
    ):
        self.config = config
        self.store = store
        self.erp = erp
        self.channels = dict(channels)
        self.metrics = metrics or Metrics()
        self.clock = clock
        # Starts and watches every background task (the daemon passes its own, which stops it).
        self.supervisor = supervisor or Supervisor()
        # Whether this replica is the shop's syncer (syncd/lease.py): a standby only takes sales
        # in and hands their SKUs to the syncer through the ledger.
        self.is_syncer = syncer or (lambda: True)
        now = self._now  # collaborators read the engine's clock, whatever it is set to later
        types = {c.name: c.type for c in config.channels}
        self.health = Health(
            [
                ConnectorHealth(erp.name, "erp", config.erp.type),
                *(ConnectorHealth(name, "channel", types.get(name, "?")) for name in self.channels),
            ],
            self.metrics,
            now,
        )
        self.low_stock: list[LowStock] = []
        self._plan_lock = asyncio.Lock()
        # Sales recorded in the ERP after the fast path's pushes, in the background (see push_skus).
        self._sales_due = False
        self._sales_task: asyncio.Task[None] | None = None
        # Units of cancelled orders per listing since its last push (drift judges them).
        cancelled: Counter[Key] = Counter()
        unseen = UnseenSales()  # sales reads showed and no report has explained yet
        self.unseen = unseen
        reads = UnseenReads(store, unseen, now)
        self.propagation = Propagation(self.metrics, now)
        self.demand = Demand(config, self.propagation.samples)
        self.planner = Planner(
            config,
            store,
            {n: c.supports_compare_and_set for n, c in self.channels.items()},
            self.demand,
            unseen,
            self.health.unavailable,
            now,
        )
        self.settlement = Settlement(store, erp, self.health, now)
        self.outage = ErpOutage(self.health, erp.name, config.erp.max_staleness, now)
        self.planner.outage = self.outage.active
        self.intake = Intake(
            config,
            store,
            self.channels,
            self.health,
            self.demand,
            unseen,
            self.propagation,
            cancelled,
            self.metrics,
            now,
            self.supervisor,
            self.push_skus,
        )
        # ERP webhooks: the SKUs a delivery names are read again and go down the fast path.
        self.erp_events = ErpEvents(
            store,
            erp,
            self.settlement,
            self.intake.touch,
            self.supervisor,
            now,
            config.schedule.push_debounce.total_seconds(),
        )
        writer = SliceWriter(
            config, store, self.health, self.demand, unseen, reads, self.propagation, cancelled, self.metrics, now
        )
        self.sender = Sender(
            store,
            self.channels,
            writer,
            self.demand,
            unseen,
            self.health.unavailable,
            now,
            self.supervisor,
            holder=holder,
            active=self.is_syncer,
        )
        self.sender.replan = self._replan_stale
        self.sold_out = SoldOutChecks(
            store,
            self.channels,
            self.health,
            unseen,
            reads,
            self.intake.pull_orders,
            self.intake.touch,
            now,
            self.supervisor,
            recheck_delay=recheck_delay,
        )
        reads.found = self.sold_out.settle_soon
        self.reconciler = Reconciler(
            store,
            erp,
            self.channels,
            self.health,
            self.intake,
            self.settlement,
            self.planner,
            self.plan_and_push,
            self.sold_out.withhold,
            cancelled,
            self.metrics,
            now,
        )

        # What was read, decided, sent and taken in, per SKU over time (the operator's view).
        self.history = History(
            store, now, config.history.retention, config.stock.safety_for, channel_policies(config)
        )
        for part in (self.intake, self.settlement, self.reconciler, writer):
            part.history = self.history

        # The allocation accounts (design 2b): every read, poll and write goes through them, and
        # each write takes its grant from them as it is sent. They live in the ledger, so a
        # restart resumes with the exposures it had; writes left on the wire are lost, not gone.
        self.allocations = Allocations(config, store, self.demand, now)
        if syncer is None:
            self.allocations.restarted()  # else once this replica takes the lease (took_over)
        for user in (reads, self.intake, self.reconciler, writer):
            user.allocations = self.allocations
        self.allocations.read_judged = self.reconciler.judge_read_before_write
        self.intake.shortfalls = self.reconciler.shortfalls
        writer.regrant = self._regrant
        self.sender.replan_skus = self._replan_short

        # SKU mapping: channel codes become ERP SKUs where listings and order lines come in, and
        # reads ask each channel by its own codes (engine/mapping.py).
        self.skus = ListingSkus(load_mapping(config.mapping.file) if config.mapping.file else SkuMap())
        for translated in (self.intake, self.reconciler, writer, self.sold_out):
            translated.skus = self.skus
        # Kit listings: planned as listings of their components, counted in each component's
        # account at their kits' units of it (engine/kits.py).
        self.kits = KitListings(self.skus.map, self.channels)
        if self.kits:
            self.planner.kits = self.kits
            self.allocations.kits = self.kits
            self.reconciler.kits = self.kits

    def _now(self) -> datetime:
        return self.clock()

    # ------------------------------------------------------------------ replicas
    def took_over(self) -> None:
        """This replica just became the syncer (at start on SQLite, on taking the lease on
        PostgreSQL), before it sends anything: writes the last syncer left on the wire are lost
        to the accounts, pushes it was writing are withdrawn and their SKUs planned again (never
        sent twice), and the ledger's stock is what the planner starts from."""
        self.allocations.restarted()
        abandoned = self.store.abandon_claims(self.clock())
        if abandoned:
            log.warning("push.abandoned_claims", pushes=len(abandoned))
            self.touch({sku for _, sku in abandoned})
        self.settlement.stock_known = self.settlement.stock_known or self.store.counts().get("skus", 0) > 0

    async def stood_down(self) -> None:
        """This replica lost the lease: its senders, its second looks and its recording of sales
        in the ERP stop (the next syncer plans and records what they held)."""
        self.sold_out.cancel()
        if self._sales_task is not None and not self._sales_task.done():
            self._sales_task.cancel()
        await self.sender.stop()

    # ------------------------------------------------------------------ intake
    def ingest(self, lines: Sequence[OrderLine], report: CycleReport | None = None) -> IngestResult:
        """Record order lines in the ledger, idempotently; count what was new."""
        return self.intake.ingest(lines, report)

    def touch(self, skus: Iterable[str]) -> None:
        """Queue SKUs for the fast path (planned and pushed together after the debounce)."""
        self.intake.touch(skus)

    def fetch_later(self, channel: str, event: WebhookEvent, dedupe: str | None) -> None:
        self.intake.fetch_later(channel, event, dedupe)

    async def drain_fast_path(self) -> None:
        """Wait until every touched SKU has been planned and pushed (used at shutdown and in tests)."""
        while True:
            busy = [
                *[t for t in (self._sales_task,) if t is not None and not t.done()],
                *self.erp_events.running(),
                *self.intake.running(),
                *self.sender.running(),
                *self.sold_out.running(),
            ]
            if not busy:
                return
            await asyncio.wait(busy)

    # ------------------------------------------------------------------ cycles
    async def push_skus(self, skus: Iterable[str]) -> CycleReport:
        """The fast path after ingestion: queue pushes for the touched SKUs (each channel's sender
        sends them at once, independently), then have the sales recorded in the ERP."""
        report = CycleReport("fast-path")
        if not self.is_syncer():
            self.store.hand_off(skus, self.clock())
            return report
        await self.plan_and_push(skus, report, wait=False)
        self._record_sales()
        return report

    def _record_sales(self) -> None:
        """Record the ledger's new sales in the ERP in the background, one run at a time: behind a
        slow ERP (Bling records a sale in two calls at 1.5 a second) the fast path would otherwise
        wait minutes before it planned the next sales, and the channels sold units already gone."""
        self._sales_due = True
        if self._sales_task is None or self._sales_task.done():
            self._sales_task = self.supervisor.start("erp-sales", self._post_sales)

    async def _post_sales(self) -> None:
        while self._sales_due:
            self._sales_due = False  # sales ingested meanwhile ask for another run
            await self.settlement.post_movements(CycleReport("fast-path"))

    async def poll_orders(self, *, wait: bool = True) -> CycleReport:
        """Order poll: the safety net for lost webhooks. ``wait=False`` leaves the pushes it plans
        to the channels' senders (the scheduled poll: behind a busy channel's rate limit the
        pushes could outlast the poll interval, and the next poll would be skipped)."""
        report = CycleReport("orders")
        result = await self.intake.pull_orders(report)
        if result.touched_skus:
            await self.plan_and_push(result.touched_skus, report, wait=wait)
        await self.settlement.post_movements(report)
        return finish(report, self.metrics)

    def close_interrupted_runs(self) -> list[int]:
        """Close the runs a crash or a kill left open as ``interrupted`` (done first at a start)."""
        closed = self.store.close_interrupted_runs(self.clock())
        if closed:
            log.warning("runs.interrupted", runs=closed)
        return closed

    async def start_up_orders(self) -> CycleReport:
        """The start's first cycle, before its reconcile: every channel's orders since its cursor,
        urgently and each on its own, with each channel's sales pushed on the fast path as soon
        as its page is in. Sales made while the daemon was down would otherwise wait for the
        whole reconcile, while the other channels go on offering the units they took."""
        report = CycleReport("start-up")

        def arrived(_channel: str, result: IngestResult) -> None:
            if result.touched_skus:
                self.intake.touch(result.touched_skus)

        await self.intake.pull_orders(report, urgent=True, on_channel=arrived)
        self._record_sales()
        return finish(report, self.metrics)

    async def poll_erp(self) -> CycleReport:
        """ERP poll: restocks and manual ERP edits reach the channels."""
        report = CycleReport("erp")
        await self.settlement.post_movements(report)
        was_out = self.outage.since is not None
        changed = await self.settlement.read_erp(report, full=False)
        if self.outage.recovered():
            # Orders the channels took meanwhile are in the ledger before any quantity is raised.
            await self.intake.pull_orders(report)
            self.outage.end()
            await self.replan_all()
        elif self.outage.active() and not was_out:
            await self.replan_all()  # outage mode just began: low-stock SKUs come down
        elif changed:
            await self.plan_and_push(changed, report)
        return finish(report, self.metrics)

    async def reconcile(self, *, dry_run: bool = False) -> CycleReport:
        """Read everything back, record drift with its cause, push corrections (reconcile.py)."""
        return await self.reconciler.reconcile(dry_run=dry_run)

    async def replan_all(self) -> CycleReport:
        """Plan every SKU again from the ledger (after an event starts, changes or ends)."""
        report = CycleReport("replan")
        await self.plan_and_push(None, report)
        return finish(report, self.metrics)

    async def verify_sold_out(self, skus: set[str]) -> None:
        """Look again at listings of these SKUs syncd believes hold units (sold_out.py)."""
        await self.sold_out.verify(skus)

    # ------------------------------------------------------------------ planning and pushing
    async def plan_and_push(
        self,
        skus: Iterable[str] | None,
        report: CycleReport,
        *,
        channels: set[str] | None = None,
        wait: bool = True,
        send: bool = True,
    ) -> Plan:
        """Plan the given SKUs (None: all), queue the pushes in the outbox and send them: at once
        (``wait``), through the channels' senders in the background, or not at all (``send``)."""
        if not self.is_syncer():
            # A standby plans nothing: the syncer does, from the ledger both share.
            if skus is not None:
                self.store.hand_off(skus, self.clock())
            return Plan([])
        if not self.settlement.stock_known:
            log.warning("plan.skipped", reason="the ERP's stock has not been read yet")
            return Plan([])
        async with self._plan_lock:
            sku_list = None if skus is None else sorted(self.kits.closure(skus) if self.kits else set(skus))
            # Every channel's listing takes part in the plan (the low-stock split depends on all
            # of them); ``channels`` only limits which of them get pushes.
            # A listing the mapping cannot place (a conflict, two listings of one SKU) is never planned.
            rows = [r for r in self.store.listings(skus=sku_list) if not held_by_mapping(r)]
            on_hand = {sku: row.on_hand for sku, row in self.store.skus(sku_list).items()}
            reserved = self.store.reserved_by_sku(sku_list)
            believed: dict[Key, int | None] = {(row.channel, row.sku): belief(row) for row in rows}
            plan = self.planner.plan(on_hand, reserved, believed, report.kind, self._pending_targets(sku_list))
            if channels is not None:
                plan.pushes = [p for p in plan.pushes if p.channel in channels]
                plan.unmapped = [k for k in plan.unmapped if k[0] in channels]
            now = self.clock()
            unaccounted = {
                p.sku: max(self.demand.in_flight(p.sku, now), self.planner.unseen.held(p.sku))
                for p in plan.pushes
            }
            self.history.decisions(
                plan.pushes, plan.low_stock, on_hand, reserved, self.active_events(now), unaccounted
            )
            statuses = {(r.channel, r.sku): r.status for r in rows}
            for key in plan.unmapped:
                if statuses.get(key) != "unmapped":
                    self.store.set_listing_status(key[0], key[1], "unmapped", "SKU unknown to the ERP")
                    log.warning("listing.unmapped", channel=key[0], sku=key[1])
            self.sold_out.withhold(plan.withheld)
            self.sold_out.recheck_withheld()
            if skus is None:
                self.low_stock = plan.low_stock
            self.store.enqueue_pushes(plan.pushes, self.clock())
            if plan.pushes:
                self.sender.queued()
            self.propagation.planned(sku_list, plan.pushes)
            report.pushes.extend(plan.pushes)
            report.counts["pushes_planned"] += len(plan.pushes)
            report.counts["unmapped"] += len(plan.unmapped)
        if not send:
            return plan
        if wait:
            await self.flush(report)
        else:
            self.kick()
        return plan

    def _pending_targets(self, skus: Sequence[str] | None) -> dict[Key, int]:
        """Targets already queued in the outbox: what those listings will show once it drains."""
        return {(p.channel, p.sku): p.target for p in self.store.pending_pushes(skus=skus)}

    async def flush(self, report: CycleReport | None = None) -> None:
        """Send every pending push now, each channel on its own (one down never stops the others)."""
        await self.sender.flush(report or CycleReport("flush"))

    def kick(self) -> None:
        """Have every channel's sender drain the outbox in the background, each at its own pace."""
        self.sender.kick()

    def _regrant(self, skus: set[str]) -> None:
        """SKUs an earlier grant left short, a write of theirs just answered: planned again, by
        the flush under way (it sends them before it ends) and by the fast path."""
        self.sender.regranted |= skus
        self.intake.touch(skus)

    async def _replan_short(self, report: CycleReport, skus: set[str]) -> set[str]:
        plan = await self.plan_and_push(skus, report, send=False)
        return {p.channel for p in plan.pushes}

    async def _replan_stale(self, report: CycleReport, names: set[str]) -> set[str]:
        """A compare-and-set write came back stale: a sale landed between the read before it and
        the write. Plan those SKUs again on those channels (the caller sends them): the new push
        reads the level again before writing, leaves the sale out and compares against it.
        Returns the channels that got new pushes.

        The belief is deliberately not rebased on that read: the racing sale is not in ats until it
        arrives, so it must still count as unseen (the read shows less than the belief) or the
        write would put it back on sale. No order pull either: on a busy shop a Shopify order page
        costs far more than the push it would fix; the sale arrives by webhook or the next poll.
        """
        again: set[str] = set()
        for name in sorted(names):
            skus = self.sender.stale.pop(name, set())
            if not skus:
                continue
            log.info("push.stale_replanned", channel=name, skus=len(skus))
            plan = await self.plan_and_push(skus, report, channels={name}, send=False)
            if plan.pushes:
                again.add(name)
            # Where the new plan needs no write the channel already shows what it should.
            self.propagation.acknowledged(name, skus - {p.sku for p in plan.pushes})
        return again

    async def aclose(self) -> None:
        self.sold_out.cancel()
        await self.supervisor.cancel()
        self.history.flush()
        for connector in [self.erp, *self.channels.values()]:
            try:
                await connector.aclose()
            except Exception as exc:
                log.warning("connector.close_failed", connector=connector.name, error=str(exc))
