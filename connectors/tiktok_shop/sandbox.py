"""A TikTok Shop Open API (202309) stand-in for the demo, end-to-end tests and benchmarks.

Every API call is checked as TikTok checks it: ``app_key``, a ``timestamp`` within 5 minutes, the
``sign`` (code 106001 when wrong), the ``x-tts-access-token`` header (105002 when expired),
``shop_cipher``, and a QPS limit (36009002 when exceeded). Errors are envelopes
``{code, message, request_id, data}`` answered with HTTP 200, as TikTok does.

Hooks under ``/_sandbox`` (unsigned, never fault-injected):

- ``POST /_sandbox/seed`` ``{"items": [{"sku", "quantity", "parent"?, "warehouses"?}]}``: SKUs
  sharing a ``parent`` are SKUs of one product; ``warehouses`` maps warehouse ids to units.
  ``GET /logistics/202309/warehouses`` lists the default warehouse and every one seeded.
- ``GET /_sandbox/listings`` / ``POST /_sandbox/listings`` ``{"sku", "quantity" | "warehouses"}``:
  read stock (quantity = sum over warehouses), or edit it as the seller would in Seller Center
  (a bare quantity goes to the first warehouse, the others to 0).
- ``POST /_sandbox/purchase`` ``{"sku", "quantity"}``: a shopper's order of one line item per unit
  (201 ``{"order_id"}``; 409 when the shown quantity is too low; 404 for an unknown SKU).
- ``POST /_sandbox/orders/{id}/cancel``: cancel an order and restore its stock.
- ``POST /_sandbox/tokens/expire``: expire every access token (the next call answers 105002).
- ``GET /_sandbox/changes?since=<iso>``: every change of a shown quantity with its true cause.
- ``GET|POST /_sandbox/faults``, ``GET /_sandbox/stats``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox_kit import (
    FaultInjector,
    Faults,
    SandboxHooks,
    read_json_object,
    webhook_lifespan,
)
from connectors.tiktok_shop.sandbox_shop import (
    BAD_REQUEST_AUTH,
    BAD_SIGN,
    INVALID_PARAMS,
    ORDER_STATUSES,
    THROTTLED,
    TOKEN_EXPIRED,
    Shop,
    TtsError,
)
from connectors.tiktok_shop.sandbox_webhooks import WebhookSender
from connectors.tiktok_shop.signing import TOKEN_HEADER, request_sign

TIMESTAMP_WINDOW = 300
ACCESS_TTL = 7 * 86400
REFRESH_TTL = 365 * 86400
MAX_INVENTORY_SKUS = 600
MAX_INVENTORY_PRODUCTS = 100

Handler = Callable[[Request, bytes], Awaitable[Response]]


def envelope(code: int, message: str, data: Any = None, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": secrets.token_hex(16)}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status_code=status)


def ok(data: Any) -> JSONResponse:
    return envelope(0, "Success", data)


class _QpsLimit:
    """A token bucket of ``qps`` calls per second shared by every API route."""

    def __init__(self, qps: float, clock: Callable[[], float] = time.monotonic):
        self.qps = qps
        self._clock = clock
        self._tokens = max(1.0, qps)
        self._updated = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(max(1.0, self.qps), self._tokens + (now - self._updated) * self.qps)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _Api:
    """The Open API routes; each handler answers TikTok's envelope for any TtsError it raises."""

    def __init__(self, shop: Shop, app_key: str, app_secret: str, shop_cipher: str, qps: float):
        self.shop = shop
        self.app_key = app_key
        self.app_secret = app_secret
        self.shop_cipher = shop_cipher
        self.qps = _QpsLimit(qps)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/product/202309/products/search", self._guard(self.search_products), methods=["POST"]),
            Route("/product/202309/products/{id}", self._guard(self.get_product), methods=["GET"]),
            Route("/product/202309/inventory/search", self._guard(self.search_inventory), methods=["POST"]),
            Route(
                "/product/202309/products/{id}/inventory/update",
                self._guard(self.update_inventory),
                methods=["POST"],
            ),
            Route("/logistics/202309/warehouses", self._guard(self.warehouses), methods=["GET"]),
            Route("/order/202309/orders/search", self._guard(self.search_orders), methods=["POST"]),
            Route("/order/202309/orders", self._guard(self.get_orders), methods=["GET"]),
            Route("/api/v2/token/refresh", self.refresh_token, methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            body = await request.body()
            try:
                self._check(request, body)
                return await handler(request, body)
            except TtsError as error:
                return envelope(error.code, error.message)

        return guarded

    def _check(self, request: Request, body: bytes) -> None:
        params = request.query_params
        if params.get("app_key") != self.app_key:
            raise TtsError(BAD_REQUEST_AUTH, "Invalid app_key.")
        given = params.get("sign")
        if not given:
            raise TtsError(BAD_REQUEST_AUTH, "Missing sign.")
        timestamp = params.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - self.shop.clock()) > TIMESTAMP_WINDOW:
            raise TtsError(BAD_REQUEST_AUTH, "Invalid timestamp: it must be within 5 minutes of server time.")
        expected = request_sign(
            self.app_secret,
            request.url.path,
            params.multi_items(),
            body,
            request.headers.get("content-type", ""),
        )
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise TtsError(BAD_SIGN, "Invalid signature.")
        token = request.headers.get(TOKEN_HEADER, "")
        expires = self.shop.access_tokens.get(token)
        if expires is None:
            raise TtsError(BAD_REQUEST_AUTH, "Invalid access token.")
        if expires <= self.shop.clock():
            raise TtsError(TOKEN_EXPIRED, "Access token is expired.")
        if params.get("shop_cipher") != self.shop_cipher:
            raise TtsError(BAD_REQUEST_AUTH, "Invalid shop_cipher.")
        if not self.qps.allow():
            raise TtsError(THROTTLED, "Too many requests. Please try again later.")

    # ------------------------------------------------------------------ products

    async def search_products(self, request: Request, raw: bytes) -> Response:
        body = _json(raw)
        products = sorted(self.shop.products.values(), key=lambda p: int(p.id))
        status = body.get("status")
        if status is not None and status != "ALL":
            products = [p for p in products if p.status == status]
        seller_skus = body.get("seller_skus")
        if seller_skus is not None:
            if not isinstance(seller_skus, list):
                raise TtsError(INVALID_PARAMS, "seller_skus must be an array.")
            wanted = set(seller_skus)
            products = [p for p in products if any(self.shop.skus[s].seller_sku in wanted for s in p.sku_ids)]
        for name, later in (("update_time_ge", True), ("update_time_le", False)):
            if name in body:
                bound = _int(body[name], name)
                products = [p for p in products if (p.updated >= bound if later else p.updated <= bound)]
        rows, following = _page(request, products)
        return ok(
            {
                "products": [self.shop.product_json(p) for p in rows],
                "next_page_token": following,
                "total_count": len(products),
            }
        )

    async def get_product(self, request: Request, raw: bytes) -> Response:
        product = self.shop.products.get(request.path_params["id"])
        if product is None:
            raise TtsError(12052048, "Product does not exist.")
        return ok(self.shop.product_json(product))

    async def search_inventory(self, request: Request, raw: bytes) -> Response:
        body = _json(raw)
        product_ids, sku_ids = body.get("product_ids"), body.get("sku_ids")
        if (product_ids is None) == (sku_ids is None):
            raise TtsError(INVALID_PARAMS, "Give exactly one of product_ids and sku_ids.")
        if sku_ids is not None:
            if not isinstance(sku_ids, list) or not 1 <= len(sku_ids) <= MAX_INVENTORY_SKUS:
                raise TtsError(INVALID_PARAMS, f"sku_ids must hold 1 to {MAX_INVENTORY_SKUS} ids.")
            skus = [self.shop.skus[s] for s in dict.fromkeys(sku_ids) if s in self.shop.skus]
        else:
            if not isinstance(product_ids, list) or not 1 <= len(product_ids) <= MAX_INVENTORY_PRODUCTS:
                raise TtsError(INVALID_PARAMS, f"product_ids must hold 1 to {MAX_INVENTORY_PRODUCTS} ids.")
            skus = [
                self.shop.skus[s]
                for p in dict.fromkeys(product_ids)
                if p in self.shop.products
                for s in self.shop.products[p].sku_ids
            ]
        return ok({"inventory": self.shop.inventory_json(skus)})

    async def update_inventory(self, request: Request, raw: bytes) -> Response:
        body = _json(raw)
        entries = body.get("skus")
        if not isinstance(entries, list) or not entries:
            raise TtsError(INVALID_PARAMS, "skus is required.")
        errors = self.shop.update_inventory(request.path_params["id"], entries)
        return ok({"errors": errors} if errors else {})

    async def warehouses(self, request: Request, raw: bytes) -> Response:
        return ok({"warehouses": self.shop.warehouses_json()})

    # ------------------------------------------------------------------ orders

    async def search_orders(self, request: Request, raw: bytes) -> Response:
        body = _json(raw)
        params = request.query_params
        orders = list(self.shop.orders.values())
        status = body.get("order_status")
        if status is not None:
            if status not in ORDER_STATUSES:
                raise TtsError(INVALID_PARAMS, f"order_status must be one of {', '.join(ORDER_STATUSES)}.")
            orders = [o for o in orders if o.status == status]
        for name, attribute, later in (
            ("create_time_ge", "created", True),
            ("create_time_lt", "created", False),
            ("update_time_ge", "updated", True),
            ("update_time_lt", "updated", False),
        ):
            if name in body:
                bound = _int(body[name], name)
                orders = [
                    o
                    for o in orders
                    if (getattr(o, attribute) >= bound if later else getattr(o, attribute) < bound)
                ]
        field = params.get("sort_field", "create_time")
        if field not in ("create_time", "update_time"):
            raise TtsError(INVALID_PARAMS, "sort_field must be create_time or update_time.")
        order = params.get("sort_order", "DESC")
        if order not in ("ASC", "DESC"):
            raise TtsError(INVALID_PARAMS, "sort_order must be ASC or DESC.")
        attribute = "created" if field == "create_time" else "updated"
        orders.sort(key=lambda o: (getattr(o, attribute), int(o.id)), reverse=order == "DESC")
        rows, following = _page(request, orders)
        return ok(
            {
                "orders": [self.shop.order_json(o) for o in rows],
                "next_page_token": following,
                "total_count": len(orders),
            }
        )

    async def get_orders(self, request: Request, raw: bytes) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 50:
            raise TtsError(INVALID_PARAMS, "ids must hold 1 to 50 order ids.")
        orders = [self.shop.orders[i] for i in ids if i in self.shop.orders]
        return ok({"orders": [self.shop.order_json(o) for o in orders]})

    # ------------------------------------------------------------------ tokens

    async def refresh_token(self, request: Request) -> Response:
        params = request.query_params
        if params.get("app_key") != self.app_key or not hmac.compare_digest(
            params.get("app_secret", "").encode(), self.app_secret.encode()
        ):
            return envelope(BAD_REQUEST_AUTH, "Invalid app_key or app_secret.")
        if params.get("grant_type") != "refresh_token":
            return envelope(INVALID_PARAMS, "grant_type must be refresh_token.")
        refresh = params.get("refresh_token", "")
        expires = self.shop.refresh_tokens.get(refresh)
        if expires is None or expires <= self.shop.clock():
            return envelope(BAD_REQUEST_AUTH, "Invalid or expired refresh_token.")
        # The old refresh token is spent: only the new pair works from now on.
        del self.shop.refresh_tokens[refresh]
        access, new_refresh = self.shop.issue_tokens(ACCESS_TTL, REFRESH_TTL)
        return ok(
            {
                "access_token": access,
                "access_token_expire_in": int(self.shop.access_tokens[access]),
                "refresh_token": new_refresh,
                "refresh_token_expire_in": int(self.shop.refresh_tokens[new_refresh]),
                "open_id": "sandbox-open-id",
                "seller_name": "Sandbox Seller",
                "seller_base_region": "US",
                "user_type": 0,
            }
        )


def _json(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TtsError(INVALID_PARAMS, "Request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise TtsError(INVALID_PARAMS, "Request body must be a JSON object.")
    return body


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TtsError(INVALID_PARAMS, f"{name} must be an integer.")
    return value


def _page(request: Request, rows: list[Any]) -> tuple[list[Any], str]:
    """One page of ``rows`` and the token of the next ("" at the end), from page_size/page_token."""
    params = request.query_params
    size = params.get("page_size", "")
    if not size.isdigit() or not 1 <= int(size) <= 100:
        raise TtsError(INVALID_PARAMS, "page_size is required and must be between 1 and 100.")
    offset = 0
    token = params.get("page_token", "")
    if token:
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise TtsError(INVALID_PARAMS, "Invalid page_token.") from exc
    end = offset + int(size)
    following = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(rows) else ""
    return rows[offset:end], following


class _Hooks(SandboxHooks):
    """The ``/_sandbox`` routes: seeding, shoppers, manual edits, tokens, faults and statistics."""

    cancel_path = "/_sandbox/orders/{id}/cancel"

    def __init__(self, shop: Shop, faults: Faults, calls: Counter[str], webhooks: WebhookSender | None):
        super().__init__(faults, calls, shop.journal)
        self.shop = shop
        self.webhooks = webhooks

    def extra_routes(self) -> list[BaseRoute]:
        return [Route("/_sandbox/tokens/expire", self.expire_tokens, methods=["POST"])]

    def seed_items(self, entries: list[dict[str, Any]]) -> int:
        return self.shop.seed(entries)

    async def listings(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await read_json_object(request)
                sku = body.get("sku")
                if not isinstance(sku, str):
                    raise ValueError("body must be {'sku': str, 'quantity': int} or {'sku', 'warehouses'}")
                item = self.shop.by_seller_sku(sku)
                if item is None:
                    return JSONResponse({"error": "unknown_sku", "sku": sku}, status_code=404)
                stock = _edited_stock(item.stock, body)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            with self.journal.acting("manual_edit"):
                self.shop.set_stock(item, stock)
        shown = [
            {"sku": sku.seller_sku, "quantity": sku.total, "warehouses": dict(sku.stock)}
            for sku in self.shop.skus.values()
        ]
        return JSONResponse(shown)

    def place_order(self, request: Request, sku: str, quantity: int) -> str:
        order = self.shop.purchase(sku, quantity)
        if self.webhooks is not None:
            self.webhooks.order_status_change(order.id, order.status, order.updated)
        return order.id

    def cancel_order(self, request: Request, order_id: str) -> dict[str, Any] | None:
        order = self.shop.orders.get(order_id)
        if order is None:
            return None
        if self.shop.cancel(order) and self.webhooks is not None:
            self.webhooks.order_status_change(order.id, order.status, order.updated)
        return self.shop.order_json(order)

    async def expire_tokens(self, request: Request) -> Response:
        self.shop.expire_access_tokens()
        return JSONResponse({"expired": len(self.shop.access_tokens)})


def _edited_stock(current: dict[str, int], body: dict[str, Any]) -> dict[str, int]:
    warehouses = body.get("warehouses")
    if warehouses is not None:
        if not isinstance(warehouses, dict) or not all(
            isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in warehouses.values()
        ):
            raise ValueError("'warehouses' must map warehouse ids to non-negative units")
        return {**current, **warehouses}
    quantity = body.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise ValueError("'quantity' must be a non-negative integer")
    first = next(iter(current))
    return {w: quantity if w == first else 0 for w in current}


async def _not_found(request: Request, exc: Exception) -> Response:
    return envelope(INVALID_PARAMS, "Path not found.", status=404)


def create_app(
    *,
    app_key: str,
    app_secret: str,
    access_token: str,
    refresh_token: str,
    shop_cipher: str,
    webhook_url: str | None = None,
    faults: Faults | None = None,
    qps: float = 50.0,
    seed: int | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """A fresh sandbox shop that accepts the given credentials.

    ``webhook_transport`` routes deliveries in-process (tests); ``clock`` is the server's time.
    """
    faults = faults if faults is not None else Faults()
    rng = random.Random(seed)
    calls: Counter[str] = Counter()
    shop = Shop(clock)
    shop.access_tokens[access_token] = clock() + ACCESS_TTL
    shop.refresh_tokens[refresh_token] = clock() + REFRESH_TTL
    webhooks = (
        WebhookSender(webhook_url, app_key, app_secret, faults, rng, webhook_transport)
        if webhook_url
        else None
    )

    injector = Middleware(
        FaultInjector,
        faults=faults,
        calls=calls,
        rng=rng,
        error_response=envelope(36009003, "Internal error, please try again later.", status=500),
        throttle_response=envelope(THROTTLED, "Too many requests. Please try again later."),
    )
    app = Starlette(
        routes=[
            *_Api(shop, app_key, app_secret, shop_cipher, qps).routes(),
            *_Hooks(shop, faults, calls, webhooks).routes(),
        ],
        middleware=[injector],
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=webhook_lifespan(webhooks),
    )
    app.state.shop = shop
    app.state.webhooks = webhooks
    return app
