"""The per-channel senders: each channel drains its outbox on its own, the most urgent pushes
first, a slice at a time (slices.py writes one), so a slow or throttled channel never holds back
the others."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime

import structlog

from connectors.base import ChannelConnector
from syncd.engine.demand import Demand
from syncd.engine.reports import CycleReport
from syncd.engine.slices import SliceWriter
from syncd.engine.supervisor import Supervisor
from syncd.errors import StoreError
from syncd.store import PushRow, Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")

# Seconds a routine push may wait while urgent ones keep coming; then slices alternate.
ROUTINE_MAX_WAIT = 1.0
# Slices of one channel's pushes in flight at once (each of other SKUs than the rest).
SEND_LANES = 2


def urgency(push: PushRow) -> tuple[int, int, float, int]:
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


# Replans the SKUs whose writes came back stale on the given channels (the engine's planner);
# returns the channels that got new pushes.
Replan = Callable[[CycleReport, set[str]], Awaitable[set[str]]]


class Sender:
    def __init__(
        self,
        store: Store,
        channels: Mapping[str, ChannelConnector],
        writer: SliceWriter,
        demand: Demand,
        unseen: UnseenSales,
        unavailable: Callable[[], frozenset[str]],
        clock: Callable[[], datetime],
        supervisor: Supervisor,
        *,
        holder: str = "local",
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """``holder`` names this replica in the claims it takes on pushes; ``active`` says whether
        it is the syncer now (a standby sends nothing)."""
        self.store = store
        self.channels = channels
        self.writer = writer
        self.demand = demand
        self.unseen = unseen
        self.unavailable = unavailable
        self.clock = clock
        self.supervisor = supervisor
        self.holder = holder
        self.active = active
        self.replan: Replan | None = None  # set by the engine
        # SKUs whose increase was granted less than planned, and a write of theirs answered since:
        # planned again (by the engine) at the end of a flush, so units a decrease freed are handed on.
        self.regranted: set[str] = set()
        self.replan_skus: Replan | None = None
        self.version = 0  # bumped whenever pushes are queued
        self.stale: defaultdict[str, set[str]] = defaultdict(set)  # channel -> SKUs to plan again
        self._flush_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._deferred: set[str] = set()  # channels holding increases back for others' decreases
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        writer.version = lambda: self.version
        writer.landed = self._wake_deferred
        writer.claim = self.claim
        writer.active = active

    def queued(self) -> None:
        """Pushes were queued: senders read the outbox again before their next slice."""
        self.version += 1

    def running(self) -> list[asyncio.Task[None]]:
        return [t for t in self._senders.values() if not t.done()]

    def claim(self, pushes: Sequence[PushRow]) -> list[PushRow]:
        """The pushes this replica may write: each claimed in the ledger just before its write, so
        that no push is ever written by two replicas (or twice across a crash, see
        ``Store.abandon_claims``). Those claimed elsewhere are left out."""
        if not pushes:
            return []
        got = self.store.claim_pushes([p.id for p in pushes], self.holder, self.clock())
        if len(got) < len(pushes):
            log.warning("push.claimed_elsewhere", pushes=len(pushes) - len(got))
        return [p for p in pushes if p.id in got]

    async def stop(self) -> None:
        """Stop every channel's sender now (this replica is no longer the syncer)."""
        tasks = self.running()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def flush(self, report: CycleReport) -> None:
        """Send every pending push, each channel on its own (one down never stops the others);
        writes that came back stale are planned and sent once more."""
        if not self.active():
            return
        await asyncio.gather(*(self.flush_channel(name, report) for name in self.channels))
        again = await self._replan(report, set(self.channels))
        await asyncio.gather(*(self.flush_channel(name, report) for name in again))
        # Increases held back for other channels' decreases, now landed (or failed: then they
        # stay pending for the senders).
        for _ in range(2):
            waiting, self._deferred = set(self._deferred), set()
            if not waiting:
                break
            await asyncio.gather(*(self.flush_channel(name, report) for name in waiting))
        for _ in range(2):
            skus, self.regranted = self.regranted, set()
            if not skus or self.replan_skus is None:
                break
            names = await self.replan_skus(report, skus)
            await asyncio.gather(*(self.flush_channel(name, report) for name in names))

    async def _replan(self, report: CycleReport, names: set[str]) -> set[str]:
        return set() if self.replan is None else await self.replan(report, names)

    def kick(self) -> None:
        """Have every channel's sender drain the outbox in the background, each at its own pace."""
        for name in self.channels:
            self._kick_one(name)

    def _kick_one(self, name: str) -> None:
        """Start the channel's sender, or have the running one go round once more."""
        if not self.active():
            return
        task = self._senders.get(name)
        if task is None or task.done():
            self._senders[name] = self.supervisor.start(f"sender:{name}", lambda: self._send_loop(name))
        else:
            self._dirty.add(name)

    async def _send_loop(self, name: str) -> None:
        while True:
            self._dirty.discard(name)
            report = CycleReport("send")
            try:
                await self.flush_channel(name, report)
                if await self._replan(report, {name}):
                    continue
            except StoreError as exc:
                log.error("sender.store_failed", channel=name, error=str(exc))
                return
            if name not in self._dirty:
                return

    async def flush_channel(self, name: str, report: CycleReport) -> None:
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
                    if seen_version != self.version:
                        # Something was queued since: read the outbox again and re-rank it.
                        seen_version = self.version
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
                        pending.sort(key=lambda p: (p.sku not in urgent, *urgency(p)))
                    else:
                        pending = [p for p in pending if p.id not in tried]
                    busy = set().union(*running.values())
                    ready = [p for p in pending if p.sku not in busy]
                    if ready and len(running) < SEND_LANES and self.active():
                        batch, after_urgent = self._next_slice(channel, ready, urgent, size, after_urgent)
                        tried.update(p.id for p in batch)
                        batch = self.claim(batch)
                        if not batch:
                            continue
                        # Urgent slices take the rate limiter's tokens ahead of routine calls.
                        task = asyncio.create_task(
                            self.writer.send(
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
                                self.stale[name].add(push.sku)
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
            and self.unseen.found_since(p.sku, p.created_at)
        }
        if doubtful:
            self.store.supersede_pushes(list(doubtful), self.clock())
            self.stale[name].update(doubtful.values())
            log.debug("push.doubtful_increase", channel=name, skus=sorted(set(doubtful.values())))
        return set(doubtful)

    def _blocked_increases(self, name: str, pushes: Sequence[PushRow], urgent: set[str]) -> set[int]:
        """Increases of low-stock SKUs that must wait: another reachable channel still has a
        decrease of the same SKU pending, so it may still sell units this increase would offer
        again. Across channels as within one, a unit disappears everywhere before it reappears."""
        increases = [p for p in pushes if p.sku in urgent and p.compare is not None and p.target > p.compare]
        if not increases:
            return set()
        down = self.unavailable()
        decreasing = {
            q.sku
            for q in self.store.pending_pushes(skus={p.sku for p in increases})
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
        latency = self.demand.latency()
        urgent: set[str] = set()
        for push in pushes:
            threshold = self.demand.threshold(push.sku, now, latency)
            if push.target == 0 or push.compare is None or min(push.target, push.compare) <= threshold:
                urgent.add(push.sku)
        return urgent
