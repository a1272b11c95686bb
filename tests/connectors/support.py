"""Helpers shared by the channel tests: a recording webhook receiver, a running seeded sandbox, and a
transport that spoils chosen orders in a sandbox's answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.sandbox_kit import Faults, WebhookSender


@dataclass
class Receiver:
    """A tiny ASGI endpoint at ``path`` that records what the sandbox delivers to it."""

    path: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=200)

        return Starlette(routes=[Route(self.path, receive, methods=["POST"])])


@dataclass
class SandboxShop:
    app: Starlette
    hooks: httpx.AsyncClient
    receiver: Receiver
    faults: Faults
    sender_type: type[WebhookSender]

    @property
    def sender(self) -> WebhookSender:
        sender = self.app.state.webhooks
        assert isinstance(sender, self.sender_type)
        return sender


@asynccontextmanager
async def running_shop(
    app: Starlette, receiver: Receiver, faults: Faults, base_url: str, sender_type: type[WebhookSender]
) -> AsyncIterator[SandboxShop]:
    """``app`` serving, with 5 units of ``MUG-1`` seeded through its hooks."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url) as hooks,
    ):
        seeded = await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 5}]})
        assert seeded.status_code == 201
        yield SandboxShop(app, hooks, receiver, faults, sender_type)


class Spoiler(httpx.AsyncBaseTransport):
    """Forwards requests to a sandbox and spoils the orders named in ``orders`` in its JSON answers
    (``spoil(body, orders)`` edits the decoded body in place), as a buggy platform might."""

    def __init__(self, inner: httpx.AsyncBaseTransport, spoil: Callable[[Any, set[str]], None]):
        self.inner = inner
        self.spoil = spoil
        self.orders: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        try:
            body = json.loads(content)
        except ValueError:
            return httpx.Response(response.status_code, headers=response.headers, content=content)
        self.spoil(body, self.orders)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=json.dumps(body).encode())

    async def aclose(self) -> None:
        await self.inner.aclose()
