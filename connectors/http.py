"""The one road every connector's HTTP traffic takes.

One ``httpx.AsyncClient`` per connector, one chokepoint (``HttpClient.request``) that maps failures
onto the error tree, retries of transient errors only (tenacity: exponential backoff with jitter,
honouring Retry-After), a per-connector rate limiter that the channel's own signals can slow, and
a circuit breaker (``connectors.circuit``) that refuses calls at once while the API is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from connectors.circuit import CircuitBreaker
from syncd.errors import AuthError, CircuitOpenError, ConnectorError, ProtocolError, TransientError

log = structlog.get_logger("syncd.http")

T = TypeVar("T")

# Calls made inside ``urgent_calls()`` take the rate limiter's tokens before any other call: a push
# for a SKU about to sell out never queues behind an order fetch or a routine push.
_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("syncd_urgent_calls", default=False)


def calls_are_urgent() -> bool:
    """Whether the running code is inside ``urgent_calls()`` (for limits kept outside this module)."""
    return _URGENT.get()


@contextlib.contextmanager
def urgent_calls(urgent: bool = True) -> Iterator[None]:
    """Within this block (and the tasks awaited in it), calls go first at every rate limiter.
    ``urgent=False`` changes nothing: calls made while others are urgent stay urgent."""
    if not urgent:
        yield
        return
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


@dataclass
class _Paired:
    calls: int
    prepaid: dict[int, int]  # id(limiter) -> tokens taken ahead for the calls still to come


_PAIRED: contextvars.ContextVar[_Paired | None] = contextvars.ContextVar("syncd_paired_calls", default=None)


@contextlib.contextmanager
def paired_calls(calls: int = 2) -> Iterator[None]:
    """Within this block the first request at a rate limiter takes the tokens of ``calls``
    requests at once, and the next ones there use them: a read and the write it decides go out
    back to back instead of each waiting its turn (the sales that land between the two are the
    ones a write without compare-and-set forgets)."""
    token = _PAIRED.set(_Paired(calls, {}))
    try:
        yield
    finally:
        _PAIRED.reset(token)


class RateLimiter:
    """A token bucket: ``rate`` requests per second on average, bursts up to ``burst``.

    ``pause(seconds)`` stops every caller for a while, for when the remote side says to slow down.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1, int(rate))
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._urgent_waiting = 0

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait for ``cost`` tokens. Urgent callers (see ``urgent_calls``) are served first: the
        others wait while any urgent caller waits."""
        paired = _PAIRED.get()
        if paired is not None:
            if paired.prepaid.get(id(self), 0) > 0:
                paired.prepaid[id(self)] -= 1
                return
            ahead = max(0, min(paired.calls, self.burst) - 1)
            cost += ahead
            paired.prepaid[id(self)] = ahead
        urgent = _URGENT.get()
        if urgent:
            self._urgent_waiting += 1
        try:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if urgent or self._urgent_waiting == 0:
                    # No await between the check and the take: no other caller runs in between.
                    if self._tokens >= cost:
                        self._tokens -= cost
                        return
                    await self._sleep((cost - self._tokens) / self.rate)
                else:
                    await self._sleep(max(cost, 1.0) / self.rate)
        finally:
            if urgent:
                self._urgent_waiting -= 1


@dataclass(frozen=True)
class RetryPolicy:
    """How transient errors are retried: ``attempts`` in all, waits from ``initial`` up to ``maximum``."""

    attempts: int = 4
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """An ``httpx.AsyncClient`` for one connector behind one request chokepoint.

    ``request`` returns the response for 2xx and for the statuses in ``accept``; it raises
    TransientError for timeouts, connection failures, 429 and 5xx (after retrying them), AuthError
    for 401/403, and ConnectorError for other statuses, naming the connector, method, path and
    the remote message (never the credentials).

    Every attempt passes ``circuit`` (one breaker per remote service of a connector): while it is
    open, attempts raise CircuitOpenError without a network call, and are not retried.
    Timeouts, connection failures and 5xx count as failures there, even for statuses the caller
    accepts; any other answer (2xx, 4xx, 429) shows the API is up.
    """

    def __init__(
        self,
        connector: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 30.0,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        circuit: CircuitBreaker | None = None,
    ):
        self.connector = connector
        self.circuit = circuit if circuit is not None else CircuitBreaker(connector)
        self.rate_limiter = rate_limiter
        self.retry = retry or RetryPolicy()
        self.calls = 0
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        accept: tuple[int, ...] = (),
        retry: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; ``retry=False`` makes one attempt, for callers with a retry loop of their own."""
        if not retry:
            return await self._send_once(method, path, accept, **kwargs)
        return await self.call_with_retries(lambda: self._send_once(method, path, accept, **kwargs))

    async def call_with_retries(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` (a coroutine factory), retrying it while it raises TransientError."""
        policy = self.retry

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            # Exponential backoff with jitter, so that many clients do not retry in step.
            base = min(policy.maximum, policy.initial * 2 ** (state.attempt_number - 1))
            base += random.uniform(0, policy.jitter)
            if isinstance(exc, TransientError) and exc.retry_after is not None:
                return float(min(max(base, exc.retry_after), policy.maximum))
            return float(base)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "http.retry",
                connector=self.connector,
                attempt=state.attempt_number,
                wait=round(state.next_action.sleep, 3) if state.next_action else None,
                error=str(exc),
            )

        options: dict[str, Any] = {"sleep": self._sleep} if self._sleep is not None else {}
        retrying = AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            stop=stop_after_attempt(max(1, policy.attempts)),
            wait=wait,
            reraise=True,
            before_sleep=before_sleep,
            **options,
        )
        async for attempt_ctx in retrying:
            with attempt_ctx:
                return await attempt()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self, method: str, path: str, accept: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response:
        trial = self.circuit.admit()
        where = f"{method} {path}"
        try:
            asked = time.monotonic()
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire()
            self.calls += 1
            sent = time.monotonic()
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            self.circuit.failed(f"{where} timed out", trial)
            raise TransientError(f"{where} timed out", connector=self.connector) from exc
        except httpx.TransportError as exc:
            self.circuit.failed(f"{where} failed: {type(exc).__name__}", trial)
            raise TransientError(f"{where} failed: {type(exc).__name__}", connector=self.connector) from exc
        except BaseException:
            self.circuit.abandoned(trial)
            raise
        status = response.status_code
        if status >= 500:
            self.circuit.failed(f"{where} answered {status}", trial)
        else:
            self.circuit.succeeded(trial)
        # The path only: query strings may carry signatures or tokens.
        log.debug(
            "http.call",
            connector=self.connector,
            where=where,
            status=status,
            waited=round(sent - asked, 3),
            seconds=round(time.monotonic() - sent, 3),
            urgent=_URGENT.get(),
        )
        if 200 <= status < 300 or status in accept:
            return response
        detail = _remote_message(response)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None and self.rate_limiter is not None:
                self.rate_limiter.pause(retry_after)
            raise TransientError(
                f"{where} answered {status}{detail}", connector=self.connector, retry_after=retry_after
            )
        if status in (401, 403):
            raise AuthError(f"{where} answered {status}{detail}", connector=self.connector)
        raise ConnectorError(f"{where} answered {status}{detail}", connector=self.connector)


def _worth_retrying(exc: BaseException) -> bool:
    # An open circuit says when to try again, far beyond a retry's wait: give up on this call now.
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpenError)


def _remote_message(response: httpx.Response) -> str:
    """A short, safe excerpt of an error body: its message field, or the first characters."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text[:200].strip()
        return f": {text}" if text else ""
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "code"):
            if key in body:
                return f": {str(body[key])[:200]}"
    return ""


def json_body(response: httpx.Response, expect: type[T], *, connector: str) -> T:
    """Decode a JSON response and check its top-level type, raising ProtocolError otherwise."""
    where = f"{response.request.method} {response.request.url.path}"
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"{where} answered a body that is not JSON ({len(response.content)} bytes)",
            connector=connector,
        ) from exc
    if not isinstance(body, expect):
        raise ProtocolError(
            f"{where} answered JSON of type {type(body).__name__}, expected {expect.__name__}",
            connector=connector,
        )
    return body
