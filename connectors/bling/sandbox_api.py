"""The Bling sandbox's API routes (paths, parameters and envelopes of Bling API v3)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.bling.sandbox_account import BlingAccount, Order, Refused

if TYPE_CHECKING:
    from connectors.bling.sandbox import BlingSandbox

BRASILIA = timezone(timedelta(hours=-3))
MAX_PAGE = 100


def _sandbox(request: Request) -> BlingSandbox:
    sandbox: BlingSandbox = request.app.state.sandbox
    return sandbox


def error(status: int, kind: str, message: str, description: str = "", **extra: Any) -> JSONResponse:
    """Bling's error envelope."""
    body: dict[str, Any] = {"type": kind, "message": message, "description": description or message}
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status)


def refused(exc: Refused) -> JSONResponse:
    return (
        error(exc.status, exc.kind, str(exc), fields=exc.fields)
        if exc.fields
        else error(exc.status, exc.kind, str(exc))
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refused("VALIDATION_ERROR", f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise Refused("VALIDATION_ERROR", f"{name} must be between {low} and {high}")
    return value


def _ids(request: Request, name: str, *, required: bool) -> list[int]:
    raw = request.query_params.getlist(name)
    if required and not raw:
        raise Refused("MISSING_REQUIRED_FIELD_ERROR", f"{name} is required")
    try:
        return [int(v) for v in raw]
    except ValueError:
        raise Refused("VALIDATION_ERROR", f"{name} must hold integer ids") from None


async def _write_timed_out(request: Request) -> Response | None:
    """After a write was applied: a 504 (the caller cannot tell whether it landed), if faulted."""
    sandbox = _sandbox(request)
    if not sandbox.timeout_after_write():
        return None
    await asyncio.sleep(sandbox.faults.timeout_after_write_ms / 1000)
    return error(504, "SERVER_ERROR", "Gateway Timeout")


def _handler(fn: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await fn(request)
        except Refused as exc:
            return refused(exc)
        return response

    return wrapped


async def get_produtos(request: Request) -> Response:
    account = _sandbox(request).account
    page = _int_param(request, "pagina", 1, 1)
    limit = _int_param(request, "limite", 100, 1, MAX_PAGE)
    products = sorted(account.products.values(), key=lambda p: p.id)
    since = request.query_params.get("dataAlteracaoInicial")
    if since is not None:
        try:
            start = datetime.strptime(since, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BRASILIA)
        except ValueError:
            raise Refused("VALIDATION_ERROR", "dataAlteracaoInicial must be 'YYYY-MM-DD HH:MM:SS'") from None
        products = [p for p in products if p.changed_at >= start]
    ids = set(_ids(request, "idsProdutos[]", required=False))
    if ids:
        products = [p for p in products if p.id in ids]
    codes = set(request.query_params.getlist("codigos[]"))
    if codes:
        products = [p for p in products if p.codigo in codes]
    chunk = products[(page - 1) * limit : page * limit]
    data = [
        {"id": p.id, "nome": p.nome, "codigo": p.codigo, "tipo": "P", "situacao": "A", "formato": "S"}
        for p in chunk
    ]
    return JSONResponse({"data": data})


async def get_depositos(request: Request) -> Response:
    account = _sandbox(request).account
    data = [
        {
            "id": d,
            "descricao": name,
            "situacao": 1,
            "padrao": d == account.default_deposit,
            "desconsiderarSaldo": False,
        }
        for d, name in account.deposits.items()
    ]
    return JSONResponse({"data": data})


def _saldo(account: BlingAccount, product_id: int, deposits: list[int]) -> dict[str, Any]:
    product = account.products[product_id]
    pairs = {d: account.balance(product_id, d) for d in deposits}
    return {
        "produto": {"id": product.id, "codigo": product.codigo},
        "saldoFisicoTotal": sum(p for p, _ in pairs.values()),
        "saldoVirtualTotal": sum(v for _, v in pairs.values()),
        "depositos": [{"id": d, "saldoFisico": p, "saldoVirtual": v} for d, (p, v) in pairs.items()],
    }


async def get_saldos(request: Request) -> Response:
    account = _sandbox(request).account
    ids = _ids(request, "idsProdutos[]", required=True)
    deposit = request.path_params.get("idDeposito")
    if deposit is not None and deposit not in account.deposits:
        raise Refused("RESOURCE_NOT_FOUND", f"Depósito {deposit} não encontrado", 404)
    deposits = [deposit] if deposit is not None else list(account.deposits)
    data = [_saldo(account, pid, deposits) for pid in dict.fromkeys(ids) if pid in account.products]
    return JSONResponse({"data": data})


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Refused("INVALID_REQUEST_BODY", "O corpo da requisição não é um JSON válido") from None
    if not isinstance(body, dict) or not body:
        raise Refused("EMPTY_REQUEST_BODY", "O corpo da requisição está vazio")
    return body


def _units(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or value != int(value):
        raise Refused("VALIDATION_ERROR", f"{where} must be a positive whole quantity")
    return int(value)


def _ref_id(body: dict[str, Any], name: str) -> int:
    ref = body.get(name)
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), int):
        raise Refused("MISSING_REQUIRED_FIELD_ERROR", f"{name}.id is required")
    value: int = ref["id"]
    return value


async def post_estoques(request: Request) -> Response:
    account = _sandbox(request).account
    body = await _body(request)
    product_id, deposit_id = _ref_id(body, "produto"), _ref_id(body, "deposito")
    operation = body.get("operacao")
    if operation not in ("B", "E", "S"):
        raise Refused("VALIDATION_ERROR", "operacao must be B, E or S")
    units = (
        _units(body.get("quantidade"), "quantidade") if operation != "B" else int(body.get("quantidade", 0))
    )
    movement = account.move(product_id, deposit_id, operation, units, str(body.get("observacoes", "")))
    return await _write_timed_out(request) or JSONResponse({"data": {"id": movement.id}}, status_code=201)


def _order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "numero": order.numero,
        "numeroLoja": order.numero_loja,
        "data": order.created_at.date().isoformat(),
        "dataSaida": order.created_at.date().isoformat(),
        "dataPrevista": order.created_at.date().isoformat(),
        "contato": {"id": order.contato_id},
        "situacao": {"id": 9 if order.posted_deposit is not None else 6, "valor": 1},
        "loja": {"id": order.loja_id or 0},
    }


async def get_vendas(request: Request) -> Response:
    account = _sandbox(request).account
    page = _int_param(request, "pagina", 1, 1)
    limit = _int_param(request, "limite", 100, 1, MAX_PAGE)
    numbers = set(request.query_params.getlist("numerosLojas[]"))
    store = request.query_params.get("idLoja")
    orders = sorted(account.orders.values(), key=lambda o: o.id)
    if numbers:
        orders = [o for o in orders if o.numero_loja in numbers]
    if store is not None:
        orders = [o for o in orders if str(o.loja_id or 0) == store]
    return JSONResponse({"data": [_order_json(o) for o in orders[(page - 1) * limit : page * limit]]})


async def post_vendas(request: Request) -> Response:
    account = _sandbox(request).account
    body = await _body(request)
    for name in ("data", "dataSaida", "dataPrevista"):
        if not isinstance(body.get(name), str):
            raise Refused("MISSING_REQUIRED_FIELD_ERROR", f"{name} is required")
    contato = _ref_id(body, "contato")
    items_in = body.get("itens")
    if not isinstance(items_in, list) or not items_in or not isinstance(body.get("parcelas"), list):
        raise Refused("MISSING_REQUIRED_FIELD_ERROR", "itens (not empty) and parcelas are required")
    items = []
    for i, item in enumerate(items_in):
        if not isinstance(item, dict):
            raise Refused("VALIDATION_ERROR", f"itens[{i}] must be an object")
        items.append((_ref_id(item, "produto"), _units(item.get("quantidade"), f"itens[{i}].quantidade")))
    loja = body.get("loja")
    loja_id = loja.get("id") if isinstance(loja, dict) and isinstance(loja.get("id"), int) else None
    order = account.create_order(str(body.get("numeroLoja", "")), loja_id, contato, items)
    return await _write_timed_out(request) or JSONResponse(
        {"data": {"id": order.id, "alertas": []}}, status_code=201
    )


async def lancar_estoque(request: Request) -> Response:
    account = _sandbox(request).account
    deposit = request.path_params.get("idDeposito")
    if deposit is not None and deposit not in account.deposits:
        raise Refused("RESOURCE_NOT_FOUND", f"Depósito {deposit} não encontrado", 404)
    account.post_order(request.path_params["idPedidoVenda"], deposit)
    return await _write_timed_out(request) or Response(status_code=204)


async def estornar_estoque(request: Request) -> Response:
    _sandbox(request).account.reverse_order(request.path_params["idPedidoVenda"])
    return await _write_timed_out(request) or Response(status_code=204)


def api_routes() -> list[Route]:
    return [
        Route("/produtos", _handler(get_produtos), methods=["GET"]),
        Route("/depositos", _handler(get_depositos), methods=["GET"]),
        Route("/estoques/saldos", _handler(get_saldos), methods=["GET"]),
        Route("/estoques/saldos/{idDeposito:int}", _handler(get_saldos), methods=["GET"]),
        Route("/estoques", _handler(post_estoques), methods=["POST"]),
        Route("/pedidos/vendas", _handler(get_vendas), methods=["GET"]),
        Route("/pedidos/vendas", _handler(post_vendas), methods=["POST"]),
        Route(
            "/pedidos/vendas/{idPedidoVenda:int}/lancar-estoque", _handler(lancar_estoque), methods=["POST"]
        ),
        Route(
            "/pedidos/vendas/{idPedidoVenda:int}/lancar-estoque/{idDeposito:int}",
            _handler(lancar_estoque),
            methods=["POST"],
        ),
        Route(
            "/pedidos/vendas/{idPedidoVenda:int}/estornar-estoque",
            _handler(estornar_estoque),
            methods=["POST"],
        ),
    ]
