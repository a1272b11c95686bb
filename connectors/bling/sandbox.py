"""The Bling sandbox: a Starlette app with the parts of Bling API v3 syncd uses, and test hooks.

API (Bearer access token, per-account limits answering 429 ``TOO_MANY_REQUESTS`` per second or
per day, fault-injected): ``GET /produtos``, ``GET /depositos``, ``GET /estoques/saldos[/{idDeposito}]``,
``POST /estoques``, ``GET|POST /pedidos/vendas``, ``POST /pedidos/vendas/{id}/lancar-estoque[/{idDeposito}]``,
``POST /pedidos/vendas/{id}/estornar-estoque``; OAuth at ``GET /oauth/authorize`` and
``POST /oauth/token`` (rotating refresh tokens, 20 calls a minute then an hour's block).
Stock changes are delivered as signed webhooks to ``webhook_url``. Hooks under ``/_sandbox`` (no
auth, never faulted): ``stock``, ``seed``, ``orders``, ``oauth/code``, ``faults``, ``stats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.bling.sandbox_account import BlingAccount, Refused
from connectors.bling.sandbox_api import api_routes, error, refused
from connectors.bling.sandbox_webhooks import BlingFaults, BlingWebhookSender
from connectors.sandbox_kit import (
    HOOK_PREFIX,
    FaultInjector,
    faults_endpoint,
    read_json_object,
    webhook_lifespan,
)

log = structlog.get_logger("syncd.sandbox.bling")

TOKEN_CALLS_PER_MINUTE = 20
TOKEN_BLOCK = 3600.0


@dataclass
class BlingSandbox:
    """The Python handle on a running Bling sandbox (``app.state.sandbox``)."""

    account: BlingAccount
    faults: BlingFaults
    per_second: int = 3
    per_day: int = 120_000
    rng: random.Random = field(default_factory=random.Random)
    calls: Counter[str] = field(default_factory=Counter)
    webhooks: BlingWebhookSender | None = None
    _second: deque[float] = field(default_factory=deque)
    _day: tuple[str, int] = ("", 0)
    _token_calls: deque[float] = field(default_factory=deque)
    _blocked_until: float = 0.0

    def take_request(self, now: float) -> str | None:
        """Count one API request against the account; the period over its limit, if any."""
        while self._second and self._second[0] <= now - 1.0:
            self._second.popleft()
        day = self.account.now().date().isoformat()
        used = self._day[1] if self._day[0] == day else 0
        if used >= self.per_day:
            return "day"
        if len(self._second) >= self.per_second:
            return "second"
        self._second.append(now)
        self._day = (day, used + 1)
        return None

    def take_token_call(self, now: float) -> bool:
        """Count a token call; False while the IP is blocked (20 calls in 60 s block it an hour)."""
        if now < self._blocked_until:
            return False
        while self._token_calls and self._token_calls[0] <= now - 60.0:
            self._token_calls.popleft()
        self._token_calls.append(now)
        if len(self._token_calls) >= TOKEN_CALLS_PER_MINUTE:
            self._blocked_until = now + TOKEN_BLOCK
        return True

    @property
    def used_today(self) -> int:
        return self._day[1]

    def timeout_after_write(self) -> bool:
        rate = self.faults.timeout_after_write_rate
        return bool(rate) and self.rng.random() < rate


class AccountGate:
    """ASGI middleware in front of the API: the access token, then the account's rate limits."""

    def __init__(self, app: ASGIApp, sandbox: BlingSandbox):
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(HOOK_PREFIX) or path.startswith("/oauth/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not self.sandbox.account.valid_access(token):
            response = error(401, "invalid_token", "invalid_token", "The access token provided is invalid")
        elif (period := self.sandbox.take_request(time.monotonic())) is not None:
            limit = self.sandbox.per_second if period == "second" else self.sandbox.per_day
            response = error(
                429,
                "TOO_MANY_REQUESTS",
                "Limite de requisições atingido.",
                f"O limite de requisições por {'segundo' if period == 'second' else 'dia'} foi atingido.",
                limit=limit,
                period=period,
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


# ---------------------------------------------------------------------------- OAuth


def _basic_client(request: Request) -> tuple[str, str] | None:
    value = request.headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret


async def oauth_authorize(request: Request) -> Response:
    """The consent page, accepted at once: redirects to ``redirect_uri`` with a fresh code."""
    sandbox: BlingSandbox = request.app.state.sandbox
    if request.query_params.get("client_id") != sandbox.account.client_id:
        return error(400, "invalid_client", "unknown client_id")
    code = sandbox.account.issue_code()
    state = request.query_params.get("state", "")
    redirect = request.query_params.get("redirect_uri")
    if redirect:
        return RedirectResponse(f"{redirect}?code={code}&state={state}", status_code=302)
    return JSONResponse({"code": code, "state": state})


async def oauth_token(request: Request) -> Response:
    sandbox: BlingSandbox = request.app.state.sandbox
    account = sandbox.account
    if not sandbox.take_token_call(time.monotonic()):
        return error(429, "TOO_MANY_REQUESTS", "IP bloqueado", "Too many token requests: blocked for an hour")
    client = _basic_client(request)
    if client is None or not (
        hmac.compare_digest(client[0], account.client_id)
        and hmac.compare_digest(client[1], account.client_secret)
    ):
        return error(401, "invalid_client", "Invalid client credentials")
    # application/x-www-form-urlencoded, parsed by hand: no multipart support needed.
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    try:
        grant = account.exchange(form.get("grant_type", ""), form.get("code"), form.get("refresh_token"))
    except Refused as exc:
        return refused(exc)
    expires_in = int(account.access_ttl.total_seconds())
    body = {
        "access_token": grant.access,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": "",
        "refresh_token": grant.refresh,
    }
    if sandbox.timeout_after_write():
        # The rotation happened; the answer is lost on the way back (a crash or a dropped line).
        await asyncio.sleep(sandbox.faults.timeout_after_write_ms / 1000)
        return error(504, "SERVER_ERROR", "Gateway Timeout")
    return JSONResponse(body)


# ---------------------------------------------------------------------------- hooks


def _stock_items(body: Any) -> list[dict[str, Any]]:
    items = body if isinstance(body, list) else [body]
    for i, item in enumerate(items):
        where = f"[{i}]" if isinstance(body, list) else "body"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object")
        if not isinstance(item.get("sku"), str) or not item["sku"]:
            raise ValueError(f"{where}: sku must be a non-empty string")
        units = item.get("on_hand")
        if not isinstance(units, int) or isinstance(units, bool) or units < 0:
            raise ValueError(f"{where}: on_hand must be a non-negative integer")
        if "deposit" in item and not isinstance(item["deposit"], int):
            raise ValueError(f"{where}: deposit must be a deposit id")
    return items


def stock_rows(account: BlingAccount) -> list[dict[str, Any]]:
    rows = []
    for product in sorted(account.products.values(), key=lambda p: p.codigo):
        fisico, virtual = account.totals(product.id)
        deposits = {str(d): account.balance(product.id, d)[0] for d in account.deposits}
        rows.append(
            {
                "sku": product.codigo,
                "on_hand": virtual,
                "physical": fisico,
                "deposits": deposits,
                "id": product.id,
            }
        )
    return rows


async def hook_stock(request: Request) -> Response:
    """``GET``: every product's on-hand (virtual total), physical total and per-deposit balances;
    ``POST`` ``{"sku", "on_hand", "deposit"?}`` (or a list): set balances as a seller would."""
    account = request.app.state.sandbox.account
    if request.method == "POST":
        try:
            try:
                body = await request.json()
            except ValueError as exc:
                raise ValueError("body is not valid JSON") from exc
            for item in _stock_items(body):
                account.set_stock(item["sku"], item["on_hand"], item.get("deposit"))
        except (ValueError, Refused) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(stock_rows(account))


async def hook_seed(request: Request) -> Response:
    account = request.app.state.sandbox.account
    try:
        body = await read_json_object(request)
        entries = body.get("items")
        if not isinstance(entries, list):
            raise ValueError("'items' must be a list")
        items = _stock_items(
            [
                {"sku": e.get("sku"), "on_hand": e.get("quantity")} if isinstance(e, dict) else e
                for e in entries
            ]
        )
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    for item in items:
        account.set_stock(item["sku"], item["on_hand"])
    return JSONResponse({"seeded": len(items)}, status_code=201)


async def hook_orders(request: Request) -> Response:
    """``GET``: every sales order; ``POST {"sku", "quantity"}``: an order placed in Bling itself
    (say, a marketplace Bling imports), which reserves stock until posted."""
    account: BlingAccount = request.app.state.sandbox.account
    if request.method == "POST":
        try:
            body = await read_json_object(request)
            product = account.by_code(str(body.get("sku")))
            units = body.get("quantity", 1)
            if product is None or not isinstance(units, int) or units < 1:
                raise ValueError("body must be {'sku': a known SKU, 'quantity': positive int}")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        order = account.create_order(
            f"bling-{uuid.uuid4().hex[:8]}", None, 1, [(product.id, units)], external=True
        )
        return JSONResponse({"id": order.id}, status_code=201)
    return JSONResponse(
        [
            {
                "id": o.id,
                "numeroLoja": o.numero_loja,
                "loja": o.loja_id,
                "items": [{"sku": account.products[p].codigo, "quantity": q} for p, q in o.items],
                "posted_deposit": o.posted_deposit,
                "reversed": o.reversed,
            }
            for o in account.orders.values()
        ]
    )


async def hook_code(request: Request) -> Response:
    """A fresh authorization code, as if the seller had just clicked "allow"."""
    return JSONResponse({"code": request.app.state.sandbox.account.issue_code()}, status_code=201)


async def hook_faults(request: Request) -> Response:
    return await faults_endpoint(request, request.app.state.sandbox.faults)


async def hook_stats(request: Request) -> Response:
    sandbox: BlingSandbox = request.app.state.sandbox
    return JSONResponse(
        {
            "calls": dict(sandbox.calls),
            "used_today": sandbox.used_today,
            "movements": len(sandbox.account.movements),
            "webhooks_delivered": sandbox.webhooks.delivered if sandbox.webhooks else 0,
        }
    )


def create_app(
    *,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",
    deposits: dict[int, str] | None = None,
    webhook_url: str | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    faults: BlingFaults | None = None,
    per_second: int = 3,
    per_day: int = 120_000,
    access_ttl: timedelta = timedelta(hours=6),
    seed: int | None = None,
    now: Any = None,
) -> Starlette:
    """Build a Bling sandbox for one account (``client_id``/``client_secret`` of its app)."""
    account = BlingAccount(client_id, client_secret, access_ttl=access_ttl, deposits=deposits or {1: "Geral"})
    if now is not None:
        account.now = now
    faults = faults or BlingFaults()
    rng = random.Random(seed)
    sandbox = BlingSandbox(account, faults, per_second=per_second, per_day=per_day, rng=rng)
    if webhook_url:
        sender = BlingWebhookSender(webhook_url, client_secret, faults, rng, transport=webhook_transport)
        sandbox.webhooks = sender
        account.listeners.append(
            lambda event, product, _d, data: sender.stock_event(account, event, product, data)
        )
    routes = [
        *api_routes(),
        Route("/oauth/authorize", oauth_authorize, methods=["GET"]),
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route(HOOK_PREFIX + "/stock", hook_stock, methods=["GET", "POST"]),
        Route(HOOK_PREFIX + "/seed", hook_seed, methods=["POST"]),
        Route(HOOK_PREFIX + "/orders", hook_orders, methods=["GET", "POST"]),
        Route(HOOK_PREFIX + "/oauth/code", hook_code, methods=["POST"]),
        Route(HOOK_PREFIX + "/faults", hook_faults, methods=["GET", "POST"]),
        Route(HOOK_PREFIX + "/stats", hook_stats, methods=["GET"]),
    ]
    middleware = [
        Middleware(
            FaultInjector,
            faults=faults,
            calls=sandbox.calls,
            rng=rng,
            error_response=error(500, "SERVER_ERROR", "Erro interno (injected)"),
            throttle_response=error(
                429, "TOO_MANY_REQUESTS", "Limite de requisições atingido.", limit=per_second, period="second"
            ),
        ),
        Middleware(AccountGate, sandbox=sandbox),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=webhook_lifespan(sandbox.webhooks))
    app.state.sandbox = sandbox
    app.state.webhooks = sandbox.webhooks
    return app
