"""The mock ERP as a Starlette app: the REST API syncd's MockErpConnector talks to, plus test hooks.

API (Bearer auth, fault-injected): ``GET /api/v1/stock``, ``GET /api/v1/warehouses``,
``POST /api/v1/movements``, ``GET /api/v1/imported-orders``. Hooks under ``/_sandbox`` (no auth,
never faulted): ``stock``, ``seed``, ``faults``, ``stats``, ``movements``, ``imported-orders``.
Serve it with ``uvicorn.run(create_app(api_key=...))``.

Warehouses: stock is kept per warehouse (``main`` unless a hook names another, which creates
it); a stock item's ``on_hand`` is the sum and ``warehouses`` the units in each. A movement may
name the ``warehouses`` it takes from, in order (a compensation goes to the first); without them
it takes from every warehouse, ``main`` first.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.mock_erp.database import DEFAULT_WAREHOUSE, ErpDatabase, MovementIn
from connectors.sandbox_kit import FaultInjector, Faults, faults_endpoint, read_json_object

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
MAX_MOVEMENTS = 500
MAX_REFS = 200
MAX_TEXT = 255


@dataclass
class ErpSandbox:
    """The Python handle on a running mock ERP (``app.state.sandbox``), for tests and the demo."""

    api_key: str
    db: ErpDatabase
    faults: Faults
    calls: Counter[str] = field(default_factory=Counter)

    def close(self) -> None:
        self.db.close()


def create_app(
    *, api_key: str, db_path: str = ":memory:", faults: Faults | None = None, seed: int | None = None
) -> Starlette:
    """Build a mock ERP app over the SQLite database at ``db_path`` (in memory by default)."""
    sandbox = ErpSandbox(api_key=api_key, db=ErpDatabase(db_path), faults=faults or Faults())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.close()

    routes = [
        Route("/api/v1/stock", get_stock, methods=["GET"]),
        Route("/api/v1/warehouses", get_warehouses, methods=["GET"]),
        Route("/api/v1/movements", post_movements, methods=["POST"]),
        Route("/api/v1/imported-orders", get_imported_orders, methods=["GET"]),
        Route("/_sandbox/stock", hook_stock, methods=["GET", "POST"]),
        Route("/_sandbox/seed", hook_seed, methods=["POST"]),
        Route("/_sandbox/faults", hook_faults, methods=["GET", "POST"]),
        Route("/_sandbox/stats", hook_stats, methods=["GET"]),
        Route("/_sandbox/movements", hook_movements, methods=["GET"]),
        Route("/_sandbox/imported-orders", hook_imported_orders, methods=["POST"]),
    ]
    injector = Middleware(
        FaultInjector,
        faults=sandbox.faults,
        calls=sandbox.calls,
        rng=random.Random(seed),
        error_response=_error(500, "internal_error", "Injected server error."),
        throttle_response=_error(429, "rate_limited", "Too many requests.", headers={"Retry-After": "1"}),
    )
    app = Starlette(
        routes=routes,
        middleware=[injector],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app


# ---------------------------------------------------------------------------- helpers


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _bad_request(message: str) -> JSONResponse:
    return _error(400, "bad_request", message)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, error, str(exc.detail))


def _sandbox(request: Request) -> ErpSandbox:
    sandbox: ErpSandbox = request.app.state.sandbox
    return sandbox


def _unauthorized(request: Request) -> JSONResponse | None:
    """The 401 answer when the request lacks the right Bearer token, else None."""
    given = request.headers.get("authorization", "").encode()
    expected = f"Bearer {_sandbox(request).api_key}".encode()
    if hmac.compare_digest(given, expected):
        return None
    return _error(401, "unauthorized", "Missing or invalid API key (Authorization: Bearer <key>).")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(obj: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = obj.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_TEXT:
        rule = "a non-empty string" if required else "a string"
        raise ValueError(f"{where}.{name} must be {rule} of at most {MAX_TEXT} characters")
    return value


def _count(obj: dict[str, Any], name: str, where: str) -> int:
    value = obj.get(name)
    if not _is_int(value) or value < 0:
        raise ValueError(f"{where}.{name} must be a non-negative integer")
    return int(value)


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"query parameter '{name}' must be an integer {bounds}")
    return value


def _encode_token(after: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode()


def _decode_token(token: str) -> int:
    prefix, after = "", -1
    try:
        prefix, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        after = int(number)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    if prefix != "after" or after < 0:
        raise ValueError("query parameter 'page_token' is not a token this API issued")
    return after


def _stock_items(body: Any) -> dict[str, list[tuple[str, int]]]:
    """Validate a ``/_sandbox/stock`` body: one ``{"sku", "on_hand", "warehouse"?}`` object or a
    list of them; the items by warehouse."""
    entries = body if isinstance(body, list) else [body]
    items: dict[str, list[tuple[str, int]]] = {}
    for i, entry in enumerate(entries):
        where = f"[{i}]" if isinstance(body, list) else "body"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object with 'sku' and 'on_hand'")
        warehouse = _text(entry, "warehouse", where, required=False) or DEFAULT_WAREHOUSE
        items.setdefault(warehouse, []).append((_text(entry, "sku", where), _count(entry, "on_hand", where)))
    return items


def _movements(body: dict[str, Any]) -> list[MovementIn]:
    entries = body.get("movements")
    if not isinstance(entries, list):
        raise ValueError("'movements' must be a list")
    if len(entries) > MAX_MOVEMENTS:
        raise ValueError(f"'movements' holds {len(entries)} entries; at most {MAX_MOVEMENTS} per request")
    movements = []
    for i, entry in enumerate(entries):
        where = f"movements[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        delta = entry.get("delta")
        if not _is_int(delta):
            raise ValueError(f"{where}.delta must be an integer")
        warehouses = entry.get("warehouses", [])
        if not isinstance(warehouses, list) or not all(isinstance(w, str) and w for w in warehouses):
            raise ValueError(f"{where}.warehouses must be a list of warehouse names")
        movements.append(
            MovementIn(
                key=_text(entry, "key", where),
                sku=_text(entry, "sku", where),
                delta=delta,
                reason=_text(entry, "reason", where),
                reference=_text(entry, "reference", where, required=False),
                warehouses=tuple(warehouses),
            )
        )
    return movements


# ---------------------------------------------------------------------------- API


async def get_stock(request: Request) -> Response:
    if denied := _unauthorized(request):
        return denied
    try:
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        after = _int_param(request, "since", 0, 0)
        token = request.query_params.get("page_token")
        if token is not None:
            after = _decode_token(token)
    except ValueError as exc:
        return _bad_request(str(exc))
    page = await run_in_threadpool(_sandbox(request).db.changes, after, limit)
    items = [asdict(row) for row in page.rows]
    next_token = _encode_token(page.rows[-1].seq) if page.has_more else None
    return JSONResponse({"items": items, "cursor": str(page.latest_seq), "next_page_token": next_token})


async def get_warehouses(request: Request) -> Response:
    if denied := _unauthorized(request):
        return denied
    names = await run_in_threadpool(_sandbox(request).db.warehouses)
    return JSONResponse({"warehouses": [{"name": name} for name in names]})


async def post_movements(request: Request) -> Response:
    if denied := _unauthorized(request):
        return denied
    try:
        movements = _movements(await read_json_object(request))
    except ValueError as exc:
        return _bad_request(str(exc))
    acknowledged, rejected = await run_in_threadpool(_sandbox(request).db.apply_movements, movements)
    return JSONResponse(
        {"acknowledged": acknowledged, "rejected": [{"key": k, "reason": r} for k, r in rejected]}
    )


async def get_imported_orders(request: Request) -> Response:
    if denied := _unauthorized(request):
        return denied
    raw = request.query_params.get("refs")
    if raw is None:
        return _bad_request("query parameter 'refs' is required (comma-separated order references)")
    refs = [r for r in raw.split(",") if r]
    if len(refs) > MAX_REFS:
        return _bad_request(f"query parameter 'refs' holds {len(refs)} references; at most {MAX_REFS}")
    imported = await run_in_threadpool(_sandbox(request).db.imported, refs)
    return JSONResponse({"imported": imported})


# ---------------------------------------------------------------------------- test hooks


async def hook_stock(request: Request) -> Response:
    db = _sandbox(request).db
    if request.method == "POST":
        try:
            try:
                body = await request.json()
            except ValueError as exc:
                raise ValueError("body is not valid JSON") from exc
            items = _stock_items(body)
        except ValueError as exc:
            return _bad_request(str(exc))
        rows = []
        for warehouse, group in items.items():
            rows.extend(await run_in_threadpool(db.set_stock, group, warehouse))
        return JSONResponse({"updated": [asdict(row) for row in rows]})
    stock = await run_in_threadpool(db.stock)
    levels = await run_in_threadpool(db.levels)
    return JSONResponse([_stock_json(sku, on_hand, levels.get(sku, {})) for sku, on_hand in stock.items()])


def _stock_json(sku: str, on_hand: int, levels: dict[str, int]) -> dict[str, Any]:
    """A SKU as the hooks show it; ``warehouses`` only once it is stocked beyond the default one."""
    shown: dict[str, Any] = {"sku": sku, "on_hand": on_hand}
    if set(levels) - {DEFAULT_WAREHOUSE}:
        shown["warehouses"] = levels
    return shown


async def hook_seed(request: Request) -> Response:
    try:
        body = await read_json_object(request)
        entries = body.get("items")
        if not isinstance(entries, list):
            raise ValueError("'items' must be a list")
        items: dict[str, list[tuple[str, int]]] = {}
        for i, entry in enumerate(entries):
            where = f"items[{i}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} must be an object with 'sku' and 'quantity'")
            warehouse = _text(entry, "warehouse", where, required=False) or DEFAULT_WAREHOUSE
            items.setdefault(warehouse, []).append(
                (_text(entry, "sku", where), _count(entry, "quantity", where))
            )
    except ValueError as exc:
        return _bad_request(str(exc))
    seeded = 0
    for warehouse, group in items.items():
        seeded += len(await run_in_threadpool(_sandbox(request).db.set_stock, group, warehouse))
    return JSONResponse({"seeded": seeded})


async def hook_faults(request: Request) -> Response:
    return await faults_endpoint(request, _sandbox(request).faults)


async def hook_stats(request: Request) -> Response:
    return JSONResponse({"calls": dict(_sandbox(request).calls)})


async def hook_movements(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(_sandbox(request).db.movements))


async def hook_imported_orders(request: Request) -> Response:
    """Make the ERP report these orders as imported, as an ERP that pulls channel orders would."""
    try:
        refs = (await read_json_object(request)).get("refs")
        if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
            raise ValueError("'refs' must be a list of non-empty strings")
    except ValueError as exc:
        return _bad_request(str(exc))
    await run_in_threadpool(_sandbox(request).db.mark_imported, refs)
    return JSONResponse({"imported": len(refs)})
