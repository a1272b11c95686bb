"""A Tiny (Olist ERP) API v3 sandbox: the endpoints syncd uses, Tiny's envelopes and paging, its
OAuth token endpoint, the per-account minute limit, plus ``/_sandbox`` hooks for tests and the demo.

API (``/public-api/v3``, Bearer token, fault-injected, rate-limited): ``GET /produtos``,
``GET /estoque/{id}``, ``GET|POST /pedidos``, ``GET /pedidos/{id}``, ``PUT /pedidos/{id}/situacao``,
``POST /pedidos/{id}/lancar-estoque``, ``POST /pedidos/{id}/estornar-estoque``. OAuth
(``/realms/tiny/protocol/openid-connect``): ``GET /auth`` (consents at once and redirects with a
code), ``POST /token``. Hooks: ``stock``, ``seed``, ``orders``, ``oauth/code``, ``oauth/expire``,
``oauth/settings``, ``faults``, ``stats``. Serve with ``uvicorn.run(create_app(...))``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from email.utils import formatdate

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.sandbox_kit import FaultInjector, webhook_lifespan
from connectors.tiny.sandbox_account import Account
from connectors.tiny.sandbox_api import SandboxApi, TinyFaults, TinySandbox, error
from connectors.tiny.sandbox_hooks import SandboxHooks
from connectors.tiny.sandbox_webhooks import StockWebhooks

API = "/public-api/v3"
AUTH = "/realms/tiny/protocol/openid-connect"

__all__ = ["API", "AUTH", "TinyFaults", "TinySandbox", "create_app"]


class MinuteLimit:
    """Tiny's per-account limit: at most ``per_minute`` API requests in each clock minute; over it,
    429 with ``X-RateLimit-*`` headers (seconds left in the minute in ``X-RateLimit-Reset``)."""

    def __init__(self, app: ASGIApp, account: Account, per_minute: int, counter: Counter[str]):
        self.app = app
        self.account = account
        self.per_minute = per_minute
        self.counter = counter
        self._window = -1
        self._used = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API):
            await self.app(scope, receive, send)
            return
        now = self.account.clock()
        window = int(now // 60)
        if window != self._window:
            self._window, self._used = window, 0
        reset = max(1, math.ceil((window + 1) * 60 - now))
        if self._used >= self.per_minute:
            self.counter["throttled"] += 1
            response = error(429, "Limite de requisições atingido, tente novamente mais tarde.")
            response.headers.update(_limit_headers(self.per_minute, 0, reset))
            await response(scope, receive, send)
            return
        self._used += 1
        date = formatdate(now, usegmt=True).encode()

        async def dated(message: Message) -> None:
            # Like any web server, answers carry the server's time (the sandbox's clock).
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"date", date)]
            await send(message)

        await self.app(scope, receive, dated)


def _limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


def create_app(
    *,
    client_id: str = "syncd-demo",
    client_secret: str = "syncd-demo-secret",
    requests_per_minute: int = 60,
    faults: TinyFaults | None = None,
    seed: int | None = None,
    account: Account | None = None,
    webhook_url: str | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """A sandbox account with one app registered (``client_id``/``client_secret``); with
    ``webhook_url``, each stock change is posted there as Tiny's (unsigned) stock webhook."""
    account = account or Account()
    account.tokens.clients[client_id] = client_secret
    sandbox = TinySandbox(account, faults or TinyFaults(), Counter(), random.Random(seed))
    api = SandboxApi(sandbox)
    hooks = SandboxHooks(sandbox)
    routes = [
        Route(API + "/produtos", api.products, methods=["GET"]),
        Route(API + "/estoque/{id:int}", api.stock, methods=["GET"]),
        Route(API + "/pedidos", api.orders, methods=["GET"]),
        Route(API + "/pedidos", api.create_order, methods=["POST"]),
        Route(API + "/pedidos/{id:int}", api.order, methods=["GET"]),
        Route(API + "/pedidos/{id:int}/situacao", api.situacao, methods=["PUT"]),
        Route(API + "/pedidos/{id:int}/lancar-estoque", api.post_stock, methods=["POST"]),
        Route(API + "/pedidos/{id:int}/estornar-estoque", api.reverse_stock, methods=["POST"]),
        Route(AUTH + "/auth", api.authorize, methods=["GET"]),
        Route(AUTH + "/token", api.token, methods=["POST"]),
        *hooks.routes(),
    ]
    throttled = error(429, "Limite de requisições atingido, tente novamente mais tarde.")
    throttled.headers.update(_limit_headers(requests_per_minute, 0, 5))
    webhooks = (
        StockWebhooks(webhook_url, account, sandbox.faults, sandbox.rng, webhook_transport)
        if webhook_url
        else None
    )
    app = Starlette(
        routes=routes,
        lifespan=webhook_lifespan(webhooks),
        middleware=[
            Middleware(
                FaultInjector,
                faults=sandbox.faults,
                calls=sandbox.calls,
                rng=sandbox.rng,
                error_response=error(500, "Erro interno do servidor."),
                throttle_response=throttled,
            ),
            Middleware(MinuteLimit, account=account, per_minute=requests_per_minute, counter=sandbox.calls),
        ],
    )
    app.state.sandbox = sandbox
    app.state.webhooks = webhooks
    return app
