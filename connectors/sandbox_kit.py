"""What every sandbox shares: fault injection, API call counting and the ``/_sandbox`` conventions.

A sandbox is a small Starlette app that behaves like one real API for the parts syncd uses.
``FaultInjector`` wraps its API routes (never the ``/_sandbox`` hooks) to add latency, errors and
throttling on demand; ``POST /_sandbox/faults`` changes them at run time. ``SandboxHooks`` and
``WebhookSender`` are the skeletons of a channel sandbox's hooks and webhook deliveries;
``ChangeJournal`` keeps the true cause of every change of a shown quantity (``GET /_sandbox/changes``).
"""

from __future__ import annotations

import asyncio
import json
import random
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.typing import FilteringBoundLogger

HOOK_PREFIX = "/_sandbox"


@dataclass
class Faults:
    """Faults a sandbox injects into its API (not into its hooks).

    ``error_rate`` and ``throttle_rate`` are probabilities per request; ``latency_ms`` is added to
    every API request. The webhook settings apply to sandboxes that deliver webhooks; a delivery
    waits between ``webhook_delay_ms`` and ``webhook_delay_max_ms``.
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_ms: float = 0.0
    webhook_delay_max_ms: float = 0.0

    def webhook_delay_seconds(self, rng: random.Random) -> float:
        """A delivery's delay: ``webhook_delay_ms``, or uniform up to ``webhook_delay_max_ms`` if larger."""
        low, high = self.webhook_delay_ms, max(self.webhook_delay_ms, self.webhook_delay_max_ms)
        return (low if high == low else rng.uniform(low, high)) / 1000

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(known)}")
        for name, value in changes.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fault {name!r} must be a non-negative number")
            if name.endswith("_rate") and value > 1:
                raise ValueError(f"fault {name!r} is a probability between 0 and 1")
            setattr(self, name, float(value))


class FaultInjector:
    """ASGI middleware: counts API calls and injects the configured faults.

    ``error_response`` and ``throttle_response`` build the platform's own error envelopes.
    """

    def __init__(
        self,
        app: ASGIApp,
        faults: Faults,
        calls: Counter[str],
        *,
        rng: random.Random | None = None,
        error_response: Response | None = None,
        throttle_response: Response | None = None,
    ):
        self.app = app
        self.faults = faults
        self.calls = calls
        self.rng = rng or random.Random()
        self.error_response = error_response or JSONResponse(
            {"code": "internal_error", "message": "Injected server error."}, status_code=500
        )
        self.throttle_response = throttle_response or JSONResponse(
            {"code": "too_many_requests", "message": "Injected throttling."},
            status_code=429,
            headers={"Retry-After": "1"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(HOOK_PREFIX):
            await self.app(scope, receive, send)
            return
        self.calls[f"{scope['method']} {scope['path']}"] += 1
        self.calls["total"] += 1
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.throttle_rate and self.rng.random() < faults.throttle_rate:
            await self.throttle_response(scope, receive, send)
            return
        if faults.error_rate and self.rng.random() < faults.error_rate:
            await self.error_response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def faults_endpoint(request: Request, faults: Faults) -> JSONResponse:
    """``GET`` shows the current faults; ``POST`` with a JSON object changes some of them."""
    if request.method == "POST":
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            faults.update(changes)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(asdict(faults))


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; ValueError naming the problem otherwise."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise ValueError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def purchase_args(body: dict[str, Any]) -> tuple[str, int]:
    """Validate a ``/_sandbox/purchase`` body: ``{"sku": str, "quantity": positive int}``."""
    sku = body.get("sku")
    quantity = body.get("quantity", 1)
    if not isinstance(sku, str) or not sku:
        raise ValueError("'sku' must be a non-empty string")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise ValueError("'quantity' must be a positive integer")
    return sku, quantity


def listing_args(body: dict[str, Any]) -> tuple[str, int]:
    """Validate a ``POST /_sandbox/listings`` body: ``{"sku": str, "quantity": int}``."""
    sku, quantity = body.get("sku"), body.get("quantity")
    if not isinstance(sku, str) or not isinstance(quantity, int) or isinstance(quantity, bool):
        raise ValueError("body must be {'sku': str, 'quantity': int}")
    return sku, quantity


CAUSES = ("seed", "purchase", "cancellation", "manual_edit", "syncd_write")
JOURNAL_SIZE = 200_000


@dataclass(frozen=True)
class Change:
    """One change of a listing's shown quantity and what truly made it.

    ``order_id`` is set for a purchase or a cancellation (the id ``/_sandbox/purchase`` answered),
    ``written`` for a write through the API (the quantity the listing was set to).
    """

    at: datetime
    sku: str
    cause: str
    before: int | None
    after: int | None
    order_id: str | None = None
    written: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


class _Acting:
    """What a ``ChangeJournal.acting`` block knows only at its end (the order it created)."""

    order_id: str | int | None = None


class ChangeJournal:
    """A ring of the last ``size`` changes of shown quantities, each with its true cause.

    The shop calls ``changed`` wherever a quantity moves; the cause is the innermost ``acting``
    block around the call, or ``syncd_write`` outside any block (only the API writes without one).
    A block must never span an ``await`` (another request's changes would take its cause); the
    shops mutate without awaiting, so blocks wrap only those synchronous calls.
    """

    def __init__(self, size: int = JOURNAL_SIZE, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._changes: deque[Change] = deque(maxlen=size)
        self._clock = clock
        self._cause = "syncd_write"
        self._held: list[Change] | None = None

    @contextmanager
    def acting(self, cause: str) -> Iterator[_Acting]:
        """Journal the changes made inside as ``cause``; set ``.order_id`` on the answer to name
        the order they belong to (it is often known only after the stock moved)."""
        if cause not in CAUSES:
            raise ValueError(f"unknown cause {cause!r}; known: {', '.join(CAUSES)}")
        outer, held = self._cause, self._held
        self._cause, self._held = cause, []
        acting = _Acting()
        try:
            yield acting
        finally:
            mine, self._cause, self._held = self._held, outer, held
            order = None if acting.order_id is None else str(acting.order_id)
            for change in mine or []:
                named = order is not None and change.order_id is None
                self._keep(replace(change, order_id=order) if named else change)

    def changed(self, sku: str, before: int | None, after: int | None) -> None:
        """The shown quantity of ``sku`` went from ``before`` to ``after`` (no-ops are ignored)."""
        if before == after:
            return
        written = after if self._cause == "syncd_write" else None
        self._keep(Change(self._clock(), sku, self._cause, before, after, written=written))

    def _keep(self, change: Change) -> None:
        if self._held is not None:
            self._held.append(change)
        else:
            self._changes.append(change)

    def since(self, since: datetime | None = None) -> list[Change]:
        """The changes after ``since`` (all kept ones if None), oldest first."""
        if since is None:
            return list(self._changes)
        newer: list[Change] = []
        for change in reversed(self._changes):
            if change.at <= since:
                break
            newer.append(change)
        return newer[::-1]


def parse_since(value: str | None) -> datetime | None:
    """The ``since`` query parameter: an ISO 8601 time (UTC if it names no zone), or absent."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise ValueError(f"'since' must be an ISO 8601 time, got {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


class StockShortage(Exception):
    """A purchase asked for more units than the shop shows."""

    def __init__(self, available: int):
        self.available = available
        super().__init__(f"only {available} available")


class SandboxHooks(ABC):
    """The ``/_sandbox`` routes every channel sandbox has; a subclass adapts them to its shop.

    The shop side raises ``ValueError`` for a bad seed, ``LookupError`` for an unknown SKU and
    ``StockShortage`` for a purchase larger than the stock.
    """

    cancel_path = HOOK_PREFIX + "/orders/{id:int}/cancel"

    def __init__(self, faults: Faults, calls: Counter[str], journal: ChangeJournal | None = None):
        self.faults = faults
        self.calls = calls
        self.journal = journal if journal is not None else ChangeJournal()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(HOOK_PREFIX + "/seed", self.seed, methods=["POST"]),
            Route(HOOK_PREFIX + "/changes", self.changes, methods=["GET"]),
            Route(HOOK_PREFIX + "/listings", self.listings, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/purchase", self.purchase, methods=["POST"]),
            Route(self.cancel_path, self.cancel, methods=["POST"]),
            *self.extra_routes(),
            Route(HOOK_PREFIX + "/faults", self.faults_route, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/stats", self.stats, methods=["GET"]),
        ]

    def extra_routes(self) -> list[BaseRoute]:
        return []

    @abstractmethod
    def seed_items(self, entries: list[dict[str, Any]]) -> int: ...

    @abstractmethod
    async def listings(self, request: Request) -> Response: ...

    @abstractmethod
    def place_order(self, request: Request, sku: str, quantity: int) -> int | str:
        """Buy as a shopper would (notifying webhooks); the id ``/_sandbox/purchase`` answers."""

    @abstractmethod
    def cancel_order(self, request: Request, order_id: Any) -> dict[str, Any] | None:
        """Cancel as the merchant would (notifying webhooks); the order's JSON, None if unknown."""

    def stats_body(self) -> dict[str, Any]:
        return {"calls": dict(self.calls)}

    async def seed(self, request: Request) -> Response:
        try:
            body = await read_json_object(request)
            entries = body.get("items")
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError("'items' must be a list of objects")
            with self.journal.acting("seed"):
                count = self.seed_items(entries)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"seeded": count}, status_code=201)

    async def purchase(self, request: Request) -> Response:
        try:
            sku, quantity = purchase_args(await read_json_object(request))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            with self.journal.acting("purchase") as acting:
                order_id = acting.order_id = self.place_order(request, sku, quantity)
        except LookupError:
            return JSONResponse({"error": "unknown_sku", "sku": sku}, status_code=404)
        except StockShortage as shortage:
            return JSONResponse(
                {"error": "insufficient_stock", "available": shortage.available}, status_code=409
            )
        return JSONResponse({"order_id": order_id}, status_code=201)

    async def changes(self, request: Request) -> Response:
        """``GET /_sandbox/changes?since=<iso>``: the journaled changes after ``since``, oldest first."""
        try:
            since = parse_since(request.query_params.get("since"))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse([change.as_json() for change in self.journal.since(since)])

    async def cancel(self, request: Request) -> Response:
        with self.journal.acting("cancellation") as acting:
            acting.order_id = request.path_params["id"]
            order = self.cancel_order(request, request.path_params["id"])
        if order is None:
            return JSONResponse({"error": "unknown_order"}, status_code=404)
        return JSONResponse(order)

    async def faults_route(self, request: Request) -> Response:
        return await faults_endpoint(request, self.faults)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.stats_body())


class WebhookSender:
    """Delivers webhooks to one URL in the background; ``start``/``stop`` bracket the app's lifespan.

    A subclass builds the platform's payloads and headers and passes them to ``_schedule``; this
    applies the drop, duplicate and delay faults, and logs (never raises) failed deliveries.
    ``retries`` extra attempts follow a failed or refused one, ``retry_delay`` seconds apart.
    """

    log: FilteringBoundLogger
    timeout = 10.0
    retries = 0
    retry_delay = 0.5

    def __init__(
        self,
        url: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = url
        self.faults = faults
        self.rng = rng
        self.delivered = 0
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(transport=self._transport, timeout=httpx.Timeout(self.timeout))

    async def stop(self, grace: float = 5.0) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self) -> None:
        """Wait until every delivery scheduled so far has been attempted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _schedule(
        self, payload: dict[str, Any], headers: Callable[[bytes], dict[str, str]], **context: Any
    ) -> None:
        """Deliver ``payload`` later; ``headers`` is asked once per copy, ``context`` goes to logs."""
        if self._client is None:
            self.log.warning("sandbox.webhook.not_started", **context)
            return
        if self.faults.webhook_drop_rate and self.rng.random() < self.faults.webhook_drop_rate:
            self.log.info("sandbox.webhook.dropped", **context)
            return
        copies = 2 if self.rng.random() < self.faults.webhook_duplicate_rate else 1
        body = json.dumps(payload, separators=(",", ":")).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(body, headers, copies, context))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        body: bytes,
        headers: Callable[[bytes], dict[str, str]],
        copies: int,
        context: dict[str, Any],
    ) -> None:
        delay = self.faults.webhook_delay_seconds(self.rng)
        if delay:
            await asyncio.sleep(delay)
        for _ in range(copies):
            sent = headers(body)
            for attempt in range(1 + self.retries):
                client = self._client
                if client is None:
                    return
                try:
                    response = await client.post(self.url, content=body, headers=sent)
                except httpx.HTTPError as exc:
                    self.log.info("sandbox.webhook.failed", error=type(exc).__name__, **context)
                else:
                    if response.status_code < 300:
                        self.delivered += 1
                        break
                    self.log.info("sandbox.webhook.refused", status=response.status_code, **context)
                if attempt < self.retries:
                    await asyncio.sleep(self.retry_delay)


def webhook_lifespan(
    webhooks: WebhookSender | None,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that runs ``webhooks`` (if any) while the app serves."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if webhooks is not None:
            await webhooks.start()
        try:
            yield
        finally:
            if webhooks is not None:
                await webhooks.stop()

    return lifespan
