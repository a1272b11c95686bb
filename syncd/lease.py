"""Which replica is the shop's syncer: the one holding its lease, a ledger row with an expiry that
the holder renews (a heartbeat). Only the syncer reconciles, polls and sends pushes; every replica
takes webhooks. On SQLite one daemon owns the ledger (the start-up lock), so it is always the syncer.

The holder counts its lease from the moment it *asked* for the renewal, by its own monotonic clock,
and treats it as lost after half a period without a renewal: it stops before the row can expire
(a standby takes an expired row by the database's clock), so two replicas never act at once. A
standby asks every third of a period, so a dead syncer is replaced within one and a third periods.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from syncd.errors import StoreError
from syncd.store import Store

log = structlog.get_logger("syncd.lease")

# Called with True when this replica becomes the syncer, with False when it stops being it.
OnChange = Callable[[bool], Awaitable[None]]


def new_holder() -> str:
    """A name for this process in the lease row: host and pid for the operator, and a random part
    so that a restarted process (same pid in a container) is a new holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The syncer lease of one shop on a shared (PostgreSQL) ledger."""

    shared = True

    def __init__(self, store: Store, name: str, period: timedelta, *, holder: str | None = None) -> None:
        self.store = store
        self.name = name
        self.period = period.total_seconds()
        self.holder = holder or new_holder()
        self._valid_until = 0.0  # monotonic time until which this replica may act as the syncer
        self._acting = False  # whether on_change(True) was the last call made
        self._tried = asyncio.Event()  # set once the first attempt has been answered

    @property
    def held(self) -> bool:
        """Whether this replica is the syncer right now."""
        return self._acting and time.monotonic() < self._valid_until

    async def run(self, on_change: OnChange) -> None:
        """Take and renew the lease until cancelled, calling ``on_change`` as the role changes."""
        interval = self.period / 3
        while True:
            asked = time.monotonic()
            got = await self._try(within=interval)
            if got:
                self._valid_until = asked + self.period / 2
            if got and not self._acting:
                self._acting = True
                log.info("lease.acquired", lease=self.name, holder=self.holder)
                await on_change(True)
            elif self._acting and time.monotonic() >= self._valid_until:
                self._acting = False
                log.warning("lease.lost", lease=self.name, holder=self.holder)
                await on_change(False)
            self._tried.set()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - asked)))

    async def first_try(self) -> None:
        """Wait until ``run`` has tried for the lease once (and called ``on_change`` if it got it)."""
        await self._tried.wait()

    async def _try(self, within: float) -> bool:
        """One attempt to take or renew; a ledger that fails or hangs is no renewal."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(
                    self.store.acquire_lease, self.name, self.holder, None, timedelta(seconds=self.period)
                ),
                within,
            )
        except (StoreError, TimeoutError) as exc:
            log.debug("lease.renewal_failed", lease=self.name, error=str(exc) or type(exc).__name__)
            return False

    def release(self) -> None:
        """Give the lease up (a clean stop), so a standby takes over at its next try."""
        was = self._acting
        self._acting = False
        self._valid_until = 0.0
        if was:
            try:
                self.store.release_lease(self.name, self.holder)
            except StoreError as exc:
                log.warning("lease.release_failed", lease=self.name, error=str(exc))
            else:
                log.info("lease.released", lease=self.name, holder=self.holder)


class LocalLease:
    """The lease on a ledger only one daemon uses (SQLite): always held."""

    shared = False
    held = True
    holder = "local"

    def __init__(self, name: str = "syncer") -> None:
        self.name = name

    async def run(self, on_change: OnChange) -> None:
        await on_change(True)

    async def first_try(self) -> None:
        pass

    def release(self) -> None:
        pass


def lease_for(store: Store, database_url: str, name: str, period: timedelta) -> Lease | LocalLease:
    """The lease a daemon on this ledger uses: a real one on PostgreSQL, none on SQLite."""
    if database_url.startswith("sqlite"):
        return LocalLease(name)
    return Lease(store, name, period)
