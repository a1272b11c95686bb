"""Background tasks are watched: one that dies is logged with its error and started again, and
one that keeps dying is given up with a reason that stops the daemon; none disappears silently."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.daemon import Daemon
from syncd.engine.supervisor import Supervisor
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, make_config, two_shop_config


class BreaksOnce(httpx.AsyncBaseTransport):
    """The road to a shop; the first quantity write fails with an error no connector expects
    (a bug, not a network fault), then writes go through."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.broke = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.broke and request.url.path.endswith("/products/batch"):
            self.broke = True
            raise RuntimeError("unexpected state in the shop client")
        return await self.inner.handle_async_request(request)


async def test_a_sender_that_dies_is_restarted_and_its_push_lands(tmp_path: Path) -> None:
    """`main` sells 3 of 10; the background sender's write to `outlet` dies with an unexpected
    error. It is logged once with that error, the sender is started again, and `outlet` ends
    at 7."""
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shops = {n: woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET) for n in ("main", "outlet")}
    road = BreaksOnce(httpx.ASGITransport(app=shops["outlet"]))
    transports = {
        "erp": httpx.ASGITransport(app=erp),
        "main": httpx.ASGITransport(app=shops["main"]),
        "outlet": road,
    }
    daemon = Daemon(two_shop_config(tmp_path, {"safety_stock": 0, "low_stock_threshold": 0}), transports=transports)
    hooks = {
        n: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=f"http://{n}.test")
        for n, a in {"erp": erp, **shops}.items()
    }
    try:
        items = [{"sku": "A", "quantity": 10}]
        for client in hooks.values():
            (await client.post("/_sandbox/seed", json={"items": items})).raise_for_status()
        await daemon.engine.reconcile()
        road.broke = False  # the reconcile wrote nothing: the next write is the sender's
        assert (
            await hooks["main"].post("/_sandbox/purchase", json={"sku": "A", "quantity": 3})
        ).status_code == 201
        with capture_logs() as logs:
            await daemon.engine.poll_orders(wait=False)  # as scheduled: the senders push
            await daemon.engine.drain_fast_path()
        shown = {r["sku"]: r["quantity"] for r in (await hooks["outlet"].get("/_sandbox/listings")).json()}
        assert shown == {"A": 7}
        crashes = [e for e in logs if e["event"] == "task.crashed"]
        assert [(e["task"], e["error"]) for e in crashes] == [
            ("sender:outlet", "unexpected state in the shop client")
        ]
        assert [e["task"] for e in logs if e["event"] == "task.restarted"] == ["sender:outlet"]
        assert daemon.supervisor.fatal is None
        assert daemon.store.pending_pushes() == []
    finally:
        for client in hooks.values():
            await client.aclose()
        await daemon.engine.aclose()
        daemon.store.close()


@pytest.mark.parametrize(("restart", "runs", "times"), [(True, 3, "3 times in a row"), (False, 1, "once")])
async def test_a_task_that_keeps_dying_is_given_up_and_stops_the_daemon(
    restart: bool, runs: int, times: str
) -> None:
    """A task that fails every time is started again until its third failure in a row (at once,
    if it may not be restarted); then it is given up and the daemon is told why, once."""
    reasons: list[str] = []
    supervisor = Supervisor(backoff=0, give_up_after=3, on_fatal=reasons.append)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("the ledger row is not what it should be")

    with capture_logs() as logs:
        await supervisor.start("replan", broken, restart=restart)
    assert calls == runs
    assert reasons == [
        f"background task 'replan' failed {times} (ValueError: the ledger row is not what it should be); the daemon stops"
    ]
    assert supervisor.fatal == reasons[0]
    assert [e["failures"] for e in logs if e["event"] == "task.crashed"] == list(range(1, runs + 1))


async def test_a_task_that_recovers_is_not_given_up() -> None:
    """Two failures, then a run that ends normally: no reason to stop, and nothing left running."""
    supervisor = Supervisor(backoff=0, give_up_after=3)
    outcomes = iter([OSError("reset"), OSError("reset"), None])

    async def flaky() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    await supervisor.start("unseen-poll:main", flaky)
    assert supervisor.fatal is None
    assert supervisor.running() == []


async def test_a_task_given_up_stops_the_serving_daemon_with_its_reason(tmp_path: Path) -> None:
    """While the daemon serves, a watched task that may not run twice fails: the server stops
    and ``serve`` ends with a message naming the task and its error (the process exits non-zero)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    erp = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
    shop = woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET)
    config = make_config(tmp_path, server={"host": "127.0.0.1", "port": port})
    transports = {"erp": httpx.ASGITransport(app=erp), "webstore": httpx.ASGITransport(app=shop)}
    daemon = Daemon(config, transports=transports)

    async def lease_heartbeat() -> None:
        raise RuntimeError("lease row vanished")

    async def fail_once_serving() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):  # until it answers
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        daemon.supervisor.start("lease-heartbeat", lease_heartbeat, restart=False)

    helper = asyncio.create_task(fail_once_serving())
    with pytest.raises(SystemExit) as stopped:
        await daemon.serve()  # returns once the server has stopped and drained
    await helper
    assert "background task 'lease-heartbeat' failed once (RuntimeError: lease row vanished)" in str(
        stopped.value
    )
