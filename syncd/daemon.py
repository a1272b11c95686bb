"""The daemon: builds the store, connectors and engine from a config, schedules the cycles and
serves HTTP, all in one event loop; drains in-flight work on SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from connectors.registry import build_channel, build_erp
from syncd import __version__
from syncd.app import create_app
from syncd.config import Config, EventSettings
from syncd.engine import CycleReport, Engine, utcnow
from syncd.engine.supervisor import Factory, Supervisor
from syncd.errors import StoreError
from syncd.history import record_run
from syncd.lease import lease_for
from syncd.status.load import daemon_breakers
from syncd.store import Store

log = structlog.get_logger("syncd.daemon")

# Seconds between the syncer's looks at the SKUs standbys handed off (their webhook sales).
HANDOFF_POLL = 0.2


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner: uvicorn would re-raise SIGTERM after its
    shutdown and so end the process with a signal status instead of exit code 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self, sig: int | None = None) -> None:
        if sig is not None:
            log.info("daemon.signal", signal=signal.Signals(sig).name)
        self.should_exit = True


# Connectors that refresh OAuth tokens themselves and keep them in the ledger.
_TOKEN_KEEPERS = frozenset({"tiktok_shop", "bling", "tiny"})


def _check_tokens(store: Store, config: Config) -> None:
    """Open the saved tokens (a wrong SYNCD_SECRET_KEY stops the start here, by name) and seal
    plain ones; without a key, say once that refreshed tokens are kept in plain text."""
    sealed = store.check_tokens()
    if sealed:
        log.info("tokens.sealed", count=sealed)
    keepers = sorted(s.name for s in [config.erp, *config.channels] if s.type in _TOKEN_KEEPERS)
    if keepers and not store.seals_tokens:
        log.warning(
            "tokens.unencrypted",
            connectors=keepers,
            hint="SYNCD_SECRET_KEY is not set, so refreshed OAuth tokens are saved in the ledger in plain text",
        )


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Callable[[], datetime] = utcnow,
        drain_timeout: float = 8.0,
    ):
        self.config = config
        self.drain_timeout = drain_timeout
        self.store = Store(config.database_url)
        self.store.migrate()
        _check_tokens(self.store, config)
        replicas = config.replicas
        self.lease = lease_for(self.store, config.database_url, replicas.lease_name, replicas.lease_period)
        # A replica is a standby until it holds the lease: the sales it takes go to the syncer.
        self.store.standby = self.lease.shared
        self._lease_task: asyncio.Task[None] | None = None
        self._handoff_task: asyncio.Task[None] | None = None
        transports = transports or {}
        erp = build_erp(config.erp, transports.get(config.erp.name), tokens=self.store, records=self.store)
        channels = {
            c.name: build_channel(c, transports.get(c.name), tokens=self.store)
            for c in config.channels
            if c.enabled
        }
        # Every background task, the engine's and the daemon's, is started and watched here; one
        # given up stops the daemon.
        self.supervisor = Supervisor(on_fatal=self._stop_for)
        self._server: uvicorn.Server | None = None
        self.engine = Engine(
            config,
            self.store,
            erp,
            channels,
            clock=clock,
            supervisor=self.supervisor,
            # On SQLite the engine is the syncer from the start; on PostgreSQL once it holds the lease.
            syncer=(lambda: self.lease.held) if self.lease.shared else None,
            holder=self.lease.holder,
        )
        self.engine.metrics.watch_ledger(self.store.counts)
        self.engine.metrics.watch_connectors(lambda: daemon_breakers(self))
        self.started_at = clock()
        self.scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ replicas
    async def _role_changed(self, syncer: bool) -> None:
        """Become the syncer (schedule the cycles, send, take the standbys' hand-offs) or stop
        being it (nothing more is polled, planned or sent here; webhooks are still taken)."""
        self.store.standby = not syncer
        if syncer:
            self.engine.took_over()
            self.start_scheduler()
            if self.lease.shared:
                self._handoff_task = self.supervisor.start("handoff", self._take_handoffs)
            return
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None
        self._cancel_handoffs()
        cycles = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in cycles:
            task.cancel()
        await self.engine.stood_down()
        if cycles:
            await asyncio.wait(cycles, timeout=2)

    async def _take_handoffs(self) -> None:
        """The syncer plans the SKUs standbys took sales for, as its own fast path does (should
        the lease be lost meanwhile, the fast path hands them off again). A renewal so late that
        the lease lapsed for a moment stopped the senders: they are kicked once it is held again."""
        failing = False
        held = True
        while True:
            if not self.lease.held:
                held = False
                await asyncio.sleep(HANDOFF_POLL)
                continue
            if not held:
                held = True
                self.engine.kick()
            try:
                skus = await asyncio.to_thread(self.store.take_handoffs)
            except StoreError as exc:
                if not failing:
                    log.warning("handoff.failed", error=str(exc))
                failing = True
            else:
                failing = False
                if skus:
                    self.engine.touch(skus)
            await asyncio.sleep(HANDOFF_POLL)

    def _cancel_handoffs(self) -> None:
        if self._handoff_task is not None:
            self._handoff_task.cancel()
            self._handoff_task = None

    async def take_lease(self) -> bool:
        """For a one-off command (``syncd reconcile --once``) on a shared ledger: become the syncer
        for its duration, the lease renewed meanwhile; False if another replica is the syncer."""
        if not self.lease.shared:
            return True
        self._lease_task = self.supervisor.start("lease", lambda: self.lease.run(self._one_off_role))
        await self.lease.first_try()
        return self.lease.held

    async def _one_off_role(self, syncer: bool) -> None:
        self.store.standby = not syncer
        if syncer:
            self.engine.took_over()

    async def release_lease(self) -> None:
        """Stop renewing the lease and give it up, if this replica holds it."""
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
            self._lease_task = None
        self.lease.release()

    # ------------------------------------------------------------------ background work
    def spawn(self, work: Factory, *, name: str) -> asyncio.Task[Any]:
        """Run ``work()`` in the background, watched (started again if it fails); it is awaited
        (or cancelled) when the daemon stops."""
        task = self.supervisor.start(name, work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a scheduled cycle: a failure is logged once with its error (the next run is its
        restart)."""
        await self.supervisor.run(name, lambda: work)

    def _stop_for(self, reason: str) -> None:
        """A background task was given up: stop serving; ``serve`` then exits with the reason."""
        log.critical("daemon.stopping", reason=reason)
        if self._server is not None:
            self._server.should_exit = True

    async def _job(self, kind: str, cycle: Callable[[], Awaitable[CycleReport]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._guard(
                record_run(self.store, kind, cycle, self.engine.clock, after=self.engine.history.flush), kind
            )
        except asyncio.CancelledError:
            # Cancelled by the drain at shutdown: the outbox keeps what was not sent.
            log.warning("cycle.cancelled", kind=kind)
        finally:
            if task is not None:
                self._tasks.discard(task)

    def start_scheduler(self) -> AsyncIOScheduler:
        schedule = self.config.schedule
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        jitter = int(schedule.jitter.total_seconds()) or None
        now = datetime.now(UTC)
        jobs: list[tuple[str, Callable[[], Awaitable[CycleReport]], timedelta, datetime | None]] = [
            # Paused until the start-up order poll is over (_start_up).
            ("reconcile", self.engine.reconcile, schedule.reconcile_interval, None),
            (
                "orders",
                functools.partial(self.engine.poll_orders, wait=False),
                schedule.order_poll_interval,
                now + schedule.order_poll_interval,
            ),
            ("erp", self.engine.poll_erp, schedule.erp_poll_interval, now + schedule.erp_poll_interval),
        ]
        for kind, cycle, interval, first in jobs:
            scheduler.add_job(
                self._job,
                "interval",
                args=[kind, cycle],
                id=kind,
                name=kind,
                seconds=interval.total_seconds(),
                jitter=jitter,
                next_run_time=first,
            )
        from syncd.alerts import Alerter

        # Alerts are evaluated even without a webhook: the ledger then still knows what is open.
        alerter = Alerter(
            self.config.alerts,
            self.store,
            lambda: self.engine.status()["connectors"],
            reconcile_interval=schedule.reconcile_interval,
            started_at=self.started_at,
            secrets=self.config.secrets(),
            clock=self.engine.clock,
        )
        scheduler.add_job(
            alerter.run,
            "interval",
            id="alerts",
            name="alerts",
            seconds=self.config.alerts.check_interval.total_seconds(),
            next_run_time=now + self.config.alerts.check_interval,
        )
        scheduler.start()
        self.scheduler = scheduler
        self.spawn(functools.partial(self._start_up, scheduler), name="start-up")
        for event in self.engine.events:
            self._schedule_event_edges(event)
        return scheduler

    async def _start_up(self, scheduler: AsyncIOScheduler) -> None:
        """What a start does first: close the runs a crash left open, take in the sales made
        while the daemon was down (every channel on its own, each one's pushed as its page is in),
        and only then start the first reconcile, which reads everything and takes far longer."""
        try:
            self.engine.close_interrupted_runs()
        except StoreError as exc:
            log.error("runs.not_closed", error=str(exc))
        await self._job("start-up", self.engine.start_up_orders)
        if scheduler.running:
            scheduler.modify_job("reconcile", next_run_time=datetime.now(UTC))

    def schedule_event_replans(self, event: EventSettings) -> None:
        """Replan everything now and again when the event starts and ends, so it expires by itself."""
        self.spawn(self.engine.replan_all, name="replan")
        self._schedule_event_edges(event)

    def _schedule_event_edges(self, event: EventSettings) -> None:
        if self.scheduler is None:
            return
        now = datetime.now(UTC)
        for label, when in (("start", event.start), ("end", event.end)):
            if when > now:
                self.scheduler.add_job(
                    self._job,
                    "date",
                    args=["replan", self.engine.replan_all],
                    id=f"event:{event.name}:{label}",
                    run_date=when,
                    replace_existing=True,
                )

    async def stop(self) -> None:
        """Stop scheduling, let in-flight cycles and pushes finish (up to the drain timeout), close."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        # SKUs handed off and not yet taken stay in the ledger for the next syncer.
        self._cancel_handoffs()
        self.spawn(self.engine.drain_fast_path, name="fast-path-drain")
        pending = {t for t in self._tasks if t is not asyncio.current_task()}
        if pending:
            log.info("daemon.draining", tasks=len(pending), timeout=self.drain_timeout)
            _, late = await asyncio.wait(pending, timeout=self.drain_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)
                log.warning("daemon.drain_timeout", cancelled=len(late))
        # Renewed until the drain is over, then given up so that a standby takes over at once.
        await self.release_lease()
        await self.engine.aclose()
        self.store.close()
        log.info("daemon.stopped")

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        if self.lease.shared:
            # The cycles start once this replica holds the lease (_role_changed).
            self._lease_task = self.supervisor.start("lease", lambda: self.lease.run(self._role_changed))
        else:
            await self._role_changed(True)
        log.info(
            "daemon.started",
            version=__version__,
            address=f"http://{self.config.server.host}:{self.config.server.port}",
            channels=sorted(self.engine.channels),
            lease=self.lease.name if self.lease.shared else None,
            holder=self.lease.holder if self.lease.shared else None,
        )
        try:
            yield
        finally:
            await self.stop()

    # ------------------------------------------------------------------ status
    def replica(self) -> dict[str, Any]:
        """This replica's role: ``lease`` is "local" on SQLite (one daemon, always the syncer),
        else "held" (the syncer) or "standby" (takes webhooks, hands their SKUs to the syncer)."""
        lease = "local" if not self.lease.shared else "held" if self.lease.held else "standby"
        return {"syncer": self.lease.held, "lease": lease, "holder": self.lease.holder}

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "version": __version__,
            "started_at": self.started_at.isoformat(),
            "replica": self.replica(),
            **self.engine.status(),
        }
        try:
            status["runs"] = [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "started_at": r.started_at.isoformat(),
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "counts": r.counts,
                    "error": r.error,
                }
                for r in self.store.recent_runs(20)
            ]
            status["drift"] = [
                {
                    "at": d.at.isoformat(),
                    "channel": d.channel,
                    "sku": d.sku,
                    "expected": d.expected,
                    "observed": d.observed,
                    "cause": d.cause,
                    "correction": d.correction,
                }
                for d in self.store.recent_drift(50)
            ]
            status["ledger"] = self.store.counts()
        except StoreError as exc:
            status["store_error"] = str(exc)
        return status

    # ------------------------------------------------------------------ serving
    def app(self) -> FastAPI:
        return create_app(self)

    async def serve(self) -> None:
        """Serve HTTP and run the schedule until SIGINT or SIGTERM, then drain and exit cleanly."""
        server = QuietServer(
            uvicorn.Config(
                self.app(),
                host=self.config.server.host,
                port=self.config.server.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=int(self.drain_timeout),
            )
        )
        self._server = server
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_exit, sig)
        try:
            await server.serve()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if not server.started:
            raise OSError(f"could not serve on {self.config.server.host}:{self.config.server.port}")
        if self.supervisor.fatal is not None:
            raise SystemExit(f"syncd stopped: {self.supervisor.fatal}")
