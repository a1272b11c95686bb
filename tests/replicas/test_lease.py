"""The syncer lease between replicas of one ledger (syncd/lease.py), with real stores."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.lease import Lease, LocalLease, lease_for
from syncd.store import Store

# Long enough that a loaded machine does not delay a renewal past it.
PERIOD = timedelta(seconds=2)


class Replica:
    """A lease running in the background, with the role changes it reported."""

    def __init__(self, store: Store, holder: str) -> None:
        self.lease = Lease(store, "syncer", PERIOD, holder=holder)
        self.changes: list[bool] = []
        self.task: asyncio.Task[None] | None = None
        self._changed_cond = asyncio.Condition()

    async def _changed(self, syncer: bool) -> None:
        async with self._changed_cond:
            self.changes.append(syncer)
            self._changed_cond.notify_all()

    async def reaches(self, *changes: bool) -> None:
        """Wait (10 s at most) until the role changes reported are exactly ``changes``."""
        async with asyncio.timeout(10), self._changed_cond:
            await self._changed_cond.wait_for(lambda: self.changes == list(changes))

    def start(self) -> None:
        self.task = asyncio.create_task(self.lease.run(self._changed))

    async def kill(self) -> None:
        """Stop renewing without giving the lease up, as a SIGKILL would."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.migrate()
    yield store
    store.close()


async def test_one_of_two_replicas_is_the_syncer_and_the_other_takes_over_when_it_dies(store: Store) -> None:
    """Two replicas: one becomes the syncer, the other stays a standby while it renews; killed
    (no release), the standby takes over after the row expires, never while the first acts."""
    first, second = Replica(store, "a"), Replica(store, "b")
    first.start()
    await first.reaches(True)
    second.start()
    await second.lease.first_try()
    assert (first.changes, second.changes) == ([True], [])
    assert not second.lease.held
    await first.kill()
    await second.reaches(True)
    assert second.lease.held and not first.lease.held
    await second.kill()


async def test_a_released_lease_goes_to_the_standby_at_its_next_try(store: Store) -> None:
    """A clean stop gives the lease up: the standby need not wait for the row to expire."""
    first, second = Replica(store, "a"), Replica(store, "b")
    first.start()
    await first.reaches(True)
    second.start()
    await first.kill()
    first.lease.release()
    holder = store.lease_holder("syncer")
    assert holder is None
    await second.reaches(True)
    await second.kill()


async def test_a_syncer_that_cannot_renew_stops_acting(store: Store) -> None:
    """When the syncer's renewals are refused (its row was taken), it reports the loss and stops
    acting as the syncer; it becomes the syncer again once it can take the row."""
    first = Replica(store, "a")
    first.start()
    await first.reaches(True)
    store.release_lease("syncer", "a")
    assert store.acquire_lease("syncer", "intruder", None, timedelta(seconds=4)) is True
    await first.reaches(True, False)
    assert not first.lease.held
    store.release_lease("syncer", "intruder")
    await first.reaches(True, False, True)
    await first.kill()


async def test_sqlite_needs_no_lease(tmp_path: Path) -> None:
    """On SQLite the lease is the start-up lock's: always held; on PostgreSQL a real one."""
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        local = lease_for(store, "sqlite:///x.db", "syncer", PERIOD)
        assert isinstance(local, LocalLease) and local.held
        assert isinstance(lease_for(store, "postgresql+psycopg://h/db", "syncer", PERIOD), Lease)
    finally:
        store.close()
