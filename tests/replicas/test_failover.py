"""Replicas end to end: daemons as real processes on one PostgreSQL ledger, the sandboxes on
loopback (``bench/harness.py``). Exactly one replica is the syncer; a sale taken by a standby is
pushed by the syncer; when the syncer dies or loses its database connections another takes over
within two lease periods, every order counted once and no push written twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.replicas.conftest import PG_URL

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import CHANNEL_NAMES, Daemon, Rig, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="SYNCD_TEST_DATABASE_URL is not set"),
]

LEASE_SECONDS = 3.0


class Replica:
    """One daemon of the rig, with its port and the name its database connections carry."""

    def __init__(self, rig: Rig, port: int, schedule: dict[str, str]) -> None:
        self.port = port
        self.daemon: Daemon = rig.daemon(schedule, port)
        self.app_name = f"syncd-test-{port}"
        config = yaml.safe_load(self.daemon.config.read_text())
        url = make_url(config["database_url"]).update_query_dict({"application_name": self.app_name})
        config["database_url"] = url.render_as_string(hide_password=False)
        config["replicas"] = {"lease_period": f"{LEASE_SECONDS:g}s"}
        self.daemon.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def pause(self) -> None:
        assert self.daemon.popen is not None
        os.killpg(self.daemon.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.daemon.popen is not None
        os.killpg(self.daemon.popen.pid, signal.SIGCONT)

    async def ready(self) -> dict[str, Any] | None:
        """The body of /ready, or None while the daemon does not answer."""
        if not self.daemon.alive():
            return None
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/ready")
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body | {"status": response.status_code}

    def pushes_sent(self) -> Counter[int]:
        """Push ids of every ``push.sent`` line of this daemon's log."""
        sent: Counter[int] = Counter()
        for line in self.daemon.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "push.sent" and event.get("push") is not None:
                    sent[int(event["push"])] += 1
        return sent


async def until(check: Callable[[], Awaitable[Any]], limit: float, what: str) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def syncers(replicas: list[Replica]) -> list[Replica]:
    bodies = await asyncio.gather(*(r.ready() for r in replicas))
    return [r for r, body in zip(replicas, bodies, strict=True) if body and body.get("syncer")]


def terminate_backends(replica: Replica) -> int:
    """End every database session of the replica, as a server restart would (the server stays up)."""
    engine = create_engine(
        make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": replica.app_name},
            ).all()
        return len(ended)
    finally:
        engine.dispose()


async def first_syncer(rig: Rig, schedule: dict[str, str]) -> Replica:
    """A replica started alone: it takes the lease and finishes its first reconcile."""
    replica = Replica(rig, free_port(), schedule)
    replica.daemon.start()
    await until(lambda: syncers([replica]), 60, "the first replica to take the lease")
    await rig.wait_reconciled(180, port=replica.port)
    return replica


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path, seed=12, database="postgresql")
    try:
        await rig.start()
        yield rig
    finally:
        await rig.close()


async def test_a_sale_taken_by_a_standby_is_pushed_by_the_syncer(rig: Rig) -> None:
    """With no order polls and no reconcile due, a sale whose webhook reaches a standby still
    reaches the other channels and the ERP: the standby hands its SKU to the syncer through the
    ledger, and only the syncer writes."""
    quiet = {"reconcile_interval": "1h", "order_poll_interval": "1h", "erp_poll_interval": "1h"}
    syncer = await first_syncer(rig, quiet | {"jitter": "0s"})
    standby = Replica(rig, rig.daemon_port, quiet)  # every sandbox's webhooks go to this one
    standby.daemon.start()
    body = await until(standby.ready, 60, "the standby to answer /ready")
    assert (body["status"], body["syncer"], body["lease"]) == (200, False, "standby")
    assert await syncers([syncer, standby]) == [syncer]

    sku = next(s for s in rig.stock if not s.startswith("HOT") and rig.stock[s] >= 20)
    buyer, *others = CHANNEL_NAMES

    async def shown() -> dict[str, int]:
        found = {}
        for name in others:
            rows = (await rig.clients[name].get("/_sandbox/listings")).json()
            found[name] = next(row["quantity"] for row in rows if row["sku"] == sku)
        return found

    before = await shown()
    bought = await rig.clients[buyer].post("/_sandbox/purchase", json={"sku": sku, "quantity": 1})
    assert bought.status_code == 201

    async def lowered() -> bool:
        return all(now < before[name] for name, now in (await shown()).items())

    await until(lowered, 60, f"the other channels to show less of {sku}")

    async def in_the_erp() -> bool:
        stock = (await rig.clients["erp"].get("/_sandbox/stock")).json()
        return any(row["sku"] == sku and row["on_hand"] == rig.stock[sku] - 1 for row in stock)

    await until(in_the_erp, 60, "the sale to be recorded in the ERP")

    async def logged() -> Counter[int]:
        # The channel applies a write before the daemon has read its answer and logged it.
        return syncer.pushes_sent()

    await until(logged, 30, "the syncer to log its pushes")
    assert not standby.pushes_sent(), "the standby wrote to a channel"


async def test_failover_with_three_replicas_loses_no_order_and_sends_no_push_twice(rig: Rig) -> None:
    """Three replicas; shoppers buy on every channel while the syncer's database sessions are
    terminated, the syncer is SIGKILLed, the next one's sessions terminated and then it is frozen
    past its lease: at no moment do two replicas say they are the syncer, another takes over
    within two lease periods of the kill, every order is counted once, every sale recorded once
    in the ERP, and no push is written twice."""
    schedule = {"reconcile_interval": "10m", "order_poll_interval": "5s", "erp_poll_interval": "10s"}
    schedule["jitter"] = "0s"
    first = await first_syncer(rig, schedule)
    webhooks = Replica(rig, rig.daemon_port, schedule)  # takes every webhook; never killed here
    third = Replica(rig, free_port(), schedule)
    replicas = [first, webhooks, third]
    for replica in (webhooks, third):
        replica.daemon.start()
        body = await until(replica.ready, 60, f"replica {replica.port} to answer /ready")
        assert (body["status"], body["syncer"]) == (200, False)
    assert await syncers(replicas) == [first]

    most_at_once = 0
    watching = True

    async def watch() -> None:
        nonlocal most_at_once
        while watching:
            most_at_once = max(most_at_once, len(await syncers(replicas)))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    shoppers = asyncio.create_task(rig.shop(random.Random(12), time.monotonic() + 36, 4.0))
    try:
        await asyncio.sleep(6)
        assert terminate_backends(first) > 0
        await asyncio.sleep(4)
        # Most likely still the first; if the webhook replica took over, its webhooks are lost
        # with it and the order polls of the next syncer bring those sales in.
        (active,) = await until(lambda: syncers(replicas), 4 * LEASE_SECONDS, "a syncer")
        killed = time.monotonic()
        active.daemon.kill()
        (successor,) = await until(
            lambda: syncers([r for r in replicas if r is not active]), 4 * LEASE_SECONDS, "a new syncer"
        )
        took = time.monotonic() - killed
        assert took <= 2 * LEASE_SECONDS, f"the takeover took {took:.1f} s"
        await asyncio.sleep(3)
        assert terminate_backends(successor) > 0
        await asyncio.sleep(3)
        # The syncer frozen past its lease (a paused VM, a stopped process): a standby takes
        # over, and the frozen one wakes up knowing it is no longer the syncer.
        left = [r for r in replicas if r not in (active, successor)]
        successor.pause()
        try:
            # Not bound to two periods: should it freeze inside a transaction, its row locks stay
            # until the server ends the idle session (PG_IDLE_IN_TRANSACTION, 30 s).
            await until(lambda: syncers(left), 45, "a syncer while the last one is frozen")
        finally:
            successor.resume()
        body = await until(successor.ready, 30, "the frozen replica to answer again")
        assert body["syncer"] is False
    finally:
        await shoppers

    async def settled() -> bool:
        return await rig.settled(drift=False)

    try:
        await until(settled, 150, "every order counted once and recorded in the ERP")
    finally:
        watching = False
        await watcher
    result = rig.score(await rig.observe())
    assert result["placed"] > 0
    assert (result["lost"], result["counted_twice"]) == (0, 0), result
    assert result["counted_once"] == result["placed"], result
    assert result["erp_movements_twice"] == 0, result
    assert most_at_once == 1
    sent = sum((r.pushes_sent() for r in replicas), Counter())
    assert sent, "no push was sent"
    assert {push: n for push, n in sent.items() if n > 1} == {}
