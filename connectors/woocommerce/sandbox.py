"""A WooCommerce REST v3 stand-in (``/wp-json/wc/v3``) for the demo, end-to-end tests and benchmarks.

Hooks under ``/_sandbox`` (unauthenticated, never fault-injected):

- ``POST /_sandbox/seed`` ``{"items": [{"sku", "quantity", "parent"?}]}``: simple products, or
  variations of the variable product whose SKU is ``parent``.
- ``GET /_sandbox/listings`` / ``POST /_sandbox/listings`` ``{"sku", "quantity"}``: read stock, or
  edit it as the seller would in the WooCommerce admin.
- ``POST /_sandbox/purchase`` ``{"sku", "quantity"}``: a shopper's order (201 ``{"order_id"}``,
  409 when the shown quantity is too low, 404 for an unknown SKU).
- ``POST /_sandbox/orders/{id}/cancel``: cancel an order and restore its stock.
- ``GET /_sandbox/changes?since=<iso>``: every change of a shown quantity with its true cause.
- ``GET|POST /_sandbox/faults``, ``GET /_sandbox/stats``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox_kit import (
    FaultInjector,
    Faults,
    SandboxHooks,
    listing_args,
    read_json_object,
    webhook_lifespan,
)
from connectors.woocommerce.sandbox_shop import (
    ORDER_STATUSES,
    Item,
    Shop,
    WooError,
    as_int,
    invalid_param,
)
from connectors.woocommerce.sandbox_webhooks import WebhookSender

API = "/wp-json/wc/v3"
BATCH_LIMIT = 100

Handler = Callable[[Request], Awaitable[Response]]


def woo_error(error: WooError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.status)


class _Api:
    """The REST routes; each handler answers WooCommerce's envelope for any WooError it raises."""

    def __init__(self, shop: Shop, consumer_key: str, consumer_secret: str):
        self.shop = shop
        self._key = consumer_key.encode()
        self._secret = consumer_secret.encode()

    def routes(self) -> list[BaseRoute]:
        write = ["PUT", "POST", "PATCH"]
        return [
            Route(f"{API}/products", self._guard(self.list_products), methods=["GET"]),
            Route(f"{API}/products/batch", self._guard(self.batch_products), methods=write),
            Route(f"{API}/products/{{id:int}}", self._guard(self.get_product), methods=["GET"]),
            Route(f"{API}/products/{{id:int}}", self._guard(self.update_product), methods=write),
            Route(
                f"{API}/products/{{pid:int}}/variations", self._guard(self.list_variations), methods=["GET"]
            ),
            Route(
                f"{API}/products/{{pid:int}}/variations/batch",
                self._guard(self.batch_variations),
                methods=write,
            ),
            Route(
                f"{API}/products/{{pid:int}}/variations/{{id:int}}",
                self._guard(self.get_variation),
                methods=["GET"],
            ),
            Route(
                f"{API}/products/{{pid:int}}/variations/{{id:int}}",
                self._guard(self.update_variation),
                methods=write,
            ),
            Route(f"{API}/orders", self._guard(self.list_orders), methods=["GET"]),
            Route(f"{API}/orders/{{id:int}}", self._guard(self.get_order), methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not self._authorised(request):
                return woo_error(
                    WooError("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
                )
            try:
                return await handler(request)
            except WooError as error:
                return woo_error(error)

        return guarded

    def _authorised(self, request: Request) -> bool:
        key = request.query_params.get("consumer_key", "").encode()
        secret = request.query_params.get("consumer_secret", "").encode()
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                key, _, secret = base64.b64decode(encoded, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
        return hmac.compare_digest(key, self._key) & hmac.compare_digest(secret, self._secret)

    # ------------------------------------------------------------------ products

    async def list_products(self, request: Request) -> Response:
        params = request.query_params
        items = self.shop.products()
        if "sku" in params:
            wanted = set(params["sku"].split(","))
            # WooCommerce also tries the whole value, for SKUs that contain commas.
            wanted.add(params["sku"])
            items = [item for item in self.shop.items.values() if item.sku and item.sku in wanted]
        if "type" in params:
            kind = params["type"]
            if kind not in ("simple", "grouped", "external", "variable"):
                raise invalid_param("type", "type is not one of simple, grouped, external, and variable.")
            items = [item for item in items if item.type == kind]
        items = _sorted(request, items, {"id": _by_id, "date": _by_created, "modified": _by_modified})
        return _paginated(request, items, self.shop.item_json)

    def _product(self, ident: int) -> Item:
        item = self.shop.items.get(ident)
        if item is None or item.type == "variation":
            raise WooError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return item

    def _variation(self, pid: int, ident: int, status: int = 404) -> Item:
        item = self.shop.items.get(ident)
        if item is None or item.parent_id != pid:
            raise WooError("woocommerce_rest_product_variation_invalid_id", "Invalid ID.", status)
        return item

    async def get_product(self, request: Request) -> Response:
        item = self._product(request.path_params["id"])
        return JSONResponse(self.shop.item_json(item))

    async def update_product(self, request: Request) -> Response:
        item = self._product(request.path_params["id"])
        fields = await _json_body(request)
        return JSONResponse(self.shop.item_json(self.shop.update(item, fields)))

    async def list_variations(self, request: Request) -> Response:
        items = self.shop.variations_of(request.path_params["pid"])
        items = _sorted(request, items, {"id": _by_id, "date": _by_created, "modified": _by_modified})
        return _paginated(request, items, self.shop.item_json)

    async def get_variation(self, request: Request) -> Response:
        item = self._variation(request.path_params["pid"], request.path_params["id"])
        return JSONResponse(self.shop.item_json(item))

    async def update_variation(self, request: Request) -> Response:
        item = self._variation(request.path_params["pid"], request.path_params["id"])
        fields = await _json_body(request)
        return JSONResponse(self.shop.item_json(self.shop.update(item, fields)))

    async def batch_products(self, request: Request) -> Response:
        def find(ident: Any) -> Item:
            item = self.shop.items.get(ident) if isinstance(ident, int) else None
            if item is None or item.type == "variation":
                raise WooError("woocommerce_rest_product_invalid_id", "Invalid ID.", 400)
            return item

        return await self._batch(request, find, lambda fields: self.shop.create(fields))

    async def batch_variations(self, request: Request) -> Response:
        pid = request.path_params["pid"]

        def find(ident: Any) -> Item:
            return self._variation(pid, ident if isinstance(ident, int) else -1, status=400)

        def create(fields: dict[str, Any]) -> Item:
            parent = self.shop.items.get(pid)
            if parent is None or parent.type != "variable":
                raise WooError("woocommerce_rest_product_invalid_id", "Invalid ID.", 400)
            return self.shop.create(fields, parent=parent)

        return await self._batch(request, find, create)

    async def _batch(
        self,
        request: Request,
        find: Callable[[Any], Item],
        create: Callable[[dict[str, Any]], Item],
    ) -> Response:
        body = await _json_body(request)
        actions = {name: body.get(name) or [] for name in ("create", "update", "delete")}
        for name, entries in actions.items():
            if not isinstance(entries, list):
                raise invalid_param(name, f"{name} is not of type array.")
        if sum(len(entries) for entries in actions.values()) > BATCH_LIMIT:
            raise WooError(
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {BATCH_LIMIT} items for this request.",
                413,
            )
        shop = self.shop
        answer: dict[str, list[dict[str, Any]]] = {}

        def outcome(ident: Any, work: Callable[[Any], dict[str, Any]], arg: Any) -> dict[str, Any]:
            try:
                return work(arg)
            except WooError as error:
                return {"id": ident, "error": error.envelope()}

        def do_create(fields: Any) -> dict[str, Any]:
            if not isinstance(fields, dict):
                raise invalid_param("create", "each item must be an object.")
            return shop.item_json(create(fields))

        def do_update(fields: Any) -> dict[str, Any]:
            if not isinstance(fields, dict):
                raise invalid_param("update", "each item must be an object.")
            return shop.item_json(shop.update(find(fields.get("id")), fields))

        def do_delete(ident: Any) -> dict[str, Any]:
            item = find(ident)
            shown = shop.item_json(item)
            shop.delete(item)
            return shown

        # Only the actions asked for appear in the answer; failures are items with an "error".
        if actions["create"]:
            answer["create"] = [outcome(0, do_create, f) for f in actions["create"]]
        if actions["update"]:
            answer["update"] = [
                outcome(f.get("id", 0) if isinstance(f, dict) else 0, do_update, f) for f in actions["update"]
            ]
        if actions["delete"]:
            answer["delete"] = [outcome(i, do_delete, i) for i in actions["delete"]]
        return JSONResponse(answer)

    # ------------------------------------------------------------------ orders

    async def list_orders(self, request: Request) -> Response:
        params = request.query_params
        orders = list(self.shop.orders.values())
        status = params.get("status", "any")
        if status != "any":
            wanted = set(status.split(","))
            unknown = wanted - set(ORDER_STATUSES)
            if unknown:
                raise invalid_param("status", f"status is not one of {', '.join(ORDER_STATUSES)}, any.")
            orders = [order for order in orders if order.status in wanted]
        for name, attribute, later in (
            ("after", "created", True),
            ("before", "created", False),
            ("modified_after", "modified", True),
            ("modified_before", "modified", False),
        ):
            if name in params:
                bound = _parse_date(params[name], name)
                # WordPress date queries exclude the bound itself.
                orders = [
                    order
                    for order in orders
                    if (getattr(order, attribute) > bound if later else getattr(order, attribute) < bound)
                ]
        orders = _sorted(
            request, orders, {"id": lambda o: (o.id,), "date": _by_created, "modified": _by_modified}
        )
        return _paginated(request, orders, self.shop.order_json)

    async def get_order(self, request: Request) -> Response:
        order = self.shop.orders.get(request.path_params["id"])
        if order is None:
            raise WooError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        return JSONResponse(self.shop.order_json(order))


def _by_id(item: Any) -> tuple[Any, ...]:
    return (item.id,)


def _by_created(item: Any) -> tuple[Any, ...]:
    return (item.created, item.id)


def _by_modified(item: Any) -> tuple[Any, ...]:
    return (item.modified, item.id)


def _sorted(
    request: Request, rows: list[Any], keys: dict[str, Callable[[Any], tuple[Any, ...]]]
) -> list[Any]:
    orderby = request.query_params.get("orderby", "date")
    order = request.query_params.get("order", "desc")
    if orderby not in keys:
        raise invalid_param("orderby", f"orderby is not one of {', '.join(keys)}.")
    if order not in ("asc", "desc"):
        raise invalid_param("order", "order is not one of asc, desc.")
    return sorted(rows, key=keys[orderby], reverse=order == "desc")


def _parse_date(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid_param(name, "Invalid date.") from exc
    # The site's timezone is UTC, so dates_are_gmt changes nothing here.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


T = TypeVar("T")


def _paginated(request: Request, rows: Sequence[T], render: Callable[[T], dict[str, Any]]) -> Response:
    """One page of ``rows``, rendered (only that page: rendering everything is quadratic)."""
    params = request.query_params
    per_page = as_int(params.get("per_page", "10"), "per_page")
    if not 1 <= per_page <= 100:
        raise invalid_param("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")
    page = as_int(params.get("page", "1"), "page")
    if page < 1:
        raise invalid_param("page", "page must be greater than or equal to 1")
    total = len(rows)
    pages = -(-total // per_page)
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    base = request.url.remove_query_params(["consumer_key", "consumer_secret"])
    links = []
    if 1 < page <= pages + 1:
        links.append(f'<{base.include_query_params(page=page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{base.include_query_params(page=page + 1)}>; rel="next"')
    if links:
        headers["Link"] = ", ".join(links)
    return JSONResponse(
        [render(row) for row in rows[(page - 1) * per_page : page * per_page]], headers=headers
    )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        return await read_json_object(request)
    except ValueError as exc:
        raise WooError("rest_invalid_json", "Invalid JSON body passed.", 400) from exc


class _Hooks(SandboxHooks):
    """The ``/_sandbox`` routes: seeding, shoppers, manual edits, faults and statistics."""

    def __init__(self, shop: Shop, faults: Faults, calls: Counter[str], webhooks: WebhookSender | None):
        super().__init__(faults, calls, shop.journal)
        self.shop = shop
        self.webhooks = webhooks

    def seed_items(self, entries: list[dict[str, Any]]) -> int:
        try:
            return self.shop.seed(entries)
        except WooError as exc:
            raise ValueError(str(exc)) from exc

    async def listings(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                sku, quantity = listing_args(await read_json_object(request))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            item = self.shop.by_sku(sku)
            if item is None or item.type == "variable":
                return JSONResponse({"error": "unknown_sku", "sku": sku}, status_code=404)
            with self.journal.acting("manual_edit"):
                self.shop.update(item, {"manage_stock": True, "stock_quantity": quantity})
        shown = [
            {"sku": item.sku, "quantity": item.stock_quantity}
            for item in self.shop.items.values()
            if item.stock_bearing
        ]
        return JSONResponse(shown)

    def place_order(self, request: Request, sku: str, quantity: int) -> int:
        order = self.shop.purchase(sku, quantity)
        self._notify("order.created", self.shop.order_json(order), request)
        return order.id

    def cancel_order(self, request: Request, order_id: int) -> dict[str, Any] | None:
        order = self.shop.orders.get(order_id)
        if order is None:
            return None
        if self.shop.cancel(order):
            self._notify("order.updated", self.shop.order_json(order), request)
        return self.shop.order_json(order)

    def _notify(self, topic: str, payload: dict[str, Any], request: Request) -> None:
        if self.webhooks is not None:
            self.webhooks.emit(topic, payload, source=str(request.base_url))


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "No route was found matching the URL and request method."
    return JSONResponse({"code": "rest_no_route", "message": message, "data": {"status": status}}, status)


def create_app(
    *,
    consumer_key: str,
    consumer_secret: str,
    webhook_url: str | None = None,
    webhook_secret: str = "",
    faults: Faults | None = None,
    seed: int | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """A fresh sandbox store. ``webhook_transport`` routes deliveries in-process (tests)."""
    faults = faults if faults is not None else Faults()
    rng = random.Random(seed)
    calls: Counter[str] = Counter()
    shop = Shop()
    webhooks = (
        WebhookSender(webhook_url, webhook_secret, faults, rng, webhook_transport) if webhook_url else None
    )

    injector = Middleware(
        FaultInjector,
        faults=faults,
        calls=calls,
        rng=rng,
        error_response=woo_error(
            WooError("internal_server_error", "There has been a critical error on this website.", 500)
        ),
        throttle_response=JSONResponse(
            WooError("woocommerce_rest_too_many_requests", "Too many requests.", 429).envelope(),
            status_code=429,
            headers={"Retry-After": "1"},
        ),
    )
    app = Starlette(
        routes=[
            *_Api(shop, consumer_key, consumer_secret).routes(),
            *_Hooks(shop, faults, calls, webhooks).routes(),
        ],
        middleware=[injector],
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=webhook_lifespan(webhooks),
    )
    app.state.shop = shop
    app.state.webhooks = webhooks
    return app
