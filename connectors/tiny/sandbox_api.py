"""The Tiny sandbox's API routes (``/public-api/v3``) and OAuth endpoints, over its Account.

Error answers use Tiny's envelope: ``{"mensagem": ..., "detalhes": [{"campo", "mensagem"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from connectors.sandbox_kit import Faults, read_json_object
from connectors.tiny.sandbox_account import Account, Order
from connectors.tiny.wire import parse_time

MAX_LIMIT = 100


@dataclass
class TinyFaults(Faults):
    """Besides the common faults: a write applied whose answer never comes (the client times out
    after ``timeout_after_write_ms``, or at once a 504 when it is 0), and 200 bodies cut in half."""

    timeout_after_write_rate: float = 0.0
    timeout_after_write_ms: float = 0.0
    truncate_rate: float = 0.0


def error(status: int, message: str, details: list[tuple[str, str]] | None = None) -> JSONResponse:
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


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class SandboxApi:
    def __init__(self, sandbox: TinySandbox):
        self.s = sandbox
        self.account = sandbox.account

    def _denied(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.account.access_valid(token.strip()):
            return None
        return error(401, "Token de acesso inválido ou expirado.")

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
                return error(504, "Gateway Timeout")
        return response

    def _order(self, request: Request) -> Order | Response:
        order = self.account.orders.get(request.path_params["id"])
        return order if order is not None else error(404, "Pedido não encontrado.")

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
            return error(400, str(exc))

    async def stock(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        product = self.account.products.get(request.path_params["id"])
        if product is None:
            return error(404, "Produto não encontrado.")
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
            return error(400, str(exc))

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
            return error(400, str(exc))
        problems: list[tuple[str, str]] = []
        contact = body.get("idContato")
        if not positive_int(contact):
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
                if not positive_int(pid) or pid not in self.account.products:
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
            return error(400, "Erro de validação", problems)
        ecommerce_id = shop.get("id") if isinstance(shop, dict) and positive_int(shop.get("id")) else None
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
            return error(400, "Erro de validação", [("situacao", str(exc))])
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
            return error(400, str(exc))
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

        def oautherror(status: int, error: str, description: str) -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, status_code=status)

        client, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if t.clients.get(client) != secret or not secret:
            return oautherror(401, "invalid_client", "Invalid client or Invalid client credentials")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            entry = t.codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[2] <= self.account.clock() or entry[0] != client:
                return oautherror(400, "invalid_grant", "Code not valid")
            if entry[1] != form.get("redirect_uri"):
                return oautherror(400, "invalid_grant", "Incorrect redirect_uri")
        elif grant == "refresh_token":
            if not self.account.use_refresh(str(form.get("refresh_token", ""))):
                return oautherror(400, "invalid_grant", "Token is not active")
        else:
            return oautherror(400, "unsupported_grant_type", "Unsupported grant_type")
        self.s.calls["tokens_issued"] += 1
        return JSONResponse(self.account.issue_tokens(), headers={"Cache-Control": "no-store"})
