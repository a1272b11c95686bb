"""Shared pieces of the Tiny tests: a simulated clock, a sandbox wired to connectors, a relay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette

from connectors.base import MemoryErpRecordStore, MemoryTokenStore
from connectors.tiny.auth import exchange_code
from connectors.tiny.client import TinyConnector
from connectors.tiny.sandbox import TinySandbox
from connectors.tiny.settings import TinySettings

CLIENT_ID = "syncd-test"
CLIENT_SECRET = "tiny-test-secret-8c1d"
BASE = "http://tiny.test"
REDIRECT = "http://localhost:8080/oauth/tiny"


class FakeTime:
    """Wall clock and sleep in one: sleeping moves the clock, so waits cost no real time."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        # At least a microsecond: a tinier step is lost in the float of an epoch time.
        self.now += max(1e-6, seconds)
        await asyncio.sleep(0)  # let other tasks run, as a real wait would


def settings(**overrides: Any) -> TinySettings:
    values: dict[str, Any] = {
        "type": "tiny",
        "base_url": f"{BASE}/public-api/v3",
        "auth_url": f"{BASE}/realms/tiny/protocol/openid-connect",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "contact_id": 1,
        "requests_per_minute": 6000,
        "burst": 100,
        "retry_attempts": 3,
    }
    values.update(overrides)
    return TinySettings(**values)


def handle(app: Starlette) -> TinySandbox:
    sandbox: TinySandbox = app.state.sandbox
    return sandbox


async def authorise(app: Starlette, tokens: MemoryTokenStore, clock: FakeTime) -> None:
    """The seller's first authorisation, through the sandbox's consent and token endpoints."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as hooks:
        code = (
            await hooks.post("/_sandbox/oauth/code", json={"client_id": CLIENT_ID, "redirect_uri": REDIRECT})
        ).json()
    await exchange_code(settings(), code["code"], tokens, transport=httpx.ASGITransport(app), clock=clock)


Handler = Callable[
    [httpx.Request, Callable[[httpx.Request], Awaitable[httpx.Response]]], Awaitable[httpx.Response]
]


def relay(app: Starlette, handler: Handler) -> httpx.MockTransport:
    """A wire where ``handler(request, forward)`` sees each request; ``forward`` sends it on to the
    sandbox and returns its answer, which the handler may pass, change or replace (a time-out)."""
    inner = httpx.ASGITransport(app)

    async def forward(request: httpx.Request) -> httpx.Response:
        response = await inner.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    async def route(request: httpx.Request) -> httpx.Response:
        return await handler(request, forward)

    return httpx.MockTransport(route)


def build(
    app: Starlette,
    clock: FakeTime,
    *,
    tokens: MemoryTokenStore | None = None,
    records: MemoryErpRecordStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> TinyConnector:
    return TinyConnector(
        settings(**overrides),
        transport=transport or httpx.ASGITransport(app),
        sleep=clock.sleep,
        clock=clock,
        tokens=tokens,
        records=records,
    )
