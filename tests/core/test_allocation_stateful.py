"""The allocation accounts against a simulated world: sales on every channel, webhooks delayed,
duplicated or lost, reads, writes that land, go stale, time out or are overwritten by sales,
restocks, cancellations, and crashes with restarts from the ledger.

After every step, the units the channels can still sell never exceed what exists. The one
assumption, stated where it is made: a write without compare-and-set overwrites at most the
sales its race allowance held (syncd sizes that allowance so more is a 1% event, see
``syncd.core.race_allowance``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from connectors.base import OrderLine, OrderLineStatus
from syncd.accounts import Accounts, AccountStore, MemoryAccountStore, Sale
from syncd.allocation import LOST_GRACE, Mode, allocate, mode_of
from syncd.core import ChannelPolicy
from syncd.store import Store

CHANNELS = ("shop", "tiktok", "web")  # shop has compare-and-set, the others write absolutely
EXACT = frozenset({"shop"})
SKU = "SKU-1"
POLICIES = {c: ChannelPolicy(c) for c in CHANNELS}
START = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


@dataclass
class Order:
    id: int
    channel: str
    units: int
    at: datetime  # the instant of the sale
    cancelled: bool = False
    coarse: bool = False  # the channel stamps it on a whole second

    @property
    def stamp(self) -> datetime:
        return self.at.replace(microsecond=0) if self.coarse else self.at


@dataclass
class WireWrite:
    push_id: int
    channel: str
    quantity: int
    compare: int | None
    sent_at: datetime
    racing_left: int  # sales the write's allowance may still cover (absolute writes only)
    answered: bool = False  # a time-out: no answer will come, it may still land within the grace


@dataclass
class World:
    on_hand: int  # the ERP's true stock (restocks only)
    shown: dict[str, int]
    orders: list[Order] = field(default_factory=list)

    def sold(self) -> int:
        return sum(o.units for o in self.orders if not o.cancelled)


class AllocationWorld(RuleBasedStateMachine):
    """syncd's accounts and the channels they describe, stepped by Hypothesis."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.world = World(on_hand=0, shown=dict.fromkeys(CHANNELS, 0))
        self.tmp = tempfile.TemporaryDirectory()
        self.url = f"sqlite:///{Path(self.tmp.name) / 'ledger.db'}"
        self.store: Store | None = None
        self.accounts = self._open()
        self.erp_on_hand = 0  # what syncd last read from the ERP
        self.reported: dict[int, int] = {}  # order id -> units syncd counts as sold (0: cancelled)
        self.webhooks: list[int] = []  # order ids whose delivery is on its way
        self.wire: list[WireWrite] = []
        self.next_push = 1
        self.next_order = 1
        self.threshold = 1000  # split mode: the last units are always split
        self.planned: dict[str, int] = {}  # the outbox: a target per channel, planned earlier

    durable = True  # the ledger on SQLite, reopened after each crash; False: in memory (faster)

    # -- plumbing ---------------------------------------------------------------------------
    def _open(self) -> Accounts:
        store: AccountStore
        if not self.durable:
            self.memory = getattr(self, "memory", None) or MemoryAccountStore()
            return Accounts(self.memory)
        if self.store is not None:
            self.store.close()
        self.store = Store(self.url)
        self.store.migrate()
        store = self.store
        return Accounts(store)

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
        self.tmp.cleanup()

    def tick(self, seconds: float = 0.05) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def ats(self) -> int:
        return max(0, self.erp_on_hand - sum(self.reported.values()))

    def ingest(self, order: Order) -> None:
        """syncd learns the order's current state (idempotently, as the ledger's unique key does)."""
        counted = self.reported.get(order.id)
        units = 0 if order.cancelled else order.units
        if self.store is not None:
            # On the ledger the order intake moves the accounts with the lines, in one transaction.
            status: OrderLineStatus = "cancelled" if order.cancelled else "open"
            line = OrderLine(order.channel, str(order.id), "1", SKU, order.units, status, order.stamp)
            self.store.ingest_lines([line], self.now)
            self.reported[order.id] = units if counted is None or counted else 0
            return
        if counted is None:
            sale = Sale(order.channel, SKU, order.units, order.stamp)
            # First seen cancelled: the sale and the channel's restock both happened.
            undo = [] if units else [Sale(order.channel, SKU, -order.units, order.stamp)]
            self.accounts.sales([sale, *undo])
            self.reported[order.id] = units
        elif counted and not units:
            self.accounts.sales([Sale(order.channel, SKU, -counted, order.stamp)])
            self.reported[order.id] = 0

    # -- the world ----------------------------------------------------------------------------
    @rule(units=st.integers(1, 6))
    def restock(self, units: int) -> None:
        """The seller receives stock in the ERP."""
        self.world.on_hand += units

    @rule()
    def read_erp(self) -> None:
        """syncd reads the ERP's on-hand."""
        self.erp_on_hand = self.world.on_hand

    @rule(channel=st.sampled_from(CHANNELS), coarse=st.booleans(), webhook=st.booleans())
    def buy(self, channel: str, coarse: bool, webhook: bool) -> None:
        """A shopper buys one unit where the channel shows one (its webhook may never come)."""
        if self.world.shown[channel] <= 0:
            return
        racing = [w for w in self.wire if w.channel == channel and w.compare is None]
        if any(w.racing_left <= 0 for w in racing):
            return  # the stated assumption: no more racing sales than the allowance held
        for w in racing:
            w.racing_left -= 1
        self.world.shown[channel] -= 1
        order = Order(self.next_order, channel, 1, self.tick(0.3), coarse=coarse)
        self.next_order += 1
        self.world.orders.append(order)
        if webhook:
            self.webhooks.append(order.id)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """A shopper cancels an order; the channel puts the unit back on sale."""
        open_ = [o for o in self.world.orders if not o.cancelled]
        if not open_:
            return
        order = data.draw(st.sampled_from(open_))
        order.cancelled = True
        self.world.shown[order.channel] += order.units
        self.webhooks.append(order.id)

    @rule(data=st.data(), duplicate=st.booleans())
    def deliver(self, data: st.DataObject, duplicate: bool) -> None:
        """A webhook arrives (any one of those on their way, so out of order; maybe again later)."""
        if not self.webhooks:
            return
        index = data.draw(st.integers(0, len(self.webhooks) - 1))
        order_id = self.webhooks[index] if duplicate else self.webhooks.pop(index)
        self.ingest(next(o for o in self.world.orders if o.id == order_id))

    @rule(data=st.data())
    def lose_webhook(self, data: st.DataObject) -> None:
        """A webhook is lost for good (only a poll finds the order)."""
        if self.webhooks:
            self.webhooks.pop(data.draw(st.integers(0, len(self.webhooks) - 1)))

    @rule(channel=st.sampled_from(CHANNELS))
    def poll(self, channel: str) -> None:
        """An order poll of one channel finds every order made before it started."""
        started = self.tick()
        for order in [o for o in self.world.orders if o.channel == channel and o.at < started]:
            self.ingest(order)
        self.accounts.polled(channel, started, START - timedelta(days=1))

    # -- syncd's side -------------------------------------------------------------------------
    @rule(channel=st.sampled_from(CHANNELS))
    def read(self, channel: str) -> None:
        """syncd reads a listing (the value is taken at the read's start, the answer comes later)."""
        started = self.tick()
        shown = self.world.shown[channel]
        self.accounts.read(channel, {SKU: shown}, started, self.tick())

    @initialize(units=st.integers(1, 8))
    def stock_and_listings(self, units: int) -> None:
        """The seller has a few units; syncd has read the ERP and every listing (all at 0)."""
        self.world.on_hand = units
        self.read_erp()
        for channel in CHANNELS:
            self.read(channel)

    @rule(channel=st.sampled_from(CHANNELS))
    def plan(self, channel: str) -> None:
        """The planner asks the allocator for the channel's target and queues it (sent later)."""
        book = self.accounts.get(SKU).book(self.ats(), self.threshold)
        self.planned[channel] = allocate(book, POLICIES, exact=EXACT).targets.get(channel, 0)

    @precondition(lambda self: bool(self.planned))
    @rule(data=st.data(), allowance=st.integers(0, 2))
    def send(self, data: st.DataObject, allowance: int) -> None:
        """The sender reads a listing with a queued target and writes what the allocator grants
        now (with compare-and-set on ``shop``; holding a race allowance on the others)."""
        self._send(data.draw(st.sampled_from(sorted(self.planned))), allowance)

    @rule(allowance=st.integers(0, 1))
    def sync(self, allowance: int) -> None:
        """A whole fast-path round: every channel planned, sent and acknowledged at once."""
        for channel in CHANNELS:
            self.plan(channel)
        for channel in CHANNELS:
            write = self._send(channel, allowance)
            if write is not None:
                self._answer(write, "ok")

    def _send(self, channel: str, allowance: int) -> WireWrite | None:
        if any(w.channel == channel for w in self.wire) or channel not in self.planned:
            return None  # one write of a listing at a time, as the sender does
        target = self.planned.pop(channel)
        read_at = self.tick()
        shown = self.world.shown[channel]
        self.accounts.read(channel, {SKU: shown}, read_at, self.tick())
        exact = channel in EXACT
        sent_at = self.tick()
        decided = self.accounts.send(
            channel,
            SKU,
            self.next_push,
            target=target,
            compare=shown if exact else None,
            sent_at=sent_at,
            ats=self.ats(),
            threshold=self.threshold,
            racing=0 if exact else allowance,
            racing_since=read_at,
        )
        write = WireWrite(
            self.next_push, channel, decided.quantity, shown if exact else None, sent_at, decided.hold
        )
        self.wire.append(write)
        self.next_push += 1
        return write

    def _land(self, write: WireWrite) -> bool:
        """The channel applies the write; False when its compare value was stale."""
        if write.compare is not None and self.world.shown[write.channel] != write.compare:
            return False
        self.world.shown[write.channel] = write.quantity
        return True

    @precondition(lambda self: bool(self.wire))
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "timeout-applied", "timeout-not-applied"]))
    def answer(self, data: st.DataObject, outcome: str) -> None:
        """A write lands and is acknowledged, or comes back stale, or times out (applied or not)."""
        self._answer(data.draw(st.sampled_from(self.wire)), outcome)

    def _answer(self, write: WireWrite, outcome: str) -> None:
        self.tick()
        if write.answered:
            # Timed out earlier: it may still land, unannounced, or never.
            if outcome == "timeout-applied" and write.sent_at + LOST_GRACE > self.now:
                self._land(write)
            self.wire.remove(write)
            return
        if outcome == "ok":
            self.wire.remove(write)
            if self._land(write):
                self.accounts.acknowledged(write.channel, SKU, write.push_id, self.now, write.quantity)
            else:
                self.accounts.undone(write.channel, SKU, write.push_id)
        elif outcome == "timeout-applied":
            self.wire.remove(write)
            self._land(write)
            self.accounts.lost(write.channel, SKU, write.push_id, write.sent_at)
        else:
            write.answered = True
            self.accounts.lost(write.channel, SKU, write.push_id, write.sent_at)

    @rule(seconds=st.sampled_from([1, 30, 90]))
    def wait(self, seconds: int) -> None:
        """Time passes; a write that timed out longer ago than the grace will never land."""
        self.tick(seconds)
        self.wire = [w for w in self.wire if not (w.answered and w.sent_at + LOST_GRACE <= self.now)]

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """The daemon is killed: writes on the wire land or not, no answer ever reaches it; it
        restarts from the ledger."""
        for write in list(self.wire):
            if data.draw(st.booleans()):
                self._land(write)
            self.wire.remove(write)
        self.planned.clear()  # the outbox is planned again after a restart
        self.accounts = self._open()
        self.accounts.restarted()

    # -- what must hold -----------------------------------------------------------------------
    @invariant()
    def no_unit_sellable_twice(self) -> None:
        """The channels between them never offer more units than exist."""
        exists = self.world.on_hand - self.world.sold()
        offered = sum(self.world.shown.values())
        assert offered <= max(0, exists), (
            f"channels offer {offered} ({self.world.shown}) but only {exists} exist"
        )

    @invariant()
    def split_mode(self) -> None:
        """With the threshold above every stock level the SKU is always split."""
        book = self.accounts.get(SKU).book(self.ats(), self.threshold)
        assert mode_of(book) is Mode.SPLIT


class MemoryAllocationWorld(AllocationWorld):
    """The same world with the accounts in memory: many more interleavings per second."""

    durable = False


AllocationWorld.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
MemoryAllocationWorld.TestCase.settings = settings(
    max_examples=400, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestAllocationOnTheLedger = AllocationWorld.TestCase
TestAllocationInMemory = MemoryAllocationWorld.TestCase


def test_memory_store_is_an_account_store() -> None:
    """The in-memory account store holds what it is given."""
    accounts = Accounts(MemoryAccountStore())
    accounts.read("shop", {SKU: 3}, START, START)
    assert accounts.get(SKU).listing("shop").exposure == 3
