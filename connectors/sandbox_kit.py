"""What every sandbox shares: fault injection, API call counting and the ``/_sandbox`` conventions.

A sandbox is a small Starlette app that behaves like one real API for the parts syncd uses.
``FaultInjector`` wraps its API routes (never the ``/_sandbox`` hooks) to add latency, errors and
throttling on demand; ``POST /_sandbox/faults`` changes them at run time.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

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
