"""The circuit breaker in front of each connector's API: stop calling an API that keeps failing,
and try it again now and then with one trial call, waiting longer after each failed trial.

It only counts failures that say the remote side is down (timeouts, connection errors, 5xx).
Throttling answers and 4xx rejections come from a live API: they reset the count instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

import structlog

from connectors.base import CircuitState, CircuitStateName
from connectors.settings import ConnectorSettings
from syncd.errors import CircuitOpenError

log = structlog.get_logger("syncd.circuit")

# While a trial call is out, other calls are refused with this hint: the trial decides soon.
TRIAL_RETRY_AFTER = 1.0


class CircuitBreaker:
    """Closed → open after ``failures`` transient failures in a row → half-open after a cool-down
    (one trial call) → closed on its success, or open again with the cool-down doubled, up to
    ``max_cooldown``. Each cool-down is shortened by up to ``jitter`` (a fraction) at random, so
    that connectors that failed together do not all try again at the same moment.

    A caller asks ``admit()`` before a call (it raises CircuitOpenError while open, and says
    whether this call is the trial), then reports the outcome with ``succeeded``, ``failed`` or,
    for a call that ended without an answer either way (cancelled), ``abandoned``.
    """

    def __init__(
        self,
        connector: str,
        *,
        failures: int = 5,
        cooldown: float = 10.0,
        max_cooldown: float = 120.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ):
        if failures < 1 or cooldown < 0 or max_cooldown < cooldown or not 0 <= jitter < 1:
            raise ValueError("need failures >= 1, 0 <= cooldown <= max_cooldown and 0 <= jitter < 1")
        self.connector = connector
        self.threshold = failures
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.jitter = jitter
        # Wall-clock seconds: the status page shows when the circuit opened and when it tries again.
        self._clock = clock
        self._rng = rng
        self._state: CircuitStateName = "closed"
        self._failures = 0
        self._opens = 0  # openings since the circuit was last closed: the cool-down's exponent
        self._opened_at: float | None = None
        self._next_trial_at: float | None = None
        self._trial_out = False
        self._wait = 0.0
        self._last_error = ""
        self._refused = 0

    @classmethod
    def for_settings(
        cls, connector: str, settings: ConnectorSettings, *, clock: Callable[[], float] = time.time
    ) -> CircuitBreaker:
        return cls(
            connector,
            failures=settings.circuit_failures,
            cooldown=settings.circuit_cooldown.total_seconds(),
            max_cooldown=settings.circuit_max_cooldown.total_seconds(),
            clock=clock,
        )

    @property
    def state(self) -> CircuitStateName:
        """The state now (an open circuit past its cool-down reads as half-open)."""
        if self._state == "open" and self._next_trial_at is not None and self._clock() >= self._next_trial_at:
            return "half_open"
        return self._state

    def snapshot(self) -> CircuitState:
        return CircuitState(
            state=self.state,
            failures=self._failures,
            opened_at=_wall(self._opened_at),
            next_trial_at=_wall(self._next_trial_at),
        )

    def check(self) -> None:
        """Raise CircuitOpenError if a call would be refused now, without taking the trial: for
        callers that wait for something else (a cost bucket) before they call."""
        if self._state == "closed":
            return
        assert self._next_trial_at is not None
        if self._trial_out or self._clock() < self._next_trial_at:
            self._refusal(self._clock())

    def admit(self) -> bool:
        """Let a call go out, or raise CircuitOpenError; True when the call is the trial."""
        if self._state == "closed":
            return False
        now = self._clock()
        assert self._next_trial_at is not None
        if self._state == "open" and now >= self._next_trial_at:
            self._state = "half_open"
        if self._state == "half_open" and not self._trial_out:
            self._trial_out = True
            return True
        self._refusal(now)

    def _refusal(self, now: float) -> NoReturn:
        self._refused += 1
        assert self._next_trial_at is not None
        if self._state == "half_open" or self._trial_out:
            raise CircuitOpenError(
                f"circuit open ({self._last_error}); a trial call is under way",
                connector=self.connector,
                retry_after=TRIAL_RETRY_AFTER,
                next_trial_at=now + TRIAL_RETRY_AFTER,
            )
        wait = self._next_trial_at - now
        raise CircuitOpenError(
            f"circuit open after {self._failures} failures in a row ({self._last_error}); "
            f"next trial in {wait:.1f} s",
            connector=self.connector,
            retry_after=wait,
            next_trial_at=self._next_trial_at,
        )

    def succeeded(self, trial: bool = False) -> None:
        """The API answered (2xx, 4xx, throttling): whatever the state, it is up."""
        if trial:
            self._trial_out = False
        if self._state != "closed":
            assert self._opened_at is not None
            log.info(
                "circuit.closed",
                connector=self.connector,
                open_seconds=round(self._clock() - self._opened_at, 3),
                refused=self._refused,
            )
        self._state = "closed"
        self._failures = 0
        self._opens = 0
        self._opened_at = self._next_trial_at = None
        self._refused = 0

    def failed(self, error: str, trial: bool = False) -> None:
        """The call timed out, could not connect, or got a 5xx."""
        self._last_error = error[:200]
        if trial:
            self._trial_out = False
        # A trial that fails after another call closed the circuit is an ordinary failure.
        if trial and self._state != "closed":
            self._open()
            log.debug("circuit.trial_failed", connector=self.connector, error=self._last_error)
            return
        self._failures += 1
        if self._state == "closed" and self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._open()
            log.warning(
                "circuit.opened",
                connector=self.connector,
                failures=self._failures,
                error=self._last_error,
                next_trial_in=round(self._wait, 3),
            )

    def abandoned(self, trial: bool = False) -> None:
        """The call ended without an outcome (cancelled): another call may be the trial."""
        if trial:
            self._trial_out = False

    def _open(self) -> None:
        self._opens += 1
        base = min(self.max_cooldown, self.cooldown * 2 ** (self._opens - 1))
        self._wait = base * (1 - self.jitter * self._rng())
        self._state = "open"
        self._next_trial_at = self._clock() + self._wait


def _wall(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
