"""Every background task of the daemon is started here and watched: one that dies with an error
is logged once, with the error, and started again after a growing pause; one that keeps dying
(or may not be restarted) stops the daemon with a message saying which task and why. None
disappears silently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from syncd.errors import StoreError

log = structlog.get_logger("syncd.supervisor")

Factory = Callable[[], Coroutine[Any, Any, Any]]


class Supervisor:
    """Starts background work from factories (so that it can be started again) and watches it.

    ``backoff`` is the first pause before a restart, doubled after each failure in a row up to
    ``backoff_max``; after ``give_up_after`` failures in a row the task is given up and
    ``on_fatal`` is called with the reason (the daemon stops on it). Cancellation is not a failure.
    """

    def __init__(
        self,
        *,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        give_up_after: int = 5,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.give_up_after = give_up_after
        self.on_fatal = on_fatal
        self.fatal: str | None = None  # why the daemon must stop, once a task was given up
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, name: str, factory: Factory, *, restart: bool = True) -> asyncio.Task[None]:
        """Run ``factory()`` in the background under watch. ``restart=False`` is for work that
        must not run twice (its failure then stops the daemon)."""
        task = asyncio.create_task(self._watch(name, factory, restart), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` here and now, for work restarted by its own schedule (a cycle): a
        failure is logged once with its error and the next run is the restart."""
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._crashed(name, exc, 1)

    def running(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if not t.done()]

    async def cancel(self) -> None:
        """Cancel every task still running and wait for them to end (shutdown)."""
        tasks = [t for t in self.running() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, name: str, factory: Factory, restart: bool) -> None:
        failures = 0
        pause = self.backoff
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._crashed(name, exc, failures)
                if not restart or failures >= self.give_up_after:
                    self._give_up(name, exc, failures)
                    return
            await asyncio.sleep(pause)
            pause = min(self.backoff_max, pause * 2)
            log.info("task.restarted", task=name, failures=failures)

    @staticmethod
    def _crashed(name: str, exc: Exception, failures: int) -> None:
        error = str(exc) or type(exc).__name__
        if isinstance(exc, StoreError):
            # The ledger's own words say it all; no traceback.
            log.error("task.store_failed", task=name, error=error, failures=failures)
        else:
            # The traceback once, for the first failure in a row.
            log.error(
                "task.crashed",
                task=name,
                error=error,
                error_class=type(exc).__name__,
                failures=failures,
                exc_info=failures == 1,
            )

    def _give_up(self, name: str, exc: Exception, failures: int) -> None:
        times = "once" if failures == 1 else f"{failures} times in a row"
        reason = f"background task {name!r} failed {times} ({type(exc).__name__}: {exc}); the daemon stops"
        log.critical("task.given_up", task=name, reason=reason)
        if self.fatal is None:
            self.fatal = reason
            if self.on_fatal is not None:
                self.on_fatal(reason)
