"""Sold-out checks: low-stock SKUs whose free units were held back as likely sold are looked at
again once the estimate has had time to fall; listings a read finds at 0 while syncd believes
them above are confirmed by a second look; channels holding unexplained units are polled."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta

import structlog

from connectors.base import ChannelConnector, Listing
from syncd.engine.beliefs import UnseenReads, belief
from syncd.engine.demand import IN_FLIGHT_WINDOW
from syncd.engine.health import Health
from syncd.engine.mapping import ListingSkus
from syncd.engine.reports import CycleReport, Key
from syncd.engine.supervisor import Supervisor
from syncd.errors import StoreError
from syncd.store import IngestResult, ListingRow, Store
from syncd.unseen import COARSE, UnseenSales

log = structlog.get_logger("syncd.engine")

RECHECK_DELAY = IN_FLIGHT_WINDOW + timedelta(seconds=0.5)  # then units held back as in flight return
UNSEEN_POLL_GAP = timedelta(seconds=10)  # a channel's order poll for unexplained units, at most this often
# A read that finds units no report explains has its channel's orders polled this soon after (order
# times are whole seconds: a poll a second after the read finds every sale made before it), and
# such polls of one channel at most every SETTLE_POLL_GAP.
SETTLE_AFTER = timedelta(seconds=1.2)
SETTLE_POLL_GAP = timedelta(seconds=3)

# Intake.pull_orders: (report, {channel: since}, urgent=...) -> what it recorded.
PullOrders = Callable[..., Awaitable[IngestResult]]


class SoldOutChecks:
    skus: ListingSkus = ListingSkus()  # wired by the Engine: reads ask by the channel's codes

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, ChannelConnector],
        health: Health,
        unseen: UnseenSales,
        reads: UnseenReads,
        pull_orders: PullOrders,
        touch: Callable[[Iterable[str]], None],
        clock: Callable[[], datetime],
        supervisor: Supervisor,
        *,
        recheck_delay: timedelta = RECHECK_DELAY,
    ) -> None:
        self.store = store
        self.channels = channels
        self.health = health
        self.unseen = unseen
        self.reads = reads
        self.pull_orders = pull_orders
        self.touch = touch
        self.clock = clock
        self.supervisor = supervisor
        self.recheck_delay = recheck_delay
        self._withheld: set[str] = set()  # low-stock SKUs with free units held back as likely sold
        self._recheck: asyncio.Task[None] | None = None
        self._recheck_waiting = False  # a re-check is waiting for its delay
        self._zero_seen: dict[Key, datetime] = {}  # listing -> when first read at 0 while believed above
        self._unseen_polls: dict[str, asyncio.Task[None]] = {}
        self._unseen_polled_at: dict[str, datetime] = {}
        self._settle: dict[str, set[str]] = {}  # channel -> SKUs a read found short, to poll for
        self._settle_tasks: dict[str, asyncio.Task[None]] = {}

    def withhold(self, skus: Iterable[str]) -> None:
        self._withheld.update(skus)

    def running(self) -> list[asyncio.Task[None]]:
        tasks = [*self._unseen_polls.values(), *self._settle_tasks.values()]
        return [t for t in tasks if not t.done()]

    def settle_soon(self, name: str, skus: set[str]) -> None:
        """A read of ``name`` found units of ``skus`` sold that no report explains: poll the
        channel's orders a moment later, so that the units are explained (their orders found) or
        released (none will come) within seconds, not at the next scheduled poll. Until then they
        stay held, so a late poll only costs sales, never oversells."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._settle.setdefault(name, set()).update(skus)
        task = self._settle_tasks.get(name)
        if task is None or task.done():
            self._settle_tasks[name] = self.supervisor.start(
                f"settle-poll:{name}", functools.partial(self._settle_loop, name)
            )

    async def _settle_loop(self, name: str) -> None:
        while self._settle.get(name):
            now = self.clock()
            last = self._unseen_polled_at.get(name)
            wait = SETTLE_AFTER
            if last is not None:
                wait = max(wait, last + SETTLE_POLL_GAP - now)
            await asyncio.sleep(wait.total_seconds())
            skus = self._settle.pop(name, set())
            if name in self.health.unavailable():
                continue  # its circuit is open: the scheduled poll finds the orders later
            held, since = self._settle_since(name, skus)
            if not held:
                continue
            self._unseen_polled_at[name] = self.clock()
            await self._poll_unseen(name, since, skus)

    def _settle_since(self, name: str, skus: set[str]) -> tuple[bool, datetime | None]:
        """Whether units of ``skus`` are still held on ``name``, and where a poll settling them
        must start (a second before the oldest window, for whole-second order times; None: from
        the channel's cursor)."""
        starts: list[datetime | None] = []
        waiting = self.unseen.waiting(skus, self.clock() + SETTLE_AFTER)
        if name in waiting:
            starts.append(waiting[name])
        try:
            books = self.store.load_accounts(sorted(skus))
        except StoreError as exc:
            log.error("settle_poll.store_failed", channel=name, error=str(exc))
            return False, None
        for book in books.values():
            for part in book.parts:
                if part.channel == name:
                    starts.append(None if part.since is None else part.since - COARSE)
        if not starts:
            return False, None
        return True, (None if None in starts else min(t for t in starts if t is not None))

    def recheck_withheld(self) -> None:
        """Plan again, once the estimate has had time to fall, the SKUs whose free units were
        held back as likely sold: no sale may come to trigger it (the SKU sold out everywhere)."""
        if not self._withheld or self._recheck_waiting:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        skus, self._withheld = self._withheld, set()

        async def later() -> None:
            self._recheck_waiting = True
            try:
                await asyncio.sleep(self.recheck_delay.total_seconds())
            finally:
                self._recheck_waiting = False
            await self.verify(skus)

        self._recheck_waiting = True
        self._recheck = self.supervisor.start("verify-sold-out", later)

    async def verify(self, skus: set[str]) -> None:
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
            down = self.health.unavailable()
            rows = [
                r
                for r in self.store.listings(skus=sorted(skus))
                if r.channel in self.channels and r.channel not in down and (belief(r) or 0) > 0
            ]
            by_channel: defaultdict[str, list[ListingRow]] = defaultdict(list)
            for row in rows:
                by_channel[row.channel].append(row)
            for name, listed in by_channel.items():
                await self._look(name, listed, report)
        except StoreError as exc:
            log.error("verify.store_failed", error=str(exc))
        self.touch(touched)

    async def _look(self, name: str, listed: list[ListingRow], report: CycleReport) -> None:
        started = self.clock()
        reading = [Listing(r.sku, r.ref, None) for r in listed]
        read = self.skus.read_quantities(name, self.channels[name], reading, urgent=True)
        shown = await self.health.call(name, read, report)
        if not shown:
            return
        now_rows = {r.sku: r for r in self.store.listings(name, skus=[r.sku for r in listed])}
        sold_out: dict[str, int] = {}
        for sku, quantity in shown.items():
            now_row = now_rows.get(sku)
            if quantity != 0 or now_row is None or (belief(now_row) or 0) <= 0:
                self._zero_seen.pop((name, sku), None)
                continue
            if now_row.pushed_at is not None and now_row.pushed_at >= started:
                continue  # written since: the write is the newer word
            first = self._zero_seen.get((name, sku))
            if first is None or (now_row.pushed_at is not None and now_row.pushed_at >= first):
                # Seen at 0 for the first time: its last sales may not be reported yet (they would
                # be counted twice if it were set to 0 now), so look again once they have had
                # time to arrive.
                self._zero_seen[(name, sku)] = started
                self._withheld.add(sku)
            elif started - first >= self.recheck_delay:
                # Still believed to hold units: sales counted as made before a write. Taken as 0
                # from the first read (every sale before it is in that read).
                self.store.record_pushed(name, {sku: 0}, first)
                self._zero_seen.pop((name, sku), None)
                sold_out[sku] = 0
            else:
                self._withheld.add(sku)  # not long enough yet: look again later
        if sold_out:
            log.info("listing.seen_sold_out", channel=name, skus=sorted(sold_out))
        # A listing taken as 0 showed nothing new: the poll above settled its units.
        self.reads.measure(name, {s: q for s, q in shown.items() if s not in sold_out}, started)

    def _poll_for_unseen(self, skus: set[str]) -> None:
        """Units reads showed sold and no report explained may be sales whose webhook was lost:
        an order poll of their channel finds them (or shows they were counted already) before
        any of those units is offered again. The polls run on their own (a poll can wait long for
        Shopify's cost points), one per channel at a time and at most every UNSEEN_POLL_GAP (an
        order search costs Shopify a good part of its bucket)."""
        now = self.clock()
        down = self.health.unavailable()
        for name, since in self.unseen.waiting(skus, now).items():
            running = self._unseen_polls.get(name)
            last = self._unseen_polled_at.get(name)
            if name in down or (running is not None and not running.done()):
                continue
            if last is not None and now - last < UNSEEN_POLL_GAP:
                continue
            self._unseen_polled_at[name] = now
            self._unseen_polls[name] = self.supervisor.start(
                f"unseen-poll:{name}", functools.partial(self._poll_unseen, name, since, skus)
            )

    async def _poll_unseen(self, name: str, since: datetime | None, skus: set[str]) -> None:
        report = CycleReport("unseen-poll")
        try:
            result = await self.pull_orders(report, {name: since}, urgent=True)
        except StoreError as exc:
            log.error("unseen_poll.store_failed", channel=name, error=str(exc))
            return
        log.debug(
            "unseen.polled",
            channel=name,
            held={s: self.unseen.held(s) for s in sorted(skus)},
            errors=report.errors,
        )
        self.touch(result.touched_skus | skus)

    def cancel(self) -> None:
        """Stop the timer and the checks in flight (shutdown)."""
        if self._recheck is not None and not self._recheck.done():
            self._recheck.cancel()
        for task in [*self._unseen_polls.values(), *self._settle_tasks.values()]:
            if not task.done():
                task.cancel()
