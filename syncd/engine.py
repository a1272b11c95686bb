"""The engine: moves data between the connectors and the ledger and asks the core what to push.

Flows (design section 5): order ingestion (poll or webhook) -> reservations -> pushes for the
touched SKUs; ERP poll -> on-hand and settlement -> pushes; full reconcile -> read back every
channel, record drift with its cause, push corrections, write a run record. Connectors fail one at
a time: an error is recorded against its connector and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog

from connectors.base import (
    ChannelConnector,
    ErpConnector,
    Listing,
    Movement,
    OrderLine,
    QuantityUpdate,
    WebhookEvent,
)
from connectors.http import paired_calls, urgent_calls
from syncd.config import Config, EventSettings
from syncd.core import (
    ChannelPolicy,
    ChannelState,
    Drift,
    DriftCause,
    PlannedPush,
    SkuStock,
    auto_low_stock_threshold,
    available_to_sell,
    classify_drift,
    is_low_stock,
    keep_split,
    plan_pushes,
    policy_target,
    race_allowance,
    targets_with_reserve,
)
from syncd.errors import AuthError, ConnectorError, StoreError
from syncd.metrics import Metrics
from syncd.store import IngestResult, ListingRow, PushRow, Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")

T = TypeVar("T")
Key = tuple[str, str]  # (channel, sku)
EVENTS_KEY = "api-events"
WEBHOOK_DEDUPE_TTL = timedelta(days=7)
BURST_MIN_SPAN = 5.0  # seconds: the shortest span a sales rate is measured over
MOVEMENT_RETRY_MIN = 10.0  # seconds before a movement the ERP refused is offered again
MOVEMENT_RETRY_MAX = 600.0
IN_FLIGHT_WINDOW = timedelta(seconds=5)  # recent sales that estimate those not yet reported
RECHECK_DELAY = IN_FLIGHT_WINDOW + timedelta(seconds=0.5)  # then units held back as in flight return
# Seconds a routine push may wait while urgent ones keep coming; then slices alternate.
ROUTINE_MAX_WAIT = 1.0
# Slices of one channel's pushes in flight at once (each of other SKUs than the rest).
SEND_LANES = 2
UNSEEN_POLL_GAP = timedelta(seconds=10)  # a channel's order poll for unexplained units, at most this often


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConnectorHealth:
    """What /ready and /api/status say about one connector."""

    name: str
    kind: str  # "erp" | "channel"
    type: str
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing: bool = False
    needs_human: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.type,
            "healthy": not self.failing and self.last_success is not None,
            "needs_human": self.needs_human,
            "last_success": _iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
        }


@dataclass
class _Sale:
    """A sale (or cancellation) on its way to every channel: the channels that still have to
    acknowledge a new quantity (None until the sale has been planned)."""

    ingested_at: datetime
    channels: set[str] | None = None


@dataclass(frozen=True)
class LowStock:
    sku: str
    ats: int
    threshold: int
    targets: dict[str, int]


@dataclass
class CycleReport:
    """What one cycle did: counts, the pushes it planned, the drift it saw, the errors it met."""

    kind: str
    counts: Counter[str] = field(default_factory=Counter)
    pushes: list[PlannedPush] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


@dataclass
class _Plan:
    pushes: list[PlannedPush]
    low_stock: list[LowStock]
    unmapped: list[Key]


def _p95(samples: Iterable[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def _urgency(push: PushRow) -> tuple[int, int, float, int]:
    """Send order within a channel: decreases before increases (a unit must disappear everywhere
    before any channel gets more); among decreases, zero-outs first, then the largest drop
    relative to what stays on sale (a hot SKU going from 30 to 10 before a routine 54 to 53)."""
    if push.compare is not None and push.target >= push.compare:
        return (1, 1, 0.0, push.id)
    if push.target == 0:
        return (0, 0, 0.0, push.id)
    drop = math.inf if push.compare is None else (push.compare - push.target) / (push.target + 1)
    return (0, 1, -drop, push.id)


def _overdue(pending: Iterable[PushRow], urgent: set[str], now: datetime) -> bool:
    """Whether a routine push has waited ROUTINE_MAX_WAIT or longer."""
    oldest = min((p.created_at for p in pending if p.sku not in urgent), default=None)
    return oldest is not None and (now - oldest).total_seconds() >= ROUTINE_MAX_WAIT


def _update(push: PushRow, ref: str, shown: int | None, spare: int = 0) -> QuantityUpdate:
    """The write for one push, given what the channel was just read to show (None: not read).

    Units the channel sold that syncd has not heard of yet (it shows less than the push's compare
    value) are left out of the target, and so are ``spare`` units (sales the write may forget);
    the value read becomes the compare value.
    """
    offered = _offered(push, shown)
    if offered is None:
        return QuantityUpdate(push.sku, ref, push.target, push.compare, key=f"syncd-push-{push.id}")
    return QuantityUpdate(push.sku, ref, max(0, offered - spare), shown, key=f"syncd-push-{push.id}")


def _offered(push: PushRow, shown: int | None) -> int | None:
    """What a push's write offers given the value just read: its target less the sales the
    channel made that syncd has not heard of (it shows less than the compare value); None when
    the write is not based on a read."""
    if shown is None or push.compare is None:
        return None
    return max(0, push.target - max(0, push.compare - shown))


def _belief(row: ListingRow) -> int | None:
    """What a listing shows as far as syncd knows: its baseline (last write or read-back) minus
    the channel's sales seen since; the last value read if syncd never set it."""
    if row.last_pushed is None:
        return row.observed
    return max(0, row.last_pushed - row.sold_since_push)


def _read_first(push: PushRow) -> bool:
    """A fast-path write of a listing syncd has a belief about is preceded by a read of it."""
    return push.compare is not None and push.reason != "reconcile"


def _send_compare(planned: int | None, now: int | None) -> int | None:
    """The belief a write measures unseen sales against: the larger of the one its target was
    planned from and the one after any write of the listing that landed since. The planned one
    keeps sales syncd had not heard of at planning time out of the target; the current one counts
    sales since a write (an increase, say) that landed after the plan. Taking the larger never
    offers a unit twice; at worst it offers fewer until the next plan."""
    if planned is None or now is None:
        return now if planned is None else planned
    return max(planned, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        erp: ErpConnector,
        channels: Mapping[str, ChannelConnector],
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.config = config
        self.store = store
        self.erp = erp
        self.channels = dict(channels)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.policies = {
            c.name: ChannelPolicy(
                channel=c.name,
                share=c.policy.share,
                buffer=c.policy.buffer,
                cap=c.policy.cap,
                priority=c.policy.priority,
                weight=c.policy.weight,
            )
            for c in config.channels
            if c.name in self.channels
        }
        types = {c.name: c.type for c in config.channels}
        self.health: dict[str, ConnectorHealth] = {
            erp.name: ConnectorHealth(erp.name, "erp", config.erp.type),
            **{name: ConnectorHealth(name, "channel", types.get(name, "?")) for name in self.channels},
        }
        self.low_stock: list[LowStock] = []
        self._flush_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._plan_lock = asyncio.Lock()
        self._cancelled_since_push: Counter[Key] = Counter()
        # Fast path: SKUs waiting for the debounce, and ingestion times of sales not yet propagated.
        self._touched: set[str] = set()
        self._to_fetch: defaultdict[str, list[tuple[WebhookEvent, str | None]]] = defaultdict(list)
        self._fetched_at: dict[str, float] = {}
        self._deferred: set[str] = set()  # channels holding increases back for others' decreases
        self._outbox_version = 0  # bumped whenever pushes are queued
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._fast_task: asyncio.Task[None] | None = None
        self._awaiting: defaultdict[str, list[_Sale]] = defaultdict(list)
        self._sales: defaultdict[str, deque[tuple[datetime, int]]] = defaultdict(deque)
        self._threshold_peaks: dict[str, tuple[datetime, int]] = {}  # sku -> (when, auto threshold)
        self._movement_retry: dict[str, tuple[datetime, float]] = {}  # key -> (next try, last delay)
        self._withheld: set[str] = set()  # low-stock SKUs with free units held back as likely sold
        self._recheck_timer: asyncio.TimerHandle | None = None
        self._verify_task: asyncio.Task[None] | None = None
        self._zero_seen: dict[Key, datetime] = {}  # listing -> when first read at 0 while believed above
        self._unseen = UnseenSales()  # sales reads showed and no report has explained yet
        self._unseen_polls: dict[str, asyncio.Task[None]] = {}
        self._unseen_polled_at: dict[str, datetime] = {}
        self.events = self._load_events()
        self._stale: defaultdict[str, set[str]] = defaultdict(set)
        self.propagation: deque[float] = deque(maxlen=2000)
        self.sale_lag: deque[float] = deque(maxlen=2000)
        # Until the ERP has been read once, no SKU can be called unknown to it.
        self._stock_known = store.counts().get("skus", 0) > 0

    # ------------------------------------------------------------------ connector calls
    async def _call(self, name: str, operation: Awaitable[T], report: CycleReport) -> T | None:
        """Await a connector call; on failure record it against the connector and return None."""
        try:
            result = await operation
        except ConnectorError as exc:
            self._failed(name, exc)
            report.errors.append(str(exc))
            return None
        self._succeeded(name)
        return result

    def _succeeded(self, name: str) -> None:
        health = self.health[name]
        if health.failing:
            log.info("connector.recovered", connector=name)
        health.failing = False
        health.needs_human = False
        health.last_success = self.clock()
        self.metrics.up.labels(name).set(1)

    def _failed(self, name: str, exc: ConnectorError) -> None:
        health = self.health[name]
        if not health.failing or health.last_error != str(exc):
            log.warning("connector.failed", connector=name, error=str(exc), error_class=type(exc).__name__)
        health.failing = True
        health.needs_human = isinstance(exc, AuthError)
        health.last_error = str(exc)
        health.last_error_at = self.clock()
        self.metrics.up.labels(name).set(0)
        self.metrics.errors.labels(name, type(exc).__name__).inc()

    def _unavailable(self) -> frozenset[str]:
        return frozenset(name for name, h in self.health.items() if h.kind == "channel" and h.failing)

    # ------------------------------------------------------------------ orders
    async def _pull_orders(
        self, report: CycleReport, names: Mapping[str, datetime | None] | None = None
    ) -> IngestResult:
        """Read the channels' recent orders into the ledger (no pushes): every channel's from its
        cursor, or those in ``names`` from the time given (None: the cursor). A poll from a time of
        its own leaves the cursor alone (orders before that time may not have been read yet)."""
        schedule = self.config.schedule
        now = self.clock()
        polled: dict[str, tuple[datetime, datetime | None]] = {}

        async def pull(name: str, channel: ChannelConnector) -> list[OrderLine]:
            cursor = self.store.get_cursor(f"orders:{name}")
            start = datetime.fromisoformat(cursor) if cursor else now - schedule.initial_lookback
            own = None if names is None else names.get(name)
            if own is not None and own <= start - schedule.order_overlap:
                own = None  # the cursor's poll reaches back further
            asked = self.clock()
            since = start - schedule.order_overlap if own is None else own
            page = await self._call(name, channel.orders_since(since), report)
            if page is None:
                return []
            polled[name] = (asked, own)
            if own is not None:
                return page.lines
            if page.latest is not None and page.latest > start:
                self.store.set_cursor(f"orders:{name}", page.latest.isoformat())
            elif cursor is None:
                self.store.set_cursor(f"orders:{name}", start.isoformat())
            return page.lines

        chosen = self.channels if names is None else {n: self.channels[n] for n in names}
        results = await asyncio.gather(*(pull(n, c) for n, c in chosen.items()))
        lines = [line for batch in results for line in batch]
        result = self.ingest(lines, report)
        for name, (asked, since) in polled.items():
            self._unseen.polled(name, asked, since)
        return result

    def ingest(self, lines: Sequence[OrderLine], report: CycleReport | None = None) -> IngestResult:
        """Record order lines in the ledger, idempotently; count what was new."""
        result = self.store.ingest_lines(lines, self.clock()) if lines else IngestResult()
        now = self.clock()
        for line in result.new:
            self._awaiting[line.sku].append(_Sale(now))
            self._unseen.reported(line.channel, line.sku, line.quantity, line.updated_at)
            # How late sales reach syncd (webhook delay, or the poll interval): part of the time
            # in which other channels can still sell the same unit.
            self.sale_lag.append(max(0.0, (now - line.updated_at).total_seconds()))
            self.metrics.orders.labels(line.channel).inc()
            log.info(
                "order.ingested",
                channel=line.channel,
                order=line.order_id,
                sku=line.sku,
                quantity=line.quantity,
            )
        self._record_sales(result.new, now)
        for line in [*result.released, *result.to_compensate]:
            self._awaiting[line.sku].append(_Sale(now))
            self._cancelled_since_push[(line.channel, line.sku)] += line.quantity
            log.info("order.cancelled", channel=line.channel, order=line.order_id, sku=line.sku)
        if report is not None:
            report.counts["order_lines_new"] += len(result.new)
            report.counts["order_lines_cancelled"] += len(result.released) + len(result.to_compensate)
            report.counts["order_lines_duplicate"] += result.duplicates
        return result

    def fetch_later(self, channel: str, event: WebhookEvent, dedupe: str | None) -> None:
        """Queue a webhook event whose lines must be fetched: the fast path fetches the events of a
        burst together, ingests them, and only then remembers the deliveries as seen (so that a
        redelivery after a failed fetch is not thrown away)."""
        self._to_fetch[channel].append((event, dedupe))
        self.touch(())

    async def _fetch_queued(self) -> set[str]:
        queued, self._to_fetch = self._to_fetch, defaultdict(list)
        touched: set[str] = set()
        loop_now = asyncio.get_running_loop().time()
        for channel, items in queued.items():
            connector = self.channels[channel]
            last = self._fetched_at.get(channel)
            if (
                last is not None
                and loop_now - last < connector.event_fetch_interval
                and len(items) < connector.event_fetch_batch
            ):
                self._to_fetch[channel].extend(items)  # fetched with the next ones, in one batch
                continue
            self._fetched_at[channel] = loop_now
            now = self.clock()
            fresh = [(e, d) for e, d in items if not (d and self.store.is_webhook_seen(d, now))]
            if not fresh:
                continue
            report = CycleReport("webhook-fetch")
            # The fast path's own reads go first too: a sale syncd has not fetched is a unit the
            # other channels may still offer.
            with urgent_calls():
                lines = await self._call(channel, connector.event_lines([e for e, _ in fresh]), report)
            if lines is None:
                log.warning("webhook.fetch_failed", channel=channel, events=len(fresh), errors=report.errors)
                continue
            touched |= self.ingest(lines).touched_skus
            for _, dedupe in fresh:
                if dedupe:
                    self.store.mark_webhook_seen(dedupe, self.clock(), WEBHOOK_DEDUPE_TTL)
        return touched

    def touch(self, skus: Iterable[str]) -> None:
        """Queue SKUs for the fast path; they are planned and pushed together after the debounce,
        so a burst of sales costs one batch per channel instead of one call per sale."""
        self._touched.update(skus)
        if self._fast_task is None or self._fast_task.done():
            self._fast_task = asyncio.create_task(self._fast_path(), name="fast-path")

    async def _fast_path(self) -> None:
        debounce = self.config.schedule.push_debounce.total_seconds()
        await asyncio.sleep(debounce)
        while self._touched or any(self._to_fetch.values()):
            started = asyncio.get_running_loop().time()
            try:
                self._touched |= await self._fetch_queued()
                batch, self._touched = self._touched, set()
                if batch:
                    await self.push_skus(batch)
            except StoreError as exc:
                log.error("fast_path.store_failed", error=str(exc))
            # While a burst goes on, one round per debounce at most: what arrives meanwhile is
            # fetched and planned together, so webhook fetches do not eat the channel's rate limit.
            if self._touched or any(self._to_fetch.values()):
                await asyncio.sleep(max(0.0, debounce - (asyncio.get_running_loop().time() - started)))

    async def drain_fast_path(self) -> None:
        """Wait until every touched SKU has been planned and pushed (used at shutdown and in tests)."""
        while True:
            tasks = [self._fast_task, *self._senders.values(), *self._unseen_polls.values()]
            busy = [t for t in tasks if t is not None and not t.done()]
            if not busy:
                return
            await asyncio.wait(busy)

    async def push_skus(self, skus: Iterable[str]) -> CycleReport:
        """The fast path after ingestion: queue pushes for the touched SKUs (each channel's sender
        sends them at once, independently), then tell the ERP."""
        report = CycleReport("fast-path")
        await self._plan_and_push(skus, report, wait=False)
        await self._post_movements(report)
        return report

    async def poll_orders(self, *, wait: bool = True) -> CycleReport:
        """Order poll: the safety net for lost webhooks. ``wait=False`` leaves the pushes it plans
        to the channels' senders (the scheduled poll: behind a busy channel's rate limit the
        pushes could outlast the poll interval, and the next poll would be skipped)."""
        report = CycleReport("orders")
        result = await self._pull_orders(report)
        if result.touched_skus:
            await self._plan_and_push(result.touched_skus, report, wait=wait)
        await self._post_movements(report)
        return self._finish(report)

    # ------------------------------------------------------------------ ERP
    async def _post_movements(self, report: CycleReport) -> None:
        """Record ingested sales (and cancellations of settled sales) as ERP movements."""
        now = self.clock()
        sales = self.store.lines_in_state("reserved")
        undo = self.store.lines_in_state("compensate")
        waiting = {x.key for x in sales} | {f"{x.key}:cancel" for x in undo}
        self._movement_retry = {k: v for k, v in self._movement_retry.items() if k in waiting}
        sales = [x for x in sales if self._movement_due(x.key, now)]
        undo = [x for x in undo if self._movement_due(f"{x.key}:cancel", now)]
        movements = [
            Movement(line.key, line.sku, -line.quantity, "sale", f"{line.channel}:{line.order_id}")
            for line in sales
        ] + [
            Movement(
                f"{line.key}:cancel",
                line.sku,
                line.quantity,
                "cancellation",
                f"{line.channel}:{line.order_id}",
            )
            for line in undo
        ]
        if not movements:
            return
        acked = await self._call(self.erp.name, self.erp.record_movements(movements), report)
        if acked is None:
            return
        acked_set = set(acked)
        now = self.clock()
        for movement in movements:
            if movement.key in acked_set:
                self._movement_retry.pop(movement.key, None)
                continue
            # Refused (say, more sold than the ERP holds: an oversold unit). The line keeps
            # counting as reserved and is offered again later, less and less often, not on
            # every flush.
            _, last = self._movement_retry.get(movement.key, (now, 0.0))
            delay = min(MOVEMENT_RETRY_MAX, max(MOVEMENT_RETRY_MIN, 2 * last))
            self._movement_retry[movement.key] = (now + timedelta(seconds=delay), delay)
            report.counts["movements_refused"] += 1
        posted = [line.key for line in sales if line.key in acked_set]
        compensated = [line.key for line in undo if f"{line.key}:cancel" in acked_set]
        self.store.mark_lines(posted, "posted", now)
        self.store.mark_lines(compensated, "released", now)
        report.counts["movements_posted"] += len(posted) + len(compensated)

    def _movement_due(self, key: str, now: datetime) -> bool:
        retry = self._movement_retry.get(key)
        return retry is None or retry[0] <= now

    async def _read_erp(self, report: CycleReport, *, full: bool) -> set[str] | None:
        """Read on-hand (all, or changes since the cursor) into the ledger; the SKUs read."""
        started = self.clock()
        if full:
            records = await self._call(self.erp.name, self.erp.read_stock(), report)
            cursor = None
        else:
            page = await self._call(
                self.erp.name, self.erp.stock_changes(self.store.get_cursor("erp:stock")), report
            )
            records, cursor = (page.records, page.cursor) if page else (None, None)
        if records is None:
            return None
        settled = self.store.apply_stock([(r.sku, r.on_hand) for r in records], started, self.clock())
        self._stock_known = True
        if cursor is not None:
            self.store.set_cursor("erp:stock", cursor)
        report.counts["skus_read"] += len(records)
        report.counts["lines_settled"] += settled
        return {r.sku for r in records}

    async def poll_erp(self) -> CycleReport:
        """ERP poll: restocks and manual ERP edits reach the channels."""
        report = CycleReport("erp")
        await self._post_movements(report)
        changed = await self._read_erp(report, full=False)
        if changed:
            await self._plan_and_push(changed, report)
        return self._finish(report)

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self, *, dry_run: bool = False) -> CycleReport:
        """Read everything back, record drift with its cause, push corrections.

        A dry run reads the ERP and every channel and reports the plan, but writes nothing
        anywhere: not to the channels, not to the ERP, not to the ledger.
        """
        report = CycleReport("reconcile-dry-run" if dry_run else "reconcile")
        if dry_run:
            return await self._dry_run(report)
        run_id = self.store.start_run(report.kind, self.clock())
        structlog.contextvars.bind_contextvars(run_id=run_id)
        try:
            await self._pull_orders(report)
            await self._post_movements(report)
            await self._read_erp(report, full=True)
            listed, drifts = await self._read_back(report)
            # Sales that landed while the channels were read make those read-backs ambiguous.
            late = await self._pull_orders(report)
            late_keys = {(line.channel, line.sku) for line in late.new}
            drifts = [d for d in drifts if (d.channel, d.sku) not in late_keys]
            plan = await self._plan_and_push(None, report, channels=listed)
            corrections = {(p.channel, p.sku): p.target for p in plan.pushes}
            unmapped = set(plan.unmapped)
            # A first sighting is only worth a record when syncd had to change it.
            drifts = [
                d
                for d in drifts
                if (d.channel, d.sku) not in unmapped
                and (d.cause is not DriftCause.UNKNOWN_BASELINE or (d.channel, d.sku) in corrections)
            ]
            report.drift = drifts
            self.store.record_drift(drifts, corrections, self.clock())
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
                )
            report.counts["drift"] += len(drifts)
        except StoreError as exc:
            report.errors.append(f"store: {exc}")
            raise
        finally:
            try:
                self.store.finish_run(run_id, self.clock(), dict(report.counts), report.error)
            except StoreError as exc:
                log.error("run.not_recorded", error=str(exc))
            self._finish(report)
            structlog.contextvars.unbind_contextvars("run_id")
        return report

    async def _read_back(self, report: CycleReport) -> tuple[set[str], list[Drift]]:
        """Read every channel's listings into the ledger, judge drift against what syncd expected,
        then take the read values as the new baseline. Returns the channels that answered."""

        async def read(name: str, channel: ChannelConnector) -> tuple[str, list[Listing] | None]:
            return name, await self._call(name, channel.list_listings(), report)

        answered: set[str] = set()
        drifts: list[Drift] = []
        for name, listings in await asyncio.gather(*(read(n, c) for n, c in self.channels.items())):
            if listings is None:
                continue
            self.store.sync_listings(name, listings, self.clock())
            drifts += self._detect_drift(self.store.listings(name))
            self.store.rebase_listings(name)
            report.counts["listings_read"] += len(listings)
            answered.add(name)
        return answered, drifts

    def _detect_drift(self, rows: Iterable[ListingRow]) -> list[Drift]:
        drifts = []
        for row in rows:
            if row.status == "unmapped":
                continue
            state = ChannelState(row.channel, row.sku, row.last_pushed, row.sold_since_push, row.observed)
            drift = classify_drift(state, self._cancelled_since_push.get((row.channel, row.sku), 0))
            if drift is not None:
                drifts.append(drift)
        return drifts

    async def _dry_run(self, report: CycleReport) -> CycleReport:
        records = await self._call(self.erp.name, self.erp.read_stock(), report)
        on_hand = (
            {r.sku: r.on_hand for r in records}
            if records is not None
            else {sku: row.on_hand for sku, row in self.store.skus().items()}
        )
        believed: dict[Key, int | None] = {}
        for name, channel in self.channels.items():
            listings = await self._call(name, channel.list_listings(), report)
            for listing in listings or []:
                if listing.managed or listing.quantity is not None:
                    believed[(name, listing.sku)] = listing.quantity
        plan = self._plan(on_hand, self.store.reserved_by_sku(), believed, "reconcile")
        report.pushes = plan.pushes
        report.counts["skus_read"] = len(on_hand)
        report.counts["listings_read"] = len(believed)
        report.counts["pushes_planned"] = len(plan.pushes)
        report.counts["unmapped"] = len(plan.unmapped)
        return report

    # ------------------------------------------------------------------ planning and pushing
    def _plan(
        self,
        on_hand: Mapping[str, int],
        reserved: Mapping[str, int],
        believed: Mapping[Key, int | None],
        reason: str,
        pending: Mapping[Key, int] | None = None,
    ) -> _Plan:
        """Targets for every listed (channel, sku) and the pushes that reach them (pure of I/O).

        ``pending`` holds targets already queued: a listing about to be set to its target needs no
        new push, and one about to be set to something else needs one that supersedes it.
        """
        stock = self.config.stock
        by_sku: dict[str, list[str]] = defaultdict(list)
        for channel, sku in believed:
            if channel in self.policies:
                by_sku[sku].append(channel)
        unavailable = self._unavailable()
        now = self.clock()
        policies, reserve = self._policies_at(now)
        latency = self._latency_estimate()
        pending = pending or {}
        exact = frozenset(n for n, c in self.channels.items() if c.supports_compare_and_set)
        targets: dict[Key, int] = {}
        low: list[LowStock] = []
        unmapped: list[Key] = []
        for sku, channels in by_sku.items():
            if sku not in on_hand:
                unmapped.extend((c, sku) for c in channels)
                continue
            threshold = self._threshold(sku, len(channels), now, latency)
            in_flight = self._in_flight(sku, now)
            state = SkuStock(
                sku, on_hand[sku], reserved.get(sku, 0) + in_flight, stock.safety_for(sku), threshold
            )
            sku_policies = [policies[c] for c in sorted(channels)]
            if not is_low_stock(state):
                per_channel = targets_with_reserve(state, sku_policies, reserve, unavailable)
            else:
                # The split itself is of the reported ats (still a split even if that is above the
                # threshold): units likely sold but not yet reported only keep free units from
                # being handed out (they never take units back, which would make channels flap as
                # the estimate moves).
                ats = available_to_sell(state.on_hand, reserved.get(sku, 0), state.safety_stock)
                split = replace(state, reserved=reserved.get(sku, 0), low_stock_threshold=max(threshold, ats))
                fresh = targets_with_reserve(split, sku_policies, reserve, unavailable)
                # Units sold as far as syncd's reads show, not reported yet: sales on their way, or
                # lost webhooks the next order poll will find.
                unreported = max(in_flight, self._unseen.held(sku))
                if unreported:
                    self._withheld.add(sku)
                # What each channel shows, or will once its queued decrease lands; a channel that is
                # down keeps showing what it showed (its queued push has not landed). A queued
                # increase is not the channel's yet: it was planned from free units that may have
                # gone since (sales reported meanwhile), so it is decided again here.
                shown = {c: self._shown(c, sku, believed, pending, unavailable) for c in channels}
                limits = {c: policy_target(ats, policies[c]) for c in channels}
                # A queued decrease has not landed: until it does, the channel may sell what it shows.
                lagging = {
                    c: shown_now
                    for c in channels
                    if (c, sku) in pending
                    and (shown_now := believed[(c, sku)]) is not None
                    and pending[(c, sku)] < shown_now
                }
                per_channel = keep_split(
                    ats,
                    fresh,
                    shown,
                    limits,
                    unavailable=unavailable,
                    exact=exact,
                    lagging=lagging,
                    unreported=unreported,
                )
                low.append(LowStock(sku, ats, threshold, per_channel))
                log.debug(
                    "plan.low_stock",
                    sku=sku,
                    ats=ats,
                    threshold=threshold,
                    in_flight=in_flight,
                    unreported=unreported,
                    shown=shown,
                    fresh=fresh,
                    lagging=lagging,
                    targets=per_channel,
                )
            for channel, target in per_channel.items():
                targets[(channel, sku)] = target
        effective = {k: pending.get(k, believed[k]) for k in targets}
        pushes = [
            replace(p, compare=believed[(p.channel, p.sku)]) if (p.channel, p.sku) in pending else p
            for p in plan_pushes(targets, effective, reason)
        ]
        return _Plan(pushes, low, unmapped)

    @staticmethod
    def _shown(
        channel: str,
        sku: str,
        believed: Mapping[Key, int | None],
        pending: Mapping[Key, int],
        unavailable: frozenset[str],
    ) -> int | None:
        """What a listing counts as showing in the low-stock split: what syncd believes it shows,
        or a queued decrease (it will show that once the push lands). A channel that is down
        keeps what it shows; a queued increase is not given yet."""
        now = believed[(channel, sku)]
        queued = pending.get((channel, sku))
        if channel in unavailable or queued is None:
            return now
        return queued if now is None else min(now, queued)

    # ------------------------------------------------------------------ events and thresholds
    def _policies_at(self, now: datetime) -> tuple[dict[str, ChannelPolicy], dict[str, int]]:
        """Channel policies with the active events applied, and the units events ring-fence."""
        policies = dict(self.policies)
        reserve: dict[str, int] = {}
        for event in self.active_events(now):
            if event.channel not in policies:
                continue
            policy = policies[event.channel]
            policies[event.channel] = replace(
                policy,
                share=policy.share if event.share is None else event.share,
                priority=policy.priority if event.priority is None else event.priority,
            )
            if event.reserve:
                reserve[event.channel] = reserve.get(event.channel, 0) + event.reserve
        return policies, reserve

    def active_events(self, now: datetime) -> list[EventSettings]:
        return [e for e in self.events if e.active(now)]

    def _load_events(self) -> list[EventSettings]:
        """Events from the config plus those added over the API (kept in the ledger)."""
        saved = self.store.get_cursor(EVENTS_KEY)
        extra: list[EventSettings] = []
        if saved:
            try:
                extra = [EventSettings.model_validate(e) for e in json.loads(saved)]
            except (ValueError, TypeError) as exc:
                log.error("events.unreadable", error=str(exc))
        names = {e.name for e in extra}
        return [e for e in self.config.events if e.name not in names] + extra

    def save_event(self, event: EventSettings) -> None:
        """Add or replace an API event (by name), drop expired ones, persist."""
        now = self.clock()
        self.events = [e for e in self.events if e.name != event.name and e.end > now] + [event]
        self._persist_events()
        log.info(
            "event.saved",
            name=event.name,
            channel=event.channel,
            start=event.start.isoformat(),
            end=event.end.isoformat(),
        )

    def delete_event(self, name: str) -> bool:
        before = len(self.events)
        self.events = [e for e in self.events if e.name != name]
        self._persist_events()
        return len(self.events) < before

    def _persist_events(self) -> None:
        config_names = {e.name for e in self.config.events}
        api_events = [e.model_dump(mode="json") for e in self.events if e.name not in config_names]
        self.store.set_cursor(EVENTS_KEY, json.dumps(api_events))

    def _record_sales(self, lines: Iterable[OrderLine], now: datetime) -> None:
        auto = self.config.stock.auto_threshold
        keep = max(auto.window, auto.burst_window)
        for line in lines:
            sales = self._sales[line.sku]
            sales.append((now, line.quantity))
            while sales and now - sales[0][0] > keep:
                sales.popleft()

    def _in_flight(self, sku: str, now: datetime) -> int:
        """Units of ``sku`` likely sold already but not yet reported to syncd: the rate at which its
        sales arrived over the last IN_FLIGHT_WINDOW times how late sales reach syncd (p95). They
        are gone whether or not syncd knows, so no channel may offer them; once sales stop
        arriving, the estimate falls to 0 within that window and any unit not sold returns."""
        if not self.config.stock.hold_in_flight:
            return 0
        rate = self._recent_rate(sku, now)
        if rate <= 0:
            return 0
        if len(self.sale_lag) >= 20:
            lag = statistics.fmean(self.sale_lag)
        else:
            lag = self.config.stock.auto_threshold.default_latency.total_seconds()
        return round(rate * lag)

    def _recent_rate(self, sku: str, now: datetime) -> float:
        """Units of ``sku`` per second reported over the last IN_FLIGHT_WINDOW, on all channels."""
        window = IN_FLIGHT_WINDOW.total_seconds()
        return sum(q for t, q in self._sales.get(sku, ()) if (now - t).total_seconds() <= window) / window

    def _latency_estimate(self) -> float:
        auto = self.config.stock.auto_threshold
        if auto.latency is not None:
            return auto.latency.total_seconds()
        # Too few samples say more about luck than about the channels.
        if len(self.propagation) < 20 or len(self.sale_lag) < 20:
            return auto.default_latency.total_seconds()
        # From a sale to the other channels knowing: how late syncd hears of it, plus the push.
        return _p95(self.sale_lag) + _p95(self.propagation)

    def _threshold(self, sku: str, channels: int, now: datetime, latency: float) -> int:
        """The SKU's low-stock threshold: fixed, or ``auto`` from its sales rate."""
        threshold = self.config.stock.threshold_for(sku)
        if threshold == "auto":
            return self._auto_threshold(sku, channels, now, latency)
        return threshold

    def _auto_threshold(self, sku: str, channels: int, now: datetime, latency: float) -> int:
        auto = self.config.stock.auto_threshold
        sales = self._sales.get(sku, ())

        def per_minute(window: timedelta, *, since_first: bool = False) -> float:
            recent = [(t, q) for t, q in sales if now - t <= window]
            span = window.total_seconds()
            if since_first and recent:
                # A burst that began seconds ago is measured over those seconds, not the window.
                span = min(span, max(BURST_MIN_SPAN, (now - recent[0][0]).total_seconds()))
            return sum(q for _, q in recent) / (span / 60)

        rate = max(per_minute(auto.window), per_minute(auto.burst_window, since_first=True))
        value = auto_low_stock_threshold(rate, latency, channels, auto.floor, auto.cap)
        # The highest estimate holds for a burst window: a SKU that sold out on one channel sells
        # slower and its pushes get fewer, which would lower the estimate and take the SKU out of
        # low-stock mode while the burst goes on.
        peak = self._threshold_peaks.get(sku)
        if peak is not None and now - peak[0] <= auto.burst_window and peak[1] > value:
            return peak[1]
        self._threshold_peaks[sku] = (now, value)
        return value

    async def replan_all(self) -> CycleReport:
        """Plan every SKU again from the ledger (after an event starts, changes or ends)."""
        report = CycleReport("replan")
        await self._plan_and_push(None, report)
        return self._finish(report)

    async def _plan_and_push(
        self,
        skus: Iterable[str] | None,
        report: CycleReport,
        *,
        channels: set[str] | None = None,
        wait: bool = True,
        send: bool = True,
    ) -> _Plan:
        """Plan the given SKUs (None: all), queue the pushes in the outbox and send them."""
        if not self._stock_known:
            log.warning("plan.skipped", reason="the ERP's stock has not been read yet")
            return _Plan([], [], [])
        async with self._plan_lock:
            sku_list = None if skus is None else sorted(set(skus))
            # Every channel's listing takes part in the plan (the low-stock split depends on all
            # of them); ``channels`` only limits which of them get pushes.
            rows = self.store.listings(skus=sku_list)
            on_hand = {sku: row.on_hand for sku, row in self.store.skus(sku_list).items()}
            reserved = self.store.reserved_by_sku(sku_list)
            belief: dict[Key, int | None] = {}
            for row in rows:
                belief[(row.channel, row.sku)] = _belief(row)
            plan = self._plan(on_hand, reserved, belief, report.kind, self._pending_targets(sku_list))
            if channels is not None:
                plan.pushes = [p for p in plan.pushes if p.channel in channels]
                plan.unmapped = [k for k in plan.unmapped if k[0] in channels]
            statuses = {(r.channel, r.sku): r.status for r in rows}
            for key in plan.unmapped:
                if statuses.get(key) != "unmapped":
                    self.store.set_listing_status(key[0], key[1], "unmapped", "SKU unknown to the ERP")
                    log.warning("listing.unmapped", channel=key[0], sku=key[1])
            self._recheck_withheld()
            if skus is None:
                self.low_stock = plan.low_stock
            self.store.enqueue_pushes(plan.pushes, self.clock())
            if plan.pushes:
                self._outbox_version += 1
            self._sales_planned(sku_list, plan.pushes)
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

    def _recheck_withheld(self) -> None:
        """Plan again, once the estimate has had time to fall, the SKUs whose free units were
        held back as likely sold: no sale may come to trigger it (the SKU sold out everywhere)."""
        if not self._withheld or self._recheck_timer is not None:
            return
        skus, self._withheld = self._withheld, set()

        def due() -> None:
            self._recheck_timer = None
            self._verify_task = asyncio.create_task(self._verify_sold_out(skus), name="verify-sold-out")

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._recheck_timer = loop.call_later(RECHECK_DELAY.total_seconds(), due)

    async def _verify_sold_out(self, skus: set[str]) -> None:
        """Poll the orders of channels holding unexplained units of these SKUs (in the background),
        read the listings syncd believes still hold units, then plan the SKUs.

        Order times are whole seconds, so a sale in the same second as a write counts as made
        before it and syncd may go on believing the channel holds a unit it has sold. A listing
        read at 0 cannot sell any more; if a look at least RECHECK_DELAY later (its last sales
        have been reported meanwhile) still finds it at 0, unwritten and believed above 0, it is
        taken as 0 from the first read on and its part of the units goes to channels that can
        sell it."""
        report = CycleReport("verify")
        touched = set(skus)
        try:
            self._poll_for_unseen(skus)
            down = self._unavailable()
            rows = [
                r
                for r in self.store.listings(skus=sorted(skus))
                if r.channel in self.channels and r.channel not in down and (_belief(r) or 0) > 0
            ]
            by_channel: defaultdict[str, list[ListingRow]] = defaultdict(list)
            for row in rows:
                by_channel[row.channel].append(row)
            for name, listed in by_channel.items():
                started = self.clock()
                reading = [Listing(r.sku, r.ref, None) for r in listed]
                with urgent_calls():
                    shown = await self._call(name, self.channels[name].read_quantities(reading), report)
                if not shown:
                    continue
                now_rows = {r.sku: r for r in self.store.listings(name, skus=[r.sku for r in listed])}
                sold_out: dict[str, int] = {}
                for sku, quantity in shown.items():
                    now_row = now_rows.get(sku)
                    if quantity != 0 or now_row is None or (_belief(now_row) or 0) <= 0:
                        self._zero_seen.pop((name, sku), None)
                        continue
                    if now_row.pushed_at is not None and now_row.pushed_at >= started:
                        continue  # written since: the write is the newer word
                    first = self._zero_seen.get((name, sku))
                    if first is None or (now_row.pushed_at is not None and now_row.pushed_at >= first):
                        # Seen at 0 for the first time: its last sales may not be reported yet
                        # (they would be counted twice if it were set to 0 now), so look again
                        # once they have had time to arrive.
                        self._zero_seen[(name, sku)] = started
                        self._withheld.add(sku)
                    elif started - first >= RECHECK_DELAY:
                        # Still believed to hold units: sales counted as made before a write.
                        # Taken as 0 from the first read (every sale before it is in that read).
                        self.store.record_pushed(name, {sku: 0}, first)
                        self._zero_seen.pop((name, sku), None)
                        sold_out[sku] = 0
                    else:
                        self._withheld.add(sku)  # not long enough yet: look again later
                if sold_out:
                    log.info("listing.seen_sold_out", channel=name, skus=sorted(sold_out))
                # A listing taken as 0 showed nothing new: the poll above settled its units.
                self._measure_unseen(name, {s: q for s, q in shown.items() if s not in sold_out}, started)
        except StoreError as exc:
            log.error("verify.store_failed", error=str(exc))
        self.touch(touched)

    def _poll_for_unseen(self, skus: set[str]) -> None:
        """Units reads showed sold and no report explained may be sales whose webhook was lost:
        an order poll of their channel finds them (or shows they were counted already) before
        any of those units is offered again. The polls run on their own (a poll can wait long for
        Shopify's cost points), one per channel at a time and at most every UNSEEN_POLL_GAP (an
        order search costs Shopify a good part of its bucket)."""
        now = self.clock()
        down = self._unavailable()
        for name, since in self._unseen.waiting(skus, now).items():
            running = self._unseen_polls.get(name)
            last = self._unseen_polled_at.get(name)
            if name in down or (running is not None and not running.done()):
                continue
            if last is not None and now - last < UNSEEN_POLL_GAP:
                continue
            self._unseen_polled_at[name] = now
            self._unseen_polls[name] = asyncio.create_task(
                self._poll_unseen(name, since, skus), name=f"unseen-poll-{name}"
            )

    async def _poll_unseen(self, name: str, since: datetime | None, skus: set[str]) -> None:
        report = CycleReport("unseen-poll")
        try:
            with urgent_calls():
                result = await self._pull_orders(report, {name: since})
        except StoreError as exc:
            log.error("unseen_poll.store_failed", channel=name, error=str(exc))
            return
        log.debug(
            "unseen.polled",
            channel=name,
            held={s: self._unseen.held(s) for s in sorted(skus)},
            errors=report.errors,
        )
        self.touch(result.touched_skus | skus)

    def _pending_targets(self, skus: Sequence[str] | None) -> dict[Key, int]:
        """Targets already queued in the outbox: what those listings will show once it drains."""
        wanted = None if skus is None else set(skus)
        return {
            (p.channel, p.sku): p.target
            for p in self.store.pending_pushes()
            if wanted is None or p.sku in wanted
        }

    async def flush(self, report: CycleReport | None = None) -> None:
        """Send every pending push, each channel on its own (one down never stops the others);
        writes that came back stale are planned and sent once more."""
        report = report or CycleReport("flush")
        await asyncio.gather(*(self._flush_channel(name, report) for name in self.channels))
        again = await self._replan_stale(report, set(self.channels))
        await asyncio.gather(*(self._flush_channel(name, report) for name in again))
        # Increases held back for other channels' decreases, now landed (or failed: then they
        # stay pending for the senders).
        for _ in range(2):
            waiting, self._deferred = set(self._deferred), set()
            if not waiting:
                break
            await asyncio.gather(*(self._flush_channel(name, report) for name in waiting))

    def kick(self) -> None:
        """Have every channel's sender drain the outbox in the background, each at its own pace,
        so a slow or throttled channel never holds back the pushes to the others."""
        for name in self.channels:
            self._kick_one(name)

    def _kick_one(self, name: str) -> None:
        """Start the channel's sender, or have the running one go round once more."""
        task = self._senders.get(name)
        if task is None or task.done():
            self._senders[name] = asyncio.create_task(self._send_loop(name), name=f"sender:{name}")
        else:
            self._dirty.add(name)

    async def _send_loop(self, name: str) -> None:
        while True:
            self._dirty.discard(name)
            report = CycleReport("send")
            try:
                await self._flush_channel(name, report)
                if await self._replan_stale(report, {name}):
                    continue
            except StoreError as exc:
                log.error("sender.store_failed", channel=name, error=str(exc))
                return
            if name not in self._dirty:
                return

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
            skus = self._stale.pop(name, set())
            if not skus:
                continue
            log.info("push.stale_replanned", channel=name, skus=len(skus))
            plan = await self._plan_and_push(skus, report, channels={name}, send=False)
            if plan.pushes:
                again.add(name)
            # Where the new plan needs no write the channel already shows what it should.
            self._sales_acknowledged(name, skus - {p.sku for p in plan.pushes})
        return again

    def _sales_planned(self, skus: Iterable[str] | None, pushes: Sequence[PlannedPush]) -> None:
        """Sales waiting for a plan learn which channels must acknowledge a new quantity."""
        needed: defaultdict[str, set[str]] = defaultdict(set)
        for push in pushes:
            needed[push.sku].add(push.channel)
        for sku in list(self._awaiting) if skus is None else [s for s in skus if s in self._awaiting]:
            for sale in self._awaiting[sku]:
                if sale.channels is None:
                    sale.channels = set(needed.get(sku, ()))
            self._settle_sales(sku)

    def _sales_acknowledged(self, channel: str, skus: Iterable[str]) -> None:
        for sku in skus:
            for sale in self._awaiting.get(sku, ()):
                if sale.channels is not None:
                    sale.channels.discard(channel)
            self._settle_sales(sku, last=channel)

    def _settle_sales(self, sku: str, last: str | None = None) -> None:
        """A sale has propagated once every channel that needed a new quantity acknowledged it."""
        now = self.clock()
        waiting = []
        for sale in self._awaiting.get(sku, ()):
            if sale.channels is not None and not sale.channels:
                seconds = max(0.0, (now - sale.ingested_at).total_seconds())
                self.propagation.append(seconds)
                self.metrics.propagation.observe(seconds)
                log.debug("sale.propagated", sku=sku, seconds=round(seconds, 3), last=last)
            else:
                waiting.append(sale)
        if waiting:
            self._awaiting[sku] = waiting
        else:
            self._awaiting.pop(sku, None)

    async def _flush_channel(self, name: str, report: CycleReport) -> None:
        """Send the channel's pending pushes, the most urgent first, a slice at a time, with up to
        SEND_LANES slices in flight (of different SKUs): a channel's calls mostly wait on round
        trips, not on its rate limit, so a second slice goes out while the first is answered.
        Before each slice the outbox is read again if something was queued, so a push for a SKU
        about to sell out goes before the routine ones still waiting. Each push is tried once per
        flush."""
        async with self._flush_locks[name]:
            channel = self.channels[name]
            size = max(1, channel.push_slice or channel.max_batch)
            tried: set[int] = set()
            seen_version = -1
            pending: list[PushRow] = []
            urgent: set[str] = set()
            after_urgent = False
            running: dict[asyncio.Task[list[PushRow]], set[str]] = {}
            absolute: set[str] = set()  # SKUs whose writes came back stale in this flush
            try:
                while True:
                    if seen_version != self._outbox_version:
                        # Something was queued since: read the outbox again and re-rank it.
                        seen_version = self._outbox_version
                        pending = [p for p in self.store.pending_pushes(name) if p.id not in tried]
                        urgent = self._urgent_skus(pending)
                        doubtful = self._doubtful_increases(name, pending, urgent)
                        if doubtful:
                            pending = [p for p in pending if p.id not in doubtful]
                        blocked = self._blocked_increases(name, pending, urgent)
                        if blocked:
                            # Sent once the other channels' decreases have landed (they wake us).
                            self._deferred.add(name)
                            pending = [p for p in pending if p.id not in blocked]
                        pending.sort(key=lambda p: (p.sku not in urgent, *_urgency(p)))
                    else:
                        pending = [p for p in pending if p.id not in tried]
                    busy = set().union(*running.values())
                    ready = [p for p in pending if p.sku not in busy]
                    if ready and len(running) < SEND_LANES:
                        batch, after_urgent = self._next_slice(channel, ready, urgent, size, after_urgent)
                        tried.update(p.id for p in batch)
                        # Urgent slices take the rate limiter's tokens ahead of routine calls.
                        with urgent_calls() if after_urgent else contextlib.nullcontext():
                            task = asyncio.create_task(
                                self._send_slice(
                                    name,
                                    channel,
                                    batch,
                                    report,
                                    urgent=after_urgent,
                                    absolute=frozenset(p.sku for p in batch if p.sku in absolute),
                                )
                            )
                        running[task] = {p.sku for p in batch}
                        continue
                    if not running:
                        return
                    done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        del running[task]
                        for push in task.result():
                            # Stale: a sale landed between the read and the write, so the SKU
                            # sells faster than a round trip and a compare would likely fail
                            # again. The push is tried again at once, read afresh and written
                            # without compare-and-set, leaving out the sales it may forget. (Should
                            # that come back stale too, the SKU is planned again after the flush.)
                            if push.sku not in absolute:
                                absolute.add(push.sku)
                                tried.discard(push.id)
                                seen_version = -1
                            else:
                                self.store.fail_push(
                                    push.id, "stale compare value", self.clock(), give_up=True
                                )
                                self._stale[name].add(push.sku)
            finally:
                for task in running:
                    task.cancel()
                if running:
                    await asyncio.gather(*running, return_exceptions=True)

    def _next_slice(
        self, channel: ChannelConnector, ready: list[PushRow], urgent: set[str], size: int, after_urgent: bool
    ) -> tuple[list[PushRow], bool]:
        """The next slice of ranked pushes, and whether it is urgent. A slice is all urgent (one
        read and one round of writes for all of them) or a few routine pushes, so routine writes
        never delay urgent ones for long. While urgent pushes keep coming, a routine slice that
        has waited ROUTINE_MAX_WAIT goes after each urgent one, so a sale of an ordinary SKU
        still propagates."""
        is_urgent = ready[0].sku in urgent and not (after_urgent and _overdue(ready, urgent, self.clock()))
        if is_urgent:
            most = size if channel.writes_per_item else channel.max_batch
            return [p for p in ready if p.sku in urgent][:most], True
        return [p for p in ready if p.sku not in urgent][:size], False

    def _doubtful_increases(self, name: str, pushes: Sequence[PushRow], urgent: set[str]) -> set[int]:
        """Increases of low-stock SKUs planned before a read (on any channel) found units sold
        that no report explains yet: the plan handed out units that may be gone (a channel's
        decrease that was to free them found them sold). They are withdrawn and the SKUs planned
        again for this channel, with those units held."""
        doubtful = {
            p.id: p.sku
            for p in pushes
            if p.sku in urgent
            and p.compare is not None
            and p.target > p.compare
            and self._unseen.found_since(p.sku, p.created_at)
        }
        if doubtful:
            self.store.supersede_pushes(list(doubtful), self.clock())
            self._stale[name].update(doubtful.values())
            log.debug("push.doubtful_increase", channel=name, skus=sorted(set(doubtful.values())))
        return set(doubtful)

    def _blocked_increases(self, name: str, pushes: Sequence[PushRow], urgent: set[str]) -> set[int]:
        """Increases of low-stock SKUs that must wait: another reachable channel still has a
        decrease of the same SKU pending, so it may still sell units this increase would offer
        again. Across channels as within one, a unit disappears everywhere before it reappears."""
        increases = [p for p in pushes if p.sku in urgent and p.compare is not None and p.target > p.compare]
        if not increases:
            return set()
        down = self._unavailable()
        decreasing = {
            q.sku
            for q in self.store.pending_pushes()
            if q.channel != name and q.channel not in down and (q.compare is None or q.target < q.compare)
        }
        return {p.id for p in increases if p.sku in decreasing}

    def _wake_deferred(self, name: str) -> None:
        """A channel's writes landed: channels holding increases back may try them again."""
        waiting = self._deferred - {name}
        if not waiting:
            return
        self._deferred -= waiting
        for other in waiting:
            self._kick_one(other)

    def _urgent_skus(self, pushes: Iterable[PushRow]) -> set[str]:
        """SKUs whose pushes cannot wait: zero-outs and SKUs in low-stock mode (what the channel
        shows or will show is within the low-stock threshold), where every unit counts."""
        now = self.clock()
        latency = self._latency_estimate()
        urgent: set[str] = set()
        for push in pushes:
            threshold = self._threshold(push.sku, len(self.channels), now, latency)
            if push.target == 0 or push.compare is None or min(push.target, push.compare) <= threshold:
                urgent.add(push.sku)
        return urgent

    async def _send_slice(
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
                sendable.append(replace(push, compare=_send_compare(push.compare, _belief(rows[push.sku]))))
            else:
                self.store.fail_push(push.id, "no listing on the channel", now, give_up=True)
        if not sendable:
            return []
        reading = any(_read_first(p) for p in sendable)
        # The read and the writes take their rate-limit turns together, so the writes follow the
        # read at once: sales in between are the ones a write without compare-and-set forgets.
        writes = len(sendable) if channel.writes_per_item else 1
        version = self._outbox_version
        with paired_calls(1 + writes) if reading else contextlib.nullcontext():
            read_from = self.clock()
            shown = await self._read_before_write(name, channel, sendable, refs, report)
            if shown:
                self._measure_unseen(name, shown, read_from)
            if version != self._outbox_version:
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
                spare = self._race_spares(racing, rows, shown, read_from, started)
            if shown is None:
                result = None
            else:
                updates = [_update(p, refs[p.sku], shown.get(p.sku), spare.get(p.sku, 0)) for p in sendable]
                # Only a level just read may be written without compare-and-set.
                updates = [
                    replace(u, compare=None) if u.sku in absolute and u.sku in shown else u for u in updates
                ]
                updates = self._skip_unchanged(name, sendable, updates, shown)
                if not updates:
                    return []
                writing = {u.sku for u in updates}
                sendable = [p for p in sendable if p.sku in writing]
                result = await self._call(name, channel.set_quantities(updates), report)
        now = self.clock()
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
                    self._unseen.may_be_forgotten(name, sku, units, read_at=read_from, written_at=started)
            # The values held from the moment the write started.
            self.store.record_pushed(name, result.applied, started)
            # A read right after the write is a later baseline: sales before it are in its value.
            read_back = {s: q for s, q in result.read_back.items() if s in result.applied}
            if read_back:
                # Sales between the write and the read-back that syncd has not heard of are in
                # the value read: held like any other unseen sales until reported or polled.
                self._measure_unseen(name, read_back, started)
                self.store.record_pushed(name, read_back, now)
            self.store.complete_pushes([by_sku[s].id for s in result.applied if s in by_sku], now)
            self._sales_acknowledged(name, result.applied)
            for sku, quantity in result.applied.items():
                self._cancelled_since_push.pop((name, sku), None)
                sent = by_sku.get(sku)
                log.info(
                    "push.sent",
                    channel=name,
                    sku=sku,
                    quantity=quantity,
                    target=sent.target if sent else None,
                    believed=sent.compare if sent else None,
                    read=None if shown is None else shown.get(sku),
                )
            self.metrics.pushes.labels(name, "sent").inc(len(result.applied))
            report.counts["pushes_sent"] += len(result.applied)
            self._wake_deferred(name)
        for sku, reason in result.rejected.items():
            if sku in by_sku:
                self.store.set_listing_status(name, sku, "rejected", reason[:500])
                self.store.fail_push(by_sku[sku].id, reason[:500], now, give_up=True)
                log.warning("push.rejected", channel=name, sku=sku, reason=reason)
        # A rejected listing will not take this quantity: sales stop waiting on it (the listing's
        # status says what is wrong).
        self._sales_acknowledged(name, [s for s in result.rejected if s in by_sku])
        self.metrics.pushes.labels(name, "rejected").inc(len(result.rejected))
        self.metrics.pushes.labels(name, "stale").inc(len(result.stale))
        report.counts["pushes_rejected"] += len(result.rejected)
        report.counts["pushes_stale"] += len(result.stale)
        return [by_sku[s] for s in dict.fromkeys(result.stale) if s in by_sku]

    def _newest(self, name: str, pushes: Sequence[PushRow], rows: Mapping[str, ListingRow]) -> list[PushRow]:
        """The pushes to write after a read during which SKUs were planned again. A push still
        pending is written; one superseded by a decrease is replaced by it, written with this
        read (a hot SKU is planned again every debounce, often faster than a read comes back: it
        would otherwise never be written); one superseded by anything else, or sent meanwhile, is
        dropped (an increase goes through the sender's checks first)."""
        current = self.store.pending_for(name, [p.sku for p in pushes])
        kept: list[PushRow] = []
        for push in pushes:
            newest = current.get(push.sku)
            if newest is None:
                continue
            if newest.id == push.id:
                kept.append(push)
            elif _read_first(newest) and newest.compare is not None and newest.target < newest.compare:
                kept.append(replace(newest, compare=_send_compare(newest.compare, _belief(rows[push.sku]))))
        return kept

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
        self._sales_acknowledged(name, unchanged)
        self.metrics.pushes.labels(name, "unchanged").inc(len(unchanged))
        for sku, quantity in unchanged.items():
            log.debug("push.unchanged", channel=name, sku=sku, quantity=quantity)
        self._wake_deferred(name)
        return [u for u in updates if u.sku not in unchanged]

    def _race_spares(
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
            offered = _offered(push, now)
            if offered is None or now is None:
                continue
            rate = self._recent_rate(push.sku, read_from)
            if row is not None and row.last_pushed is not None and row.pushed_at is not None:
                span = max(1.0, (read_from - row.pushed_at).total_seconds())
                rate = max(rate, max(0, row.last_pushed - now) / span)
            units = min(offered, race_allowance(rate * window))
            if units:
                spares[push.sku] = units
        return spares

    def _measure_unseen(self, name: str, shown: Mapping[str, int], read_from: datetime) -> None:
        """Record how far below syncd's belief a read found each listing (sales not reported)."""
        read_to = self.clock()
        for row in self.store.listings(name, skus=sorted(shown)):
            belief = _belief(row)
            if belief is not None and row.sku in shown:
                self._unseen.measured(
                    name,
                    row.sku,
                    belief - shown[row.sku],
                    baseline=row.pushed_at,
                    read_from=read_from,
                    read_to=read_to,
                )

    async def _read_before_write(
        self,
        name: str,
        channel: ChannelConnector,
        pushes: Sequence[PushRow],
        refs: Mapping[str, str],
        report: CycleReport,
    ) -> dict[str, int] | None:
        """What the channel shows now for the fast path's pushes, per SKU (None: the read failed).

        syncd's belief lags by the sales it has not heard of yet. A channel without compare-and-set
        takes quantities absolutely, so a write would put such sales back on sale; one with it
        would refuse a write whose compare value lags, again and again while a SKU sells fast.
        Reading just before writing shows both: the write then leaves the unseen sales out and
        compares against the value read. Pushes of a full reconcile are planned from a fresh read
        already and skip this.
        """
        fresh = [p for p in pushes if _read_first(p)]
        if not fresh:
            return {}
        listings = [Listing(p.sku, refs[p.sku], None) for p in fresh]
        return await self._call(name, channel.read_quantities(listings), report)

    # ------------------------------------------------------------------ reporting
    def _finish(self, report: CycleReport) -> CycleReport:
        outcome = "error" if report.errors else "ok"
        self.metrics.cycles.labels(report.kind, outcome).inc()
        event = "cycle.finished" if not report.errors else "cycle.failed"
        log.info(event, kind=report.kind, errors=report.errors or None, **dict(report.counts))
        return report

    def propagation_percentiles(self) -> dict[str, float | int | None]:
        """p50/p95/p99 of the recent sale-to-all-channels propagation times, in seconds."""
        samples = sorted(self.propagation)
        if not samples:
            return {"samples": 0, "p50": None, "p95": None, "p99": None}

        def pick(q: float) -> float:
            return round(samples[min(len(samples) - 1, math.ceil(q * len(samples)) - 1)], 4)

        return {"samples": len(samples), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}

    def status(self) -> dict[str, Any]:
        """Everything /api/status shows (never a secret)."""
        return {
            "propagation_seconds": self.propagation_percentiles(),
            "events": [
                {**e.model_dump(mode="json"), "active": e.active(self.clock())}
                for e in self.events
                if e.end > self.clock()
            ],
            "connectors": [h.as_dict() for h in self.health.values()],
            "low_stock": [
                {"sku": s.sku, "ats": s.ats, "threshold": s.threshold, "targets": s.targets}
                for s in self.low_stock
            ],
        }

    def readiness(self, max_age: timedelta) -> list[str]:
        """Reasons the daemon is not ready (empty when ready)."""
        reasons = []
        now = self.clock()
        for h in self.health.values():
            if h.needs_human:
                reasons.append(f"{h.name}: credentials refused, needs a human: {h.last_error}")
            elif h.last_success is None:
                reasons.append(
                    f"{h.name}: no successful call yet" + (f" ({h.last_error})" if h.last_error else "")
                )
            elif now - h.last_success > max_age:
                reasons.append(f"{h.name}: last success {h.last_success.isoformat()} is older than {max_age}")
        return reasons

    async def aclose(self) -> None:
        if self._recheck_timer is not None:
            self._recheck_timer.cancel()
            self._recheck_timer = None
        if self._verify_task is not None and not self._verify_task.done():
            self._verify_task.cancel()
        for task in self._unseen_polls.values():
            if not task.done():
                task.cancel()
        for connector in [self.erp, *self.channels.values()]:
            try:
                await connector.aclose()
            except Exception as exc:
                log.warning("connector.close_failed", connector=connector.name, error=str(exc))
