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

import asyncio
import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.sandbox_kit import HOOK_PREFIX, FaultInjector, Faults, faults_endpoint, read_json_object
from connectors.tiny.sandbox_account import Account, Order
from connectors.tiny.wire import CANCELLED, parse_time

API = "/public-api/v3"
AUTH = "/realms/tiny/protocol/openid-connect"
MAX_LIMIT = 100


@dataclass
class TinyFaults(Faults):
    """Besides the common faults: a write applied whose answer never comes (the client times out
    after ``timeout_after_write_ms``, or at once a 504 when it is 0), and 200 bodies cut in half."""

    timeout_after_write_rate: float = 0.0
    timeout_after_write_ms: float = 0.0
    truncate_rate: float = 0.0


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
            response = _error(429, "Limite de requisições atingido, tente novamente mais tarde.")
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


def _error(status: int, message: str, details: list[tuple[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"mensagem": message}
    if details:
        body["detalhes"] = [{"campo": c, "mensagem": m} for c, m in details]
    return JSONResponse(body, status_code=status)


@dataclass
class TinySandbox:
    """The Python handle on a running sandbox (``app.state.sandbox``), for tests and the demo."""

    account: Account
    faults: TinyFaults
    calls: Counter[str]
    rng: random.Random


def create_app(
    *,
    client_id: str = "syncd-demo",
    client_secret: str = "syncd-demo-secret",
    requests_per_minute: int = 60,
    faults: TinyFaults | None = None,
    seed: int | None = None,
    account: Account | None = None,
) -> Starlette:
    """A sandbox account with one app registered (``client_id``/``client_secret``)."""
    account = account or Account()
    account.tokens.clients[client_id] = client_secret
    sandbox = TinySandbox(account, faults or TinyFaults(), Counter(), random.Random(seed))
    api = _Api(sandbox)
    hooks = _Hooks(sandbox)
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
    throttled = _error(429, "Limite de requisições atingido, tente novamente mais tarde.")
    throttled.headers.update(_limit_headers(requests_per_minute, 0, 5))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                FaultInjector,
                faults=sandbox.faults,
                calls=sandbox.calls,
                rng=sandbox.rng,
                error_response=_error(500, "Erro interno do servidor."),
                throttle_response=throttled,
            ),
            Middleware(MinuteLimit, account=account, per_minute=requests_per_minute, counter=sandbox.calls),
        ],
    )
    app.state.sandbox = sandbox
    return app


# ---------------------------------------------------------------------------- helpers


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.lstrip("-").isdigit() else low - 1
    if value < low or (high is not None and value > high):
        bounds = f"entre {low} e {high}" if high is not None else f"a partir de {low}"
        raise ValueError(f"o parâmetro '{name}' deve ser um inteiro {bounds}")
    return value


def _page(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0)
    return {
        "itens": items[offset : offset + limit],
        "paginacao": {"limit": limit, "offset": offset, "total": len(items)},
    }


def _whole(value: Any) -> Any:
    """A float that holds a whole number, as an int (the demo and tests compare with ints)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class _Api:
    def __init__(self, sandbox: TinySandbox):
        self.s = sandbox
        self.account = sandbox.account

    def _denied(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.account.access_valid(token.strip()):
            return None
        return _error(401, "Token de acesso inválido ou expirado.")

    def _answer(self, payload: Any, status: int = 200) -> Response:
        body = json.dumps(payload).encode()
        faults = self.s.faults
        if faults.truncate_rate and self.s.rng.random() < faults.truncate_rate:
            body = body[: len(body) // 2]
        return Response(body, status_code=status, media_type="application/json")

    async def _after_write(self, response: Response) -> Response:
        """A write is applied; maybe its answer is lost (time-out) as the fault says."""
        faults = self.s.faults
        if faults.timeout_after_write_rate and self.s.rng.random() < faults.timeout_after_write_rate:
            self.s.calls["writes_unanswered"] += 1
            if faults.timeout_after_write_ms:
                await asyncio.sleep(faults.timeout_after_write_ms / 1000)
            else:
                return _error(504, "Gateway Timeout")
        return response

    def _order(self, request: Request) -> Order | Response:
        order = self.account.orders.get(request.path_params["id"])
        return order if order is not None else _error(404, "Pedido não encontrado.")

    async def products(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        q = request.query_params
        items = sorted(self.account.products.values(), key=lambda p: p.id)
        try:
            if (code := q.get("codigo")) is not None:
                items = [p for p in items if p.sku == code]
            if (situacao := q.get("situacao")) is not None:
                if situacao not in ("A", "I", "E"):
                    raise ValueError("o parâmetro 'situacao' deve ser A, I ou E")
                items = [p for p in items if p.situacao == situacao]
            if (since := q.get("dataAlteracao")) is not None:
                try:
                    when = parse_time(since)
                except ValueError:
                    raise ValueError(
                        "o parâmetro 'dataAlteracao' deve ser como 2024-01-31 09:30:00"
                    ) from None
                items = [p for p in items if p.changed.replace(microsecond=0) >= when]
            return self._answer(_page(request, [self.account.listing(p) for p in items]))
        except ValueError as exc:
            return _error(400, str(exc))

    async def stock(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        product = self.account.products.get(request.path_params["id"])
        if product is None:
            return _error(404, "Produto não encontrado.")
        return self._answer(self.account.balance(product))

    async def orders(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        items = sorted(self.account.orders.values(), key=lambda o: o.id)
        if (number := request.query_params.get("numeroPedidoEcommerce")) is not None:
            items = [o for o in items if o.ecommerce_number == number]
        try:
            if request.query_params.get("situacao") is not None:
                situacao = _int_param(request, "situacao", 0, 0, 9)
                items = [o for o in items if o.situacao == situacao]
            listed = [
                {k: v for k, v in self.account.order_json(o).items() if k not in ("itens", "estoqueLancado")}
                for o in items
            ]
            return self._answer(_page(request, listed))
        except ValueError as exc:
            return _error(400, str(exc))

    async def order(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        order = self._order(request)
        return order if isinstance(order, Response) else self._answer(self.account.order_json(order))

    async def create_order(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        try:
            body = await read_json_object(request)
        except ValueError as exc:
            return _error(400, str(exc))
        problems: list[tuple[str, str]] = []
        contact = body.get("idContato")
        if not _positive_int(contact):
            problems.append(("idContato", "Campo obrigatório: o identificador do contato"))
        raw_items = body.get("itens")
        items: list[tuple[int, float]] = []
        if not isinstance(raw_items, list) or not raw_items:
            problems.append(("itens", "O pedido deve ter ao menos um item"))
        else:
            for i, raw in enumerate(raw_items):
                produto = raw.get("produto") if isinstance(raw, dict) else None
                pid = produto.get("id") if isinstance(produto, dict) else None
                qty = raw.get("quantidade") if isinstance(raw, dict) else None
                if not _positive_int(pid) or pid not in self.account.products:
                    problems.append((f"itens[{i}].produto.id", "Produto não encontrado"))
                elif not isinstance(qty, int | float) or isinstance(qty, bool) or qty <= 0:
                    problems.append((f"itens[{i}].quantidade", "A quantidade deve ser maior que zero"))
                else:
                    items.append((pid, float(qty)))
        shop = body.get("ecommerce") or {}
        number = shop.get("numeroPedidoEcommerce") if isinstance(shop, dict) else None
        if number is not None and not isinstance(number, str):
            problems.append(("ecommerce.numeroPedidoEcommerce", "Deve ser um texto"))
        deposit = (body.get("deposito") or {}).get("id") if isinstance(body.get("deposito"), dict) else None
        if deposit is not None and deposit not in self.account.deposits:
            problems.append(("deposito.id", "Depósito não encontrado"))
        if problems or not isinstance(contact, int):
            return _error(400, "Erro de validação", problems)
        ecommerce_id = shop.get("id") if isinstance(shop, dict) and _positive_int(shop.get("id")) else None
        order = self.account.create_order(contact, items, number, ecommerce_id, deposit)
        return await self._after_write(self._answer({"id": order.id, "numeroPedido": str(order.numero)}))

    async def situacao(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        order = self._order(request)
        if isinstance(order, Response):
            return order
        try:
            body = await read_json_object(request)
            value = body.get("situacao")
            if not isinstance(value, int) or isinstance(value, bool) or value not in range(10):
                raise ValueError("situacao deve ser um dos valores 0 a 9")
            self.account.set_situacao(order, value)
        except ValueError as exc:
            return _error(400, "Erro de validação", [("situacao", str(exc))])
        return await self._after_write(Response(status_code=204))

    async def post_stock(self, request: Request) -> Response:
        return await self._stock_action(request, reverse=False)

    async def reverse_stock(self, request: Request) -> Response:
        return await self._stock_action(request, reverse=True)

    async def _stock_action(self, request: Request, *, reverse: bool) -> Response:
        if denied := self._denied(request):
            return denied
        order = self._order(request)
        if isinstance(order, Response):
            return order
        try:
            (self.account.reverse_stock if reverse else self.account.post_stock)(order)
        except ValueError as exc:
            return _error(400, str(exc))
        return Response(status_code=204)

    async def authorize(self, request: Request) -> Response:
        """The seller logs in and consents (at once, here); back to the app with a code."""
        q = request.query_params
        client, redirect = q.get("client_id", ""), q.get("redirect_uri", "")
        if client not in self.account.tokens.clients or not redirect or q.get("response_type") != "code":
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "client_id, redirect_uri, response_type=code",
                },
                status_code=400,
            )
        code = self.account.issue_code(client, redirect)
        back = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return RedirectResponse(
            f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(back)}", status_code=302
        )

    async def token(self, request: Request) -> Response:
        # A form body (application/x-www-form-urlencoded), read without python-multipart.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        t = self.account.tokens

        def oauth_error(status: int, error: str, description: str) -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, status_code=status)

        client, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if t.clients.get(client) != secret or not secret:
            return oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            entry = t.codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[2] <= self.account.clock() or entry[0] != client:
                return oauth_error(400, "invalid_grant", "Code not valid")
            if entry[1] != form.get("redirect_uri"):
                return oauth_error(400, "invalid_grant", "Incorrect redirect_uri")
        elif grant == "refresh_token":
            if not self.account.use_refresh(str(form.get("refresh_token", ""))):
                return oauth_error(400, "invalid_grant", "Token is not active")
        else:
            return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
        self.s.calls["tokens_issued"] += 1
        return JSONResponse(self.account.issue_tokens(), headers={"Cache-Control": "no-store"})


class _Hooks:
    """``/_sandbox`` routes: never authenticated, faulted or rate-limited."""

    def __init__(self, sandbox: TinySandbox):
        self.s = sandbox
        self.account = sandbox.account

    def routes(self) -> list[Route]:
        return [
            Route(HOOK_PREFIX + "/stock", self.stock, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/seed", self.seed, methods=["POST"]),
            Route(HOOK_PREFIX + "/orders", self.orders, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/oauth/code", self.code, methods=["POST"]),
            Route(HOOK_PREFIX + "/oauth/expire", self.expire, methods=["POST"]),
            Route(HOOK_PREFIX + "/oauth/settings", self.oauth_settings, methods=["POST"]),
            Route(HOOK_PREFIX + "/faults", self.faults, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/stats", self.stats, methods=["GET"]),
        ]

    def _stock_rows(self) -> list[dict[str, Any]]:
        rows = []
        for p in sorted(self.account.products.values(), key=lambda p: p.sku):
            b = self.account.balance(p)
            rows.append(
                {
                    "sku": p.sku,
                    "id": p.id,
                    "on_hand": _whole(b["disponivel"]),
                    "saldo": b["saldo"],
                    "reservado": b["reservado"],
                    "depositos": b["depositos"],
                }
            )
        return rows

    def _set(self, entries: Any, quantity_key: str) -> int:
        entries = entries if isinstance(entries, list) else [entries]
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("sku"), str) or not e["sku"]:
                raise ValueError(f"[{i}] must be an object with a non-empty 'sku'")
            qty = e.get(quantity_key, e.get("on_hand"))  # on_hand: the name the demo's hooks use
            if not isinstance(qty, int | float) or isinstance(qty, bool):
                raise ValueError(f"[{i}].{quantity_key} must be a number")
            deposit = e.get("deposit")
            if deposit is not None and not _positive_int(deposit):
                raise ValueError(f"[{i}].deposit must be a deposit id")
            self.account.set_stock(e["sku"], float(qty), deposit)
        return len(entries)

    async def stock(self, request: Request) -> Response:
        """GET: every SKU's balance (``on_hand`` is disponivel). POST ``{sku, quantity, deposit?}``
        (or a list): set saldo, as an edit in Tiny would."""
        if request.method == "POST":
            try:
                self._set(await request.json(), "quantity")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self._stock_rows())

    async def seed(self, request: Request) -> Response:
        """``{"items": [{sku, quantity, deposit?}], "deposits": [{id, nome, desconsiderar?}]}``."""
        try:
            body = await read_json_object(request)
            for i, d in enumerate(body.get("deposits") or []):
                if (
                    not isinstance(d, dict)
                    or not _positive_int(d.get("id"))
                    or not isinstance(d.get("nome"), str)
                ):
                    raise ValueError(f"deposits[{i}] must be {{'id': int, 'nome': str}}")
                self.account.add_deposit(d["id"], d["nome"], d.get("desconsiderar") is True)
            count = self._set(body.get("items") or [], "quantity")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"seeded": count}, status_code=201)

    async def orders(self, request: Request) -> Response:
        """GET: every order. POST ``{sku, quantity, numeroPedidoEcommerce?}``: an order another
        sales channel integrated with Tiny creates (it reserves stock)."""
        if request.method == "POST":
            try:
                body = await read_json_object(request)
                product = self.account.product_by_sku(str(body.get("sku")))
                qty = body.get("quantity", 1)
                if product is None:
                    raise ValueError("unknown sku")
                if not isinstance(qty, int) or qty < 1:
                    raise ValueError("'quantity' must be a positive integer")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            order = self.account.create_order(
                1, [(product.id, float(qty))], body.get("numeroPedidoEcommerce"), None, None
            )
            return JSONResponse(self.account.order_json(order), status_code=201)
        return JSONResponse([self.account.order_json(o) for o in self.account.orders.values()])

    async def code(self, request: Request) -> Response:
        """An authorisation code, as if the seller had approved the app: ``{client_id, redirect_uri}``."""
        body = await read_json_object(request)
        client = body.get("client_id")
        if client not in self.account.tokens.clients:
            return JSONResponse({"error": "unknown client_id"}, status_code=400)
        return JSONResponse({"code": self.account.issue_code(str(client), str(body.get("redirect_uri", "")))})

    async def expire(self, request: Request) -> Response:
        return JSONResponse({"expired": self.account.expire_access_tokens()})

    async def oauth_settings(self, request: Request) -> Response:
        """``{revoke_used?: bool, access_lifetime?: s, refresh_lifetime?: s}``."""
        body = await read_json_object(request)
        t = self.account.tokens
        if "revoke_used" in body:
            t.revoke_used = body["revoke_used"] is True
        for name in ("access_lifetime", "refresh_lifetime"):
            if name in body:
                if not _positive_int(body[name]):
                    return JSONResponse({"error": f"{name} must be a positive integer"}, status_code=400)
                setattr(t, name, body[name])
        return JSONResponse(
            {
                "revoke_used": t.revoke_used,
                "access_lifetime": t.access_lifetime,
                "refresh_lifetime": t.refresh_lifetime,
            }
        )

    async def faults(self, request: Request) -> Response:
        return await faults_endpoint(request, self.s.faults)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "calls": dict(self.s.calls),
                "faults": asdict(self.s.faults),
                "orders": len(self.account.orders),
                "cancelled": sum(o.situacao == CANCELLED for o in self.account.orders.values()),
            }
        )
