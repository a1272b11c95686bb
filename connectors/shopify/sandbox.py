"""A Shopify Admin GraphQL stand-in (``/admin/api/{version}/graphql.json``) for the demo, the
end-to-end tests and the benchmarks, with Shopify's cost bucket and THROTTLED answers.

Hooks under ``/_sandbox`` (unauthenticated, never fault-injected):

- ``POST /_sandbox/seed`` ``{"items": [{"sku", "quantity", "parent"?, "tracked"?}]}``: variants,
  grouped into one product per ``parent``.
- ``GET /_sandbox/listings`` / ``POST /_sandbox/listings`` ``{"sku", "quantity", "location"?}``:
  read the ``available`` quantities (summed over the locations; ``locations`` lists them per
  location gid when an item is stocked at more than the primary one), or edit one (at the primary
  location, the others set to 0, unless ``location`` names the one to set) as the merchant would
  in the Shopify admin.
- ``GET /_sandbox/locations`` / ``POST /_sandbox/locations`` ``{"id": int, "name"}``: the shop's
  locations (the primary one, ``gid://shopify/Location/1``, first), or add one. A seeded item's
  ``locations`` ``{gid: units}`` stocks it at more locations (adding those not known yet).
- ``POST /_sandbox/purchase`` ``{"sku", "quantity"}``: a shopper's order (201 ``{"order_id"}``,
  409 when the shown quantity is too low, 404 for an unknown SKU); webhook ``orders/create``.
- ``POST /_sandbox/orders/{id}/cancel``: cancel and restock; webhook ``orders/cancelled``.
- ``GET /_sandbox/bulk/{id}.jsonl``: results of a finished bulk query (the ``url`` it reports).
- ``GET /_sandbox/changes?since=<iso>``: every change of a shown quantity with its true cause.
- ``GET|POST /_sandbox/faults``, ``GET /_sandbox/stats``.
"""

from __future__ import annotations

import hmac
import random
import time
from collections import Counter
from collections.abc import Callable
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
    listing_args,
    read_json_object,
    webhook_lifespan,
)
from connectors.shopify.sandbox_api import Api, Call, operation_name
from connectors.shopify.sandbox_shop import LOCATION_GID, GraphQLFailure, Shop, Variant
from connectors.shopify.sandbox_webhooks import WebhookSender

SHOP_DOMAIN = "syncd-sandbox.myshopify.com"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


class Bucket:
    """Shopify's leaky bucket of query cost points for one app on one shop."""

    def __init__(self, size: float, restore_rate: float, clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.restore_rate = restore_rate
        self._clock = clock
        self._level = size
        self._at = clock()

    def available(self) -> float:
        now = self._clock()
        self._level = min(self.size, self._level + (now - self._at) * self.restore_rate)
        self._at = now
        return self._level

    def spend(self, points: float) -> None:
        self._level = self.available() - points

    def cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.size,
                "currentlyAvailable": int(self.available()),
                "restoreRate": self.restore_rate,
            },
        }


class _GraphQL:
    """The one API route: token check, cost bucket, then the operation by name."""

    def __init__(self, api: Api, bucket: Bucket, access_token: str):
        self.api = api
        self.bucket = bucket
        self._token = access_token.encode()

    async def handle(self, request: Request) -> Response:
        given = request.headers.get("x-shopify-access-token", "").encode()
        if not given or not hmac.compare_digest(given, self._token):
            return JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
        try:
            body = await read_json_object(request)
        except ValueError as exc:
            return JSONResponse({"errors": str(exc)}, status_code=400)
        variables = body.get("variables") or {}
        query = body.get("query")
        if not isinstance(query, str) or not isinstance(variables, dict):
            return JSONResponse({"errors": "query must be a string and variables an object"}, status_code=400)
        name = operation_name(body)
        operation = self.api.operations.get(name or "")
        if operation is None:
            return _failure(
                GraphQLFailure(f"The sandbox does not implement operation {name!r}", "undefinedField")
            )
        call = Call(
            query=query,
            variables=variables,
            version=request.path_params["version"],
            files_url=str(request.base_url).rstrip("/") + "/_sandbox/bulk",
        )
        requested = operation.requested(call)
        if requested > self.bucket.available():
            throttled = {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
            return JSONResponse(
                {"errors": [throttled], "extensions": {"cost": self.bucket.cost(requested, None)}}
            )
        try:
            data, actual = operation.run(call)
        except GraphQLFailure as failure:
            self.bucket.spend(1)
            return _failure(failure, self.bucket.cost(requested, 1))
        self.bucket.spend(actual)
        return JSONResponse({"data": data, "extensions": {"cost": self.bucket.cost(requested, actual)}})


def _listing(variant: Variant) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "sku": variant.sku,
        "quantity": variant.shown,
        "inventory_item_id": f"gid://shopify/InventoryItem/{variant.item_id}",
    }
    if variant.levels:
        levels = {LOCATION_GID: variant.available} if variant.available is not None else {}
        shown["locations"] = levels | variant.levels
    return shown


def _failure(failure: GraphQLFailure, cost: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"errors": [{"message": failure.message, "extensions": {"code": failure.code}}]}
    if cost is not None:
        body["extensions"] = {"cost": cost}
    return JSONResponse(body)


class _Hooks(SandboxHooks):
    """The ``/_sandbox`` routes: seeding, shoppers, merchant edits, bulk files, faults, statistics."""

    def __init__(
        self, api: Api, bucket: Bucket, faults: Faults, calls: Counter[str], webhooks: WebhookSender | None
    ):
        super().__init__(faults, calls, api.shop.journal)
        self.api = api
        self.shop = api.shop
        self.bucket = bucket
        self.webhooks = webhooks

    def extra_routes(self) -> list[BaseRoute]:
        return [
            Route("/_sandbox/bulk/{id:int}.jsonl", self.bulk_file, methods=["GET"]),
            Route("/_sandbox/locations", self.locations, methods=["GET", "POST"]),
        ]

    def seed_items(self, entries: list[dict[str, Any]]) -> int:
        return self.shop.seed(entries)

    async def listings(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await read_json_object(request)
                sku, quantity = listing_args(body)
                location = body.get("location")
                if location is not None and (
                    not isinstance(location, str) or location not in self.shop.locations
                ):
                    raise ValueError(f"unknown location {location!r}; known: {sorted(self.shop.locations)}")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            variant = self.shop.by_sku(sku)
            if variant is None:
                return JSONResponse({"error": "unknown_sku", "sku": sku}, status_code=404)
            with self.journal.acting("manual_edit"):
                if location is not None:
                    self.shop.set_available(variant, quantity, track=True, location=location)
                else:
                    self.shop.set_shown(variant, quantity)
        return JSONResponse(
            [_listing(v) for v in self.shop.variants.values() if v.tracked and v.shown is not None]
        )

    async def locations(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await read_json_object(request)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            ident, name = body.get("id"), body.get("name")
            if (
                not isinstance(ident, int)
                or isinstance(ident, bool)
                or ident < 1
                or not isinstance(name, str)
            ):
                return JSONResponse({"error": "body must be {'id': int, 'name': str}"}, status_code=400)
            self.shop.add_location(f"gid://shopify/Location/{ident}", name)
        return JSONResponse([{"id": ref, "name": name} for ref, name in self.shop.locations.items()])

    def place_order(self, request: Request, sku: str, quantity: int) -> str:
        order = self.shop.purchase(sku, quantity)
        self._notify("orders/create", self.shop.order_rest(order))
        return str(order.id)

    def cancel_order(self, request: Request, order_id: int) -> dict[str, Any] | None:
        order = self.shop.orders.get(order_id)
        if order is None:
            return None
        if self.shop.cancel(order):
            self._notify("orders/cancelled", self.shop.order_rest(order))
        return self.shop.order_rest(order)

    async def bulk_file(self, request: Request) -> Response:
        content = self.api.bulk_file(request.path_params["id"])
        if content is None:
            return JSONResponse({"error": "unknown_or_unfinished_bulk_operation"}, status_code=404)
        return Response(content, media_type="application/jsonl")

    def stats_body(self) -> dict[str, Any]:
        bucket = {
            "maximumAvailable": self.bucket.size,
            "currentlyAvailable": self.bucket.available(),
            "restoreRate": self.bucket.restore_rate,
        }
        return {"calls": dict(self.calls), "bucket": bucket}

    def _notify(self, topic: str, payload: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.emit(topic, payload)


def create_app(
    *,
    access_token: str,
    api_version: str = "2026-10",
    webhook_url: str | None = None,
    webhook_secret: str = "",
    faults: Faults | None = None,
    bucket_size: float = 1000,
    restore_rate: float = 100.0,
    seed: int | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """A fresh sandbox shop. ``api_version`` is the version webhooks are sent in (requests may use
    any version in their path); ``webhook_transport`` routes deliveries in-process (tests)."""
    faults = faults if faults is not None else Faults()
    rng = random.Random(seed)
    calls: Counter[str] = Counter()
    api = Api(Shop())
    bucket = Bucket(bucket_size, restore_rate)
    webhooks = (
        WebhookSender(webhook_url, webhook_secret, api_version, SHOP_DOMAIN, faults, rng, webhook_transport)
        if webhook_url
        else None
    )

    injector = Middleware(
        FaultInjector,
        faults=faults,
        calls=calls,
        rng=rng,
        error_response=JSONResponse({"errors": "Internal Server Error"}, status_code=500),
        throttle_response=JSONResponse(
            {
                "errors": "Exceeded the rate limit for this shop. Reduce request rates to resume uninterrupted service."
            },
            status_code=429,
            headers={"Retry-After": "1"},
        ),
    )
    graphql = _GraphQL(api, bucket, access_token)
    app = Starlette(
        routes=[
            Route("/admin/api/{version}/graphql.json", graphql.handle, methods=["POST"]),
            *_Hooks(api, bucket, faults, calls, webhooks).routes(),
        ],
        middleware=[injector],
        lifespan=webhook_lifespan(webhooks),
    )
    app.state.shop = api.shop
    app.state.bucket = bucket
    app.state.webhooks = webhooks
    return app
