"""The WooCommerce channel: REST v3 products, variations and orders, and signed order webhooks.

WooCommerce has no compare-and-set for stock, so updates are absolute ``stock_quantity`` writes
through the batch endpoints; drift from concurrent sales is left to syncd's reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors.base import (
    ChannelConnector,
    CircuitState,
    Listing,
    OrderLine,
    OrderPage,
    QuantityUpdate,
    Quarantined,
    UpdateResult,
    WebhookEvent,
)
from connectors.circuit import CircuitBreaker
from connectors.http import HttpClient, RateLimiter, RetryPolicy, json_body, paired_calls, urgent_calls
from connectors.limits import plausible_level, quarantine
from connectors.woocommerce.payloads import (
    DATE_FORMAT,
    Invalid,
    ProductView,
    parse_gmt,
    read_order,
    read_product,
    require_list,
    require_object,
)
from connectors.woocommerce.settings import WooCommerceSettings
from connectors.woocommerce.webhooks import parse_delivery
from syncd.errors import ProtocolError

log = structlog.get_logger("syncd.connectors.woocommerce")

API_PATH = "/wp-json/wc/v3"
# Far beyond any real catalogue (100 items a page): only a server that never ends paging gets here.
MAX_PAGES = 10_000
# SKUs per ?sku= lookup, and a bound on the joined value, so that URLs stay well below server limits.
SKU_CHUNK = 50
SKU_CHUNK_CHARS = 1500
# Product types without stock of their own.
NO_STOCK_TYPES = frozenset({"grouped", "external"})


class _QueryStringAuth(httpx.Auth):
    """The key pair as query parameters, for servers that strip the Authorization header."""

    def __init__(self, key: str, secret: str):
        self._params = {"consumer_key": key, "consumer_secret": secret}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params(self._params)
        yield request


class WooCommerceConnector(ChannelConnector):
    supports_compare_and_set = False
    max_batch = 100

    def __init__(
        self,
        settings: WooCommerceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        circuit: CircuitBreaker | None = None,
    ):
        self.name = settings.name
        self.settings = settings
        self._circuit = circuit or CircuitBreaker.for_settings(settings.name, settings)
        key = settings.consumer_key.get_secret_value()
        secret = settings.consumer_secret.get_secret_value()
        auth: httpx.Auth = (
            _QueryStringAuth(key, secret) if settings.query_string_auth else httpx.BasicAuth(key, secret)
        )
        self._http = HttpClient(
            settings.name,
            settings.base_url.rstrip("/") + API_PATH,
            auth=auth,
            timeout=settings.timeout.total_seconds(),
            rate_limiter=RateLimiter(settings.rate_limit, settings.burst),
            retry=RetryPolicy(attempts=settings.retry_attempts),
            transport=transport,
            sleep=sleep,
            circuit=self._circuit,
        )
        # Lowered when a server answers 413 (its batch limit can be filtered below 100).
        self._batch_limit = self.max_batch

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def circuit(self) -> CircuitState | None:
        return self._circuit.snapshot()

    # ------------------------------------------------------------------ reading

    async def _collect(self, path: str, params: Mapping[str, Any]) -> list[Any]:
        """Every row of a collection, following X-WP-TotalPages or, without it, until a short page."""
        per_page = int(params.get("per_page", 10))
        collected: list[Any] = []
        previous: list[Any] | None = None
        page = 1
        while True:
            response = await self._http.request("GET", path, params={**params, "page": page})
            rows = json_body(response, list, connector=self.name)
            ids = [row.get("id") if isinstance(row, dict) else None for row in rows]
            if rows and ids == previous:
                raise ProtocolError(
                    f"GET {path} returned page {page} twice (ignores 'page'?)", connector=self.name
                )
            previous = ids
            collected.extend(rows)
            total_pages = _total_pages(response.headers)
            if not rows or (page >= total_pages if total_pages is not None else len(rows) < per_page):
                return collected
            page += 1
            if page > MAX_PAGES:
                raise ProtocolError(f"GET {path} has more than {MAX_PAGES} pages", connector=self.name)

    def _protocol(self, where: str, exc: Invalid) -> ProtocolError:
        return ProtocolError(f"{where}: {exc}", connector=self.name)

    async def list_listings(self) -> list[Listing]:
        listings: dict[str, Listing] = {}

        def add(item: ProductView, ref: str) -> None:
            if not item.sku:
                return
            if item.sku in listings:
                log.warning("woocommerce.duplicate_sku", channel=self.name, sku=item.sku, ref=ref)
                return
            managed = item.manage_stock is True
            quantity = self._level(item) if managed else None
            listings[item.sku] = Listing(sku=item.sku, ref=ref, quantity=quantity, managed=managed)

        params = {"per_page": self.settings.per_page, "orderby": "id", "order": "asc"}
        for product in await self._products("/products", params):
            if product.type in NO_STOCK_TYPES:
                continue
            if product.type != "variable":
                add(product, f"p:{product.id}")
                continue
            # A variable product bears stock itself only when it manages it at parent level.
            if product.manage_stock is True:
                add(product, f"p:{product.id}")
            if product.variations:
                path = f"/products/{product.id}/variations"
                for variation in await self._products(path, params, variations=True):
                    if variation.manage_stock != "parent":
                        add(variation, f"v:{product.id}:{variation.id}")
        return list(listings.values())

    async def _products(
        self, path: str, params: Mapping[str, Any], *, variations: bool = False
    ) -> list[ProductView]:
        rows = await self._collect(path, params)
        try:
            return [read_product(raw, f"GET {path}", variation=variations) for raw in rows]
        except Invalid as exc:
            raise self._protocol(f"GET {path}", exc) from exc

    def paired(self, calls: int) -> AbstractContextManager[None]:
        return paired_calls(calls)

    async def read_quantities(self, listings: Sequence[Listing], *, urgent: bool = False) -> dict[str, int]:
        with urgent_calls(urgent):
            return await self._read_quantities(listings)

    async def _read_quantities(self, listings: Sequence[Listing]) -> dict[str, int]:
        wanted = {listing.sku for listing in listings if listing.sku}
        quantities: dict[str, int] = {}
        for chunk in _sku_chunks(sorted(wanted)):
            for item in await self._products("/products", {"sku": ",".join(chunk), "per_page": 100}):
                if item.sku in wanted and item.manage_stock is True:
                    level = self._level(item)
                    if level is not None:
                        quantities[item.sku] = level
        return quantities

    def _level(self, item: ProductView) -> int | None:
        # Stores with backorders let stock go negative; syncd never believes a level below 0.
        return plausible_level(self.name, item.sku, item.stock_quantity, self.settings.max_quantity)

    async def orders_since(self, since: datetime, *, urgent: bool = False) -> OrderPage:
        with urgent_calls(urgent):
            return await self._orders_since(since)

    async def _orders_since(self, since: datetime) -> OrderPage:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        # WooCommerce dates have whole seconds and modified_after excludes the bound itself.
        floor = since.replace(microsecond=0)
        params = {
            "modified_after": (floor - timedelta(seconds=1)).strftime(DATE_FORMAT),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": 100,
            "status": "any",
        }
        lines: dict[str, OrderLine] = {}
        latest: datetime | None = None
        quarantined: list[Quarantined] = []
        for raw in await self._collect("/orders", params):
            try:
                order = read_order(raw, self.name, "GET /orders", max_quantity=self.settings.max_quantity)
            except Invalid as exc:
                # One order syncd cannot read must not hold back the others, nor the cursor.
                modified = _modified_of(raw)
                if modified is None or modified >= floor:
                    ref = raw.get("id") if isinstance(raw, dict) else None
                    quarantined.append(quarantine(self.name, "order", ref, str(exc), raw))
                    if modified is not None:
                        latest = modified if latest is None else max(latest, modified)
                continue
            if order.modified < floor:
                continue
            latest = order.modified if latest is None else max(latest, order.modified)
            for line in order.lines:
                # An order modified while we page may show up twice; its newest state wins.
                known = lines.get(line.key)
                if known is None or known.updated_at <= line.updated_at:
                    lines[line.key] = line
        return OrderPage(lines=list(lines.values()), latest=latest, quarantined=quarantined)

    # ------------------------------------------------------------------ writing

    async def set_quantities(self, updates: Sequence[QuantityUpdate], *, urgent: bool = False) -> UpdateResult:
        with urgent_calls(urgent):
            return await self._set_quantities(updates)

    async def _set_quantities(self, updates: Sequence[QuantityUpdate]) -> UpdateResult:
        result = UpdateResult()
        # Batch endpoint path -> item id -> update (a later update of the same item wins).
        groups: dict[str, dict[int, QuantityUpdate]] = {}
        for update in updates:
            target = _batch_target(update.ref)
            if target is None:
                result.rejected[update.sku] = f"unrecognised WooCommerce ref {update.ref!r}"
                continue
            path, item_id = target
            groups.setdefault(path, {})[item_id] = update
        for path, by_id in groups.items():
            pending = list(by_id.items())
            while pending:
                chunk, pending = pending[: self._batch_limit], pending[self._batch_limit :]
                if await self._send_batch(path, chunk, result):
                    continue
                if len(chunk) == 1:
                    result.rejected[chunk[0][1].sku] = "a batch of one item was refused as too large (413)"
                    continue
                # The store's batch limit is below ours (a WooCommerce filter can lower it).
                self._batch_limit = max(1, len(chunk) // 2)
                log.warning("woocommerce.batch_limit_lowered", channel=self.name, limit=self._batch_limit)
                pending = chunk + pending
        return result

    async def _send_batch(
        self, path: str, chunk: list[tuple[int, QuantityUpdate]], result: UpdateResult
    ) -> bool:
        """Send one batch and record its outcome; False if the store found the batch too large."""
        body = {
            "update": [
                {"id": item_id, "manage_stock": True, "stock_quantity": update.quantity}
                for item_id, update in chunk
            ]
        }
        response = await self._http.request("POST", path, json=body, accept=(400, 404, 413))
        if response.status_code == 413:
            return False
        if response.status_code in (400, 404):
            reason = _error_reason(response)
            for _, update in chunk:
                result.rejected[update.sku] = reason
            return True
        where = f"POST {path}"
        answer = json_body(response, dict, connector=self.name)
        by_id = dict(chunk)
        seen: set[int] = set()
        variations = path.endswith("/variations/batch")
        try:
            for index, raw in enumerate(require_list(answer.get("update", []), f"{where}.update")):
                self._batch_item(raw, f"{where}.update[{index}]", by_id, seen, result, variations)
        except Invalid as exc:
            raise self._protocol(where, exc) from exc
        missing = sorted(set(by_id) - seen)
        if missing:
            raise ProtocolError(f"{where} answered nothing for ids {missing[:10]}", connector=self.name)
        return True

    def _batch_item(
        self,
        raw: Any,
        where: str,
        by_id: dict[int, QuantityUpdate],
        seen: set[int],
        result: UpdateResult,
        variations: bool,
    ) -> None:
        item = require_object(raw, where)
        if "error" in item:
            error = require_object(item["error"], f"{where}.error")
            ident = item.get("id")
            if not isinstance(ident, int) or ident not in by_id:
                raise Invalid(f"{where} reports an error for id {ident!r}, which was not sent")
            seen.add(ident)
            code, message = error.get("code"), error.get("message")
            result.rejected[by_id[ident].sku] = f"{code}: {message}"
            return
        product = read_product(item, where, variation=variations)
        update = by_id.get(product.id)
        if update is None:
            raise Invalid(f"{where} answered id {product.id}, which was not sent")
        seen.add(product.id)
        if product.manage_stock is not True or product.stock_quantity is None:
            result.rejected[update.sku] = "WooCommerce did not enable stock management for this item"
        else:
            result.applied[update.sku] = product.stock_quantity

    # ------------------------------------------------------------------ webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        secret = self.settings.webhook_secret
        return parse_delivery(
            self.name,
            secret.get_secret_value() if secret else None,
            headers,
            body,
            max_quantity=self.settings.max_quantity,
        )


def _modified_of(raw: Any) -> datetime | None:
    """The change time of an order that could not be read, if that part of it can be."""
    if not isinstance(raw, dict):
        return None
    try:
        return parse_gmt(raw.get("date_modified_gmt"), "date_modified_gmt")
    except Invalid:
        return None


def _batch_target(ref: str) -> tuple[str, int] | None:
    """The batch endpoint and item id a ref addresses: ``p:<id>`` or ``v:<parent>:<id>``."""
    kind, _, rest = ref.partition(":")
    parts = rest.split(":")
    if not all(part.isdigit() for part in parts):
        return None
    if kind == "p" and len(parts) == 1:
        return "/products/batch", int(parts[0])
    if kind == "v" and len(parts) == 2:
        return f"/products/{int(parts[0])}/variations/batch", int(parts[1])
    return None


def _total_pages(headers: httpx.Headers) -> int | None:
    value = headers.get("x-wp-totalpages", "").strip()
    return int(value) if value.isdigit() else None


def _sku_chunks(skus: list[str]) -> list[list[str]]:
    """Groups of SKUs for ``?sku=``; a SKU with a comma goes alone (WooCommerce then matches it whole)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    length = 0
    for sku in skus:
        if "," in sku:
            chunks.append([sku])
            continue
        if current and (len(current) >= SKU_CHUNK or length + len(sku) + 1 > SKU_CHUNK_CHARS):
            chunks.append(current)
            current, length = [], 0
        current.append(sku)
        length += len(sku) + 1
    if current:
        chunks.append(current)
    return chunks


def _error_reason(response: httpx.Response) -> str:
    """``code: message`` from a WooCommerce error envelope, or the status alone."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return f"{body['code']}: {body.get('message', '')}"
    return f"HTTP {response.status_code}"
