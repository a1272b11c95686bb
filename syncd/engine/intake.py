"""Order intake: webhook deliveries and order polls into the ledger (idempotently), and the fast
path that plans and pushes the SKUs they touch after a short debounce. Orders a channel sends that
cannot be understood, or whose quantities are out of bounds, are quarantined (kept for a person,
alerted, never reserved) and the rest go on."""

from __future__ import annotations

import asyncio
import enum
import functools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from connectors.base import ChannelConnector, OrderLine, Quarantined, WebhookEvent
from syncd.accounts import listing_sold
from syncd.config import Config
from syncd.engine.demand import Demand
from syncd.engine.health import Health
from syncd.engine.mapping import ListingSkus
from syncd.engine.reports import CycleReport, Key, Propagation
from syncd.engine.supervisor import Supervisor
from syncd.errors import PayloadError, SignatureError, StoreError
from syncd.history import History
from syncd.metrics import Metrics
from syncd.store import IngestResult, Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")

WEBHOOK_DEDUPE_TTL = timedelta(days=7)

if TYPE_CHECKING:
    from syncd.engine.allocations import Allocations
    from syncd.engine.shortfalls import Shortfalls


class Outcome(enum.Enum):
    """What became of a webhook delivery."""

    RECORDED = "recorded"  # its lines are in the ledger
    DUPLICATE = "duplicate"  # seen before: nothing recorded
    ACCEPTED = "accepted"  # names orders whose lines are fetched after the answer
    PING = "ping"  # a subscription check
    UNKNOWN_CHANNEL = "unknown_channel"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    LEDGER_FAILED = "ledger_failed"  # nothing recorded: the platform should send it again


@dataclass(frozen=True)
class Receipt:
    outcome: Outcome
    error: str = ""
    lines: int = 0
    new: int = 0
    quarantined: int = 0  # orders of the delivery kept aside, not reserved


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The platform's id of a delivery, for the logs."""
    for header in ("x-wc-webhook-delivery-id", "x-shopify-webhook-id", "x-tts-notification-id"):
        if header in headers:
            return headers[header]
    return None


class Intake:
    allocations: Allocations | None = None  # wired by the Engine
    shortfalls: Shortfalls | None = None  # wired by the Engine: reads below range waiting for orders

    history: History = History.off()  # wired by the Engine
    # Wired by the Engine: every line's SKU becomes its ERP SKU before it reaches the ledger.
    skus: ListingSkus = ListingSkus()

    def __init__(
        self,
        config: Config,
        store: Store,
        channels: Mapping[str, ChannelConnector],
        health: Health,
        demand: Demand,
        unseen: UnseenSales,
        propagation: Propagation,
        cancelled: Counter[Key],
        metrics: Metrics,
        clock: Callable[[], datetime],
        supervisor: Supervisor,
        push: Callable[[set[str]], Awaitable[object]],
    ) -> None:
        self.config = config
        self.store = store
        self.channels = channels
        self.health = health
        self.demand = demand
        self.unseen = unseen
        self.propagation = propagation
        self.cancelled = cancelled
        self.metrics = metrics
        self.clock = clock
        self.supervisor = supervisor
        self.push = push  # plans and pushes touched SKUs (the engine's fast path)
        # Fast path: SKUs waiting for the debounce, and webhook events whose lines must be fetched.
        self._touched: set[str] = set()
        self._to_fetch: defaultdict[str, list[tuple[WebhookEvent, str | None]]] = defaultdict(list)
        self._fetched_at: dict[str, float] = {}
        # Failed fetches of webhook events: the tries so far per (channel, event).
        self._fetch_tries: dict[tuple[str, str], int] = {}
        self._fast_task: asyncio.Task[None] | None = None
        # (channel, order id) of quarantined orders not resolved yet: a clean version resolves them.
        self._quarantined: set[tuple[str, str]] | None = None

    # ------------------------------------------------------------------ order polls
    async def pull_orders(
        self,
        report: CycleReport,
        names: Mapping[str, datetime | None] | None = None,
        *,
        urgent: bool = False,
        on_channel: Callable[[str, IngestResult], None] | None = None,
    ) -> IngestResult:
        """Read the channels' recent orders into the ledger (no pushes): every channel's from its
        cursor, or those in ``names`` from the time given (None: the cursor). A poll from a time of
        its own leaves the cursor alone (orders before that time may not have been read yet).
        ``urgent`` polls go first at the channels' rate limits.

        Each channel's page is recorded as soon as it arrives, with its cursor and its quarantined
        orders in one transaction, so a slow or hung channel never holds up the others' orders;
        ``on_channel`` is told each channel's result then (the start-up poll pushes from it)."""
        chosen = self.channels if names is None else {n: self.channels[n] for n in names}
        results = await asyncio.gather(
            *(self._pull_one(n, c, report, names, urgent, on_channel) for n, c in chosen.items())
        )
        return IngestResult(
            new=[line for r in results for line in r.new],
            released=[line for r in results for line in r.released],
            to_compensate=[line for r in results for line in r.to_compensate],
            duplicates=sum(r.duplicates for r in results),
            quarantined=[item for r in results for item in r.quarantined],
        )

    async def _pull_one(
        self,
        name: str,
        channel: ChannelConnector,
        report: CycleReport,
        names: Mapping[str, datetime | None] | None,
        urgent: bool,
        on_channel: Callable[[str, IngestResult], None] | None,
    ) -> IngestResult:
        schedule = self.config.schedule
        cursor = self.store.get_cursor(f"orders:{name}")
        start = datetime.fromisoformat(cursor) if cursor else self.clock() - schedule.initial_lookback
        own = None if names is None else names.get(name)
        if own is not None and own <= start - schedule.order_overlap:
            own = None  # the cursor's poll reaches back further
        asked = self.clock()
        since = start - schedule.order_overlap if own is None else own
        page = await self.health.call(name, channel.orders_since(since, urgent=urgent), report)
        if page is None:
            return IngestResult()
        cursors: dict[str, str] = {}
        # A poll from a time of its own leaves the cursor alone. Saved with the lines and the
        # quarantined orders, in one transaction: a cursor past orders not recorded would skip them.
        if own is None and page.latest is not None and page.latest > start:
            cursors[f"orders:{name}"] = page.latest.isoformat()
        elif own is None and cursor is None:
            cursors[f"orders:{name}"] = start.isoformat()
        lines = self.skus.lines(page.lines)
        if lines or cursors or page.quarantined:
            result = self.store.ingest_polled(lines, cursors, self.clock(), page.quarantined)
        else:
            result = IngestResult()
        self.ingested(result, report)
        self.unseen.polled(name, asked, own)
        if self.allocations is not None:
            self.allocations.polled(name, asked, since)
        if self.shortfalls is not None:
            self._report_drift(functools.partial(self.shortfalls.polled, name, asked, own))
        if on_channel is not None:
            on_channel(name, result)
        return result

    @staticmethod
    def _report_drift(step: Callable[[], None]) -> None:
        """Drift reporting rides along with intake and must never hold it up: a failure there is
        logged, and the sales go on to be counted and propagated."""
        try:
            step()
        except Exception as exc:
            log.error("drift.report_failed", error=f"{type(exc).__name__}: {exc}")

    def ingest(self, lines: Sequence[OrderLine], report: CycleReport | None = None) -> IngestResult:
        """Record order lines in the ledger, idempotently; count what was new."""
        lines = self.skus.lines(lines)
        result = self.store.ingest_lines(lines, self.clock()) if lines else IngestResult()
        self.ingested(result, report)
        return result

    def ingested(self, result: IngestResult, report: CycleReport | None = None) -> None:
        """What follows lines recorded in the ledger: their sales are timed and counted."""
        now = self.clock()
        if self.shortfalls is not None:
            self._report_drift(functools.partial(self.shortfalls.sold, result.new))
        for line in result.new:
            self.propagation.ingested(line.sku, now)
            sold = listing_sold(line)  # a kit's sale explains what reads of the kit listing missed
            if sold is not None:
                self.unseen.reported(line.channel, sold[0], sold[1], line.updated_at)
            self.metrics.orders.labels(line.channel).inc()
            log.info(
                "order.ingested",
                channel=line.channel,
                order=line.order_id,
                sku=line.sku,
                quantity=line.quantity,
            )
        self.demand.record(result.new, now)
        self.history.orders(result, now)
        self._quarantine_changed(result)
        for line in [*result.released, *result.to_compensate]:
            self.propagation.ingested(line.sku, now)
            if (sold := listing_sold(line)) is not None:
                self.cancelled[(line.channel, sold[0])] += sold[1]
            log.info("order.cancelled", channel=line.channel, order=line.order_id, sku=line.sku)
        if report is not None:
            if result.quarantined:
                report.counts["orders_quarantined"] += len(result.quarantined)
            report.counts["order_lines_new"] += len(result.new)
            report.counts["order_lines_cancelled"] += len(result.released) + len(result.to_compensate)
            report.counts["order_lines_duplicate"] += result.duplicates

    def _quarantine_changed(self, result: IngestResult) -> None:
        """Quarantined orders just recorded are logged and counted; an open one is resolved once a
        clean version of the same order is taken in (its alert then clears)."""
        if self._quarantined is None:
            self._quarantined = self.store.open_quarantine_refs("order")
        for item in result.quarantined:
            self._log_quarantined(item)
            if item.ref is not None:
                self._quarantined.add((item.connector, item.ref))
        if not self._quarantined:
            return
        taken = [*result.new, *result.released, *result.to_compensate]
        clean = {(line.channel, line.order_id) for line in taken}
        fixed = clean & self._quarantined
        if fixed:
            self.store.resolve_quarantined("order", fixed, self.clock())
            self._quarantined -= fixed
            for channel, order in sorted(fixed):
                log.info("order.quarantine_resolved", channel=channel, order=order)

    @staticmethod
    def _log_quarantined(item: Quarantined) -> None:
        log.warning("order.quarantine_recorded", channel=item.connector, order=item.ref, reason=item.reason)

    # ------------------------------------------------------------------ webhooks
    async def receive(self, channel: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Take one webhook delivery: verify and parse it, and record its lines before answering
        (so a 200 means the sale is in the ledger; the pushes it causes follow the answer). The
        delivery is marked seen in the same transaction as its lines: when the ledger fails,
        neither is written and the platform's redelivery is taken, not dropped as a duplicate."""
        connector = self.channels.get(channel)
        if connector is None:
            return Receipt(Outcome.UNKNOWN_CHANNEL, f"no channel named {channel!r}")
        try:
            event = connector.parse_webhook(headers, body)
        except SignatureError as exc:
            log.warning("webhook.refused", channel=channel, reason=str(exc))
            return Receipt(Outcome.BAD_SIGNATURE, "invalid signature")
        except PayloadError as exc:
            log.warning("webhook.malformed", channel=channel, reason=str(exc), delivery=delivery_id(headers))
            return Receipt(Outcome.MALFORMED, f"malformed payload: {exc}")
        if event.ping:
            return Receipt(Outcome.PING)
        dedupe = f"{channel}:{event.dedupe_key}" if event.dedupe_key else None
        if not connector.webhooks_carry_lines:
            # The lines must be fetched: done after answering, and only then is the delivery
            # remembered, so a redelivery after a failed fetch is not thrown away.
            self.fetch_later(channel, event, dedupe)
            return Receipt(Outcome.ACCEPTED)
        try:
            result = self.store.ingest_delivery(
                self.skus.lines(event.lines),
                [dedupe] if dedupe else [],
                self.clock(),
                WEBHOOK_DEDUPE_TTL,
                event.quarantined,
            )
        except StoreError as exc:
            log.error("webhook.store_failed", channel=channel, error=str(exc), delivery=delivery_id(headers))
            return Receipt(Outcome.LEDGER_FAILED, "the ledger could not record the delivery; send it again later")
        if result is None:
            return Receipt(Outcome.DUPLICATE)
        self.ingested(result)
        if result.touched_skus:
            self.touch(result.touched_skus)
        return Receipt(
            Outcome.RECORDED, lines=len(event.lines), new=len(result.new), quarantined=len(event.quarantined)
        )

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
            events = [e for e, _ in fresh]
            lines = await self.health.call(channel, connector.event_lines(events, urgent=True), report)
            if lines is None:
                self._fetch_again(channel, connector, fresh, report.errors)
                continue
            # The deliveries are remembered in the transaction that records their lines.
            keys = [dedupe for _, dedupe in fresh if dedupe]
            try:
                result = self.store.ingest_delivery(self.skus.lines(lines), keys, self.clock(), WEBHOOK_DEDUPE_TTL)
            except StoreError as exc:
                self._fetch_again(channel, connector, fresh, [f"ledger: {exc}"])
                continue
            for event, _ in fresh:
                self._fetch_tries.pop((channel, _event_key(event)), None)
            if result is not None:
                self.ingested(result)
                touched |= result.touched_skus
        return touched

    def _fetch_again(
        self,
        channel: str,
        connector: ChannelConnector,
        items: list[tuple[WebhookEvent, str | None]],
        errors: Sequence[str],
    ) -> None:
        """Queue events whose fetch (or recording) failed again after the connector's next wait;
        once its waits are spent they are given up to the order poll, which reads every order
        changed since its cursor (the deliveries were not marked seen, so a redelivery counts)."""
        keys = [(channel, _event_key(event)) for event, _ in items]
        tries = 1 + max(self._fetch_tries.get(key, 0) for key in keys)
        waits = connector.event_fetch_retry_waits
        if tries > len(waits):
            for key in keys:
                self._fetch_tries.pop(key, None)
            log.error(
                "webhook.fetch_given_up",
                channel=channel,
                events=len(items),
                tries=tries,
                errors=list(errors),
                then="the order poll reads these orders",
            )
            return
        for key in keys:
            self._fetch_tries[key] = tries
        wait = waits[tries - 1]
        log.warning(
            "webhook.fetch_failed", channel=channel, events=len(items), tries=tries, retry_in=wait, errors=list(errors)
        )
        # A timer, not a task: a retry waiting must not hold up a drain at shutdown (the order
        # poll at the next start reads what it would have fetched).
        asyncio.get_running_loop().call_later(wait, self._requeue, channel, items)

    def _requeue(self, channel: str, items: list[tuple[WebhookEvent, str | None]]) -> None:
        self._to_fetch[channel].extend(items)
        self.touch(())

    # ------------------------------------------------------------------ fast path
    def touch(self, skus: Iterable[str]) -> None:
        """Queue SKUs for the fast path; they are planned and pushed together after the debounce,
        so a burst of sales costs one batch per channel instead of one call per sale."""
        self._touched.update(skus)
        if self._fast_task is None or self._fast_task.done():
            self._fast_task = self.supervisor.start("fast-path", self._fast_path)

    def running(self) -> list[asyncio.Task[None]]:
        return [t for t in (self._fast_task,) if t is not None and not t.done()]

    async def _fast_path(self) -> None:
        debounce = self.config.schedule.push_debounce.total_seconds()
        await asyncio.sleep(debounce)
        while self._touched or any(self._to_fetch.values()):
            started = asyncio.get_running_loop().time()
            try:
                self._touched |= await self._fetch_queued()
                batch, self._touched = self._touched, set()
                if batch:
                    await self.push(batch)
            except StoreError as exc:
                log.error("fast_path.store_failed", error=str(exc))
            # While a burst goes on, one round per debounce at most: what arrives meanwhile is
            # fetched and planned together, so webhook fetches do not eat the channel's rate limit.
            if self._touched or any(self._to_fetch.values()):
                await asyncio.sleep(max(0.0, debounce - (asyncio.get_running_loop().time() - started)))


def _event_key(event: WebhookEvent) -> str:
    return event.topic or event.dedupe_key or ""
