"""The Shopify channel over the Admin GraphQL API: variant levels at the sync locations (one, or
several summed), compare-and-set writes with ``inventorySetQuantities``, orders by update time,
and bulk reads for large catalogues.

Every call follows Shopify's cost bucket (``extensions.cost``) so that syncd waits before it would
be throttled; THROTTLED answers (HTTP 200 or 429) become TransientError with the bucket's wait.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
    TokenStore,
    UpdateResult,
    WebhookEvent,
)
from connectors.circuit import CircuitBreaker
from connectors.http import (
    HttpClient,
    RateLimiter,
    RetryPolicy,
    calls_are_urgent,
    json_body,
    paired_calls,
    parse_retry_after,
    urgent_calls,
)
from connectors.limits import plausible_level, quarantine
from connectors.locations import changed_levels
from connectors.shopify import queries
from connectors.shopify.cost import CostBucket, QueryCost
from connectors.shopify.payloads import (
    Invalid,
    ItemView,
    OrderView,
    next_cursor,
    numeric_id,
    parse_time,
    read_graphql_order,
    read_item,
    read_line_nodes,
    read_variant,
    require_list,
    require_object,
    require_str,
)
from connectors.shopify.settings import ShopifySettings
from connectors.shopify.webhooks import parse_delivery
from syncd.errors import AuthError, ConnectorError, ProtocolError, TransientError

log = structlog.get_logger("syncd.connectors.shopify")

# Beyond any real catalogue at 250 a page: only a server that never stops paging gets here.
MAX_PAGES = 10_000
STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
BULK_DONE_BAD = frozenset({"FAILED", "CANCELED", "EXPIRED"})
_ITEM_GID = re.compile(r"^gid://shopify/InventoryItem/\d+$")
_KEY_NAMESPACE = uuid.UUID("6f1c62a4-3c5e-4b59-9a57-0c1f4e2b7d10")


# The fast path's operations (read a few levels, write them) may spend the whole cost bucket;
# everything else (order polls, catalogue reads) leaves this share of it for them, so a busy
# order poll never holds back a push while a flash sale runs.
PUSH_OPERATIONS = frozenset({"InventoryItems", "SetQuantities", "PrimaryLocation"})
BACKGROUND_HEADROOM = 0.25


class ShopifyConnector(ChannelConnector):
    supports_compare_and_set = True
    max_batch = queries.MAX_QUANTITIES
    bulk_poll_interval = 2.0
    bulk_max_wait = 1800.0

    def __init__(
        self,
        settings: ShopifySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        tokens: TokenStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        circuit: CircuitBreaker | None = None,
    ):
        self.name = settings.name
        self.settings = settings
        self._circuit = circuit or CircuitBreaker.for_settings(settings.name, settings)
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._path = f"/admin/api/{settings.api_version}/graphql.json"
        common: dict[str, Any] = {
            "timeout": settings.timeout.total_seconds(),
            "retry": RetryPolicy(attempts=settings.retry_attempts),
            "transport": transport,
            "sleep": sleep,
            "circuit": self._circuit,
        }
        self._http = HttpClient(
            settings.name,
            settings.root_url,
            headers={"X-Shopify-Access-Token": settings.access_token.get_secret_value()},
            rate_limiter=RateLimiter(settings.rate_limit, settings.burst),
            **common,
        )
        # Bulk results live on a storage host: never send the access token there. Another service,
        # so a circuit of its own: its outage must not stop the API calls.
        files_circuit = CircuitBreaker.for_settings(f"{settings.name} (bulk files)", settings)
        self._files = HttpClient(settings.name, settings.root_url, **(common | {"circuit": files_circuit}))
        self.bucket = CostBucket(clock=clock, sleep=self._sleep)
        # The sync locations, in the configured order; None until the primary one is looked up.
        self._locations: tuple[str, ...] | None = settings.sync_locations
        # Locations named in location_ids are checked once; a lone location_id is taken as given.
        self._locations_checked = settings.location_ids is None

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._files.aclose()

    @property
    def circuit(self) -> CircuitState | None:
        return self._circuit.snapshot()

    # ------------------------------------------------------------------ the GraphQL call

    async def _graphql(
        self, operation: str, document: str, variables: Mapping[str, Any], cost: float
    ) -> dict[str, Any]:
        """``data`` of one operation; ``cost`` is its expected cost until Shopify has said better."""
        payload = {"query": document, "variables": dict(variables), "operationName": operation}
        where = f"{operation} ({self._path})"

        async def attempt() -> dict[str, Any]:
            # An urgent read (the check that a sold-out SKU's last sales are all known) needs no
            # headroom kept for the writes: they wait for it.
            headroom = 0.0 if operation in PUSH_OPERATIONS or calls_are_urgent() else BACKGROUND_HEADROOM
            self._circuit.check()  # an open circuit refuses at once, not after waiting for points
            asked = time.monotonic()
            await self.bucket.reserve(operation, cost, headroom=headroom)
            log.debug("shopify.reserved", operation=operation, waited=round(time.monotonic() - asked, 3))
            response = await self._http.request(
                "POST", self._path, json=payload, accept=(429, 500, 502, 503, 504), retry=False
            )
            if response.status_code >= 500:
                raise TransientError(
                    f"{where} answered {response.status_code}",
                    connector=self.name,
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                )
            if response.status_code == 429:
                wait = parse_retry_after(response.headers.get("retry-after"))
                raise TransientError(
                    f"{where} answered 429 (throttled)",
                    connector=self.name,
                    retry_after=wait if wait is not None else self._throttle_wait(response, operation, cost),
                )
            body = json_body(response, dict, connector=self.name)
            spent = QueryCost.parse(body.get("extensions"))
            self.bucket.observe(operation, spent)
            if body.get("errors"):
                raise self._error(where, body["errors"], spent, operation, cost)
            data = body.get("data")
            if not isinstance(data, dict):
                raise ProtocolError(f"{where} answered no 'data' object", connector=self.name)
            return data

        result: dict[str, Any] = await self._http.call_with_retries(attempt)
        return result

    def _throttle_wait(self, response: httpx.Response, operation: str, cost: float) -> float:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return 1.0
        spent = QueryCost.parse(body.get("extensions") if isinstance(body, dict) else None)
        self.bucket.observe(operation, spent)
        if spent is None:
            return 1.0
        return spent.wait_for(spent.requested or self.bucket.expected_cost(operation, cost))

    def _error(
        self, where: str, errors: Any, spent: QueryCost | None, operation: str, cost: float
    ) -> ConnectorError:
        """The error class for top-level ``errors`` (a list of objects, or one string)."""
        if not isinstance(errors, list):
            return ConnectorError(f"{where} failed: {str(errors)[:200]}", connector=self.name)
        codes = {
            str(e.get("extensions", {}).get("code", ""))
            for e in errors
            if isinstance(e, dict)
            if isinstance(e.get("extensions", {}), dict)
        }
        messages = "; ".join(
            str(e.get("message", "?"))[:200] if isinstance(e, dict) else str(e)[:200] for e in errors[:3]
        )
        if "THROTTLED" in codes:
            requested = (
                spent.requested if spent and spent.requested else self.bucket.expected_cost(operation, cost)
            )
            wait = spent.wait_for(requested) if spent else 1.0
            return TransientError(f"{where} was throttled", connector=self.name, retry_after=wait)
        if "ACCESS_DENIED" in codes:
            return AuthError(f"{where} was refused: {messages}", connector=self.name)
        if "INTERNAL_SERVER_ERROR" in codes:
            return TransientError(f"{where} failed on Shopify's side: {messages}", connector=self.name)
        return ConnectorError(f"{where} failed: {messages}", connector=self.name)

    @contextmanager
    def _reading(self, where: str) -> Iterator[None]:
        try:
            yield
        except Invalid as exc:
            raise ProtocolError(f"{where}: {exc}", connector=self.name) from exc

    async def _sync_locations(self) -> tuple[str, ...]:
        if self._locations is None:
            data = await self._graphql("PrimaryLocation", queries.PRIMARY_LOCATION, {}, cost=1)
            with self._reading("PrimaryLocation"):
                location = require_object(data.get("location"), "location")
                self._locations = (require_str(location.get("id"), "location.id"),)
        if not self._locations_checked:
            await self._check_locations(self._locations)
        return self._locations

    async def _check_locations(self, locations: tuple[str, ...]) -> None:
        """Once: every named location exists and is active (a wrong id would read as not stocked)."""
        data = await self._graphql("Locations", queries.LOCATIONS, {"ids": list(locations)}, cost=len(locations))
        with self._reading("Locations"):
            nodes = require_list(data.get("nodes"), "nodes")
            found = {
                node.get("id"): node for node in nodes if isinstance(node, dict) and isinstance(node.get("id"), str)
            }
        missing = [location for location in locations if location not in found]
        inactive = [location for location in locations if location in found and found[location].get("isActive") is False]
        if missing or inactive:
            problems = []
            if missing:
                problems.append(f"{', '.join(missing)} not found in the shop")
            if inactive:
                problems.append(f"{', '.join(inactive)} not active")
            raise ConnectorError(
                f"location_ids: {'; '.join(problems)} (check the ids under Settings → Locations)",
                connector=self.name,
            )
        self._locations_checked = True

    def _level_variables(self, locations: tuple[str, ...]) -> dict[str, str]:
        if len(locations) == 1:
            return {"locationId": locations[0]}
        return queries.location_variables(locations)

    # ------------------------------------------------------------------ reading

    async def list_listings(self) -> list[Listing]:
        listings: dict[str, Listing] = {}
        for view in await self._all_variants():
            if not view.sku:
                continue
            if view.sku in listings:
                log.warning("shopify.duplicate_sku", channel=self.name, sku=view.sku, ref=view.ref)
                continue
            managed = view.tracked and view.available is not None
            quantity = self._level(view) if managed else None
            listings[view.sku] = Listing(sku=view.sku, ref=view.ref, quantity=quantity, managed=managed)
        return list(listings.values())

    async def _all_variants(self) -> list[ItemView]:
        locations = await self._sync_locations()
        if await self._catalogue_size() > self.settings.bulk_threshold:
            return await self._bulk_variants(locations)
        views: list[ItemView] = []
        after: str | None = None
        seen: set[str] = set()
        # Each level costs about as much as the rest of a node: smaller pages for more locations.
        first = max(1, queries.VARIANTS_PAGE // len(locations))
        document = queries.variants_query(len(locations))
        for _ in range(MAX_PAGES):
            variables = {"first": first, "after": after, **self._level_variables(locations)}
            data = await self._graphql("Variants", document, variables, cost=first * (2 + 2 * len(locations)))
            with self._reading("Variants"):
                connection = require_object(data.get("productVariants"), "productVariants")
                nodes = require_list(connection.get("nodes"), "productVariants.nodes")
                views.extend(
                    read_variant(raw, f"productVariants.nodes[{i}]", locations) for i, raw in enumerate(nodes)
                )
                after = next_cursor(connection, "productVariants")
            if after is None:
                return views
            if after in seen:
                raise ProtocolError(f"Variants returned the cursor {after!r} twice", connector=self.name)
            seen.add(after)
        raise ProtocolError(f"Variants has more than {MAX_PAGES} pages", connector=self.name)

    async def _catalogue_size(self) -> int:
        data = await self._graphql("VariantCount", queries.VARIANT_COUNT, {}, cost=1)
        with self._reading("VariantCount"):
            count = require_object(data.get("productVariantsCount"), "productVariantsCount").get("count")
            if not isinstance(count, int) or isinstance(count, bool):
                raise Invalid("productVariantsCount.count is not an integer")
        return count

    def paired(self, calls: int) -> AbstractContextManager[None]:
        return paired_calls(calls)

    async def read_quantities(self, listings: Sequence[Listing], *, urgent: bool = False) -> dict[str, int]:
        with urgent_calls(urgent):
            return await self._read_quantities(listings)

    async def _read_quantities(self, listings: Sequence[Listing]) -> dict[str, int]:
        sku_by_ref = {listing.ref: listing.sku for listing in listings if _ITEM_GID.match(listing.ref)}
        if len(sku_by_ref) > self.settings.bulk_threshold:
            views = await self._bulk_variants(await self._sync_locations())
        else:
            views = await self._items(sorted(sku_by_ref))
        levels = {
            sku_by_ref[view.ref]: self._level(view, sku_by_ref[view.ref])
            for view in views
            if view.ref in sku_by_ref and view.tracked
        }
        return {sku: level for sku, level in levels.items() if level is not None}

    def _level(self, view: ItemView, sku: str | None = None) -> int | None:
        return plausible_level(
            self.name, sku or view.sku or view.ref, view.available, self.settings.max_quantity
        )

    async def _items(self, refs: list[str]) -> list[ItemView]:
        locations = await self._sync_locations()
        views: list[ItemView] = []
        page = max(1, queries.ITEMS_PAGE // len(locations))
        document = queries.items_query(len(locations))
        for start in range(0, len(refs), page):
            ids = refs[start : start + page]
            variables = {"ids": ids, **self._level_variables(locations)}
            data = await self._graphql("InventoryItems", document, variables, cost=len(ids) * (1 + 2 * len(locations)))
            with self._reading("InventoryItems"):
                nodes = require_list(data.get("nodes"), "nodes")
                # Unknown ids come back as null.
                views.extend(read_item(raw, f"nodes[{i}]", locations) for i, raw in enumerate(nodes) if raw)
        return views

    async def orders_since(self, since: datetime, *, urgent: bool = False) -> OrderPage:
        with urgent_calls(urgent):
            return await self._orders_since(since)

    async def _orders_since(self, since: datetime) -> OrderPage:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        # Shopify's search compares whole seconds.
        floor = since.replace(microsecond=0)
        search = f"updated_at:>='{floor.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        lines: dict[str, OrderLine] = {}
        latest: datetime | None = None
        quarantined: list[Quarantined] = []
        after: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            variables = {"first": queries.ORDERS_PAGE, "after": after, "query": search}
            data = await self._graphql("Orders", queries.ORDERS, variables, cost=queries.ORDERS_PAGE * 13)
            with self._reading("Orders"):
                connection = require_object(data.get("orders"), "orders")
                nodes = require_list(connection.get("nodes"), "orders.nodes")
                after = next_cursor(connection, "orders")
            for index, raw in enumerate(nodes):
                # One order syncd cannot read must not hold back the others, nor the cursor.
                try:
                    order = read_graphql_order(
                        raw, self.name, f"orders.nodes[{index}]", max_quantity=self.settings.max_quantity
                    )
                    order_lines = order.lines + (
                        await self._more_lines(order) if order.updated_at >= floor else []
                    )
                except Invalid as exc:
                    changed = _updated_of(raw)
                    if changed is None or changed >= floor:
                        ref = _order_ref(raw)
                        quarantined.append(quarantine(self.name, "order", ref, str(exc), raw))
                        if changed is not None:
                            latest = changed if latest is None else max(latest, changed)
                    continue
                if order.updated_at < floor:
                    continue
                latest = order.updated_at if latest is None else max(latest, order.updated_at)
                for line in order_lines:
                    # An order changed while we page may show up twice; its newest state wins.
                    known = lines.get(line.key)
                    if known is None or known.updated_at <= line.updated_at:
                        lines[line.key] = line
            if after is None:
                return OrderPage(lines=list(lines.values()), latest=latest, quarantined=quarantined)
            if after in seen:
                raise ProtocolError(f"Orders returned the cursor {after!r} twice", connector=self.name)
            seen.add(after)
        raise ProtocolError(f"Orders has more than {MAX_PAGES} pages", connector=self.name)

    async def _more_lines(self, order: OrderView) -> list[OrderLine]:
        """Line items beyond the first page of an order with many lines."""
        lines: list[OrderLine] = []
        after = order.more_lines_after
        while after is not None:
            variables = {"id": order.gid, "after": after}
            data = await self._graphql("OrderLineItems", queries.ORDER_LINE_ITEMS, variables, cost=260)
            with self._reading("OrderLineItems"):
                node = require_object(data.get("node"), "node")
                connection = require_object(node.get("lineItems"), "node.lineItems")
                nxt = next_cursor(connection, "node.lineItems")
            # A bad line here is the order's fault (Invalid: quarantined), not the page's.
            page = read_line_nodes(
                connection,
                self.name,
                order.id,
                order.status,
                order.updated_at,
                "node.lineItems",
                self.settings.max_quantity,
            )
            if nxt == after:
                raise ProtocolError("OrderLineItems returned the same cursor again", connector=self.name)
            lines.extend(page)
            after = nxt
        return lines

    # ------------------------------------------------------------------ bulk reads

    async def _bulk_variants(self, locations: tuple[str, ...]) -> list[ItemView]:
        variables = {"query": queries.bulk_variants_query(*locations)}
        data = await self._graphql("RunBulkQuery", queries.RUN_BULK_QUERY, variables, cost=10)
        with self._reading("RunBulkQuery"):
            payload = require_object(data.get("bulkOperationRunQuery"), "bulkOperationRunQuery")
            errors = require_list(payload.get("userErrors"), "bulkOperationRunQuery.userErrors")
            if errors:
                text = "; ".join(str(e.get("message")) if isinstance(e, dict) else str(e) for e in errors)
                # Another bulk query of this app still running is the usual cause: try later.
                raise TransientError(f"bulk query refused: {text[:300]}", connector=self.name)
            operation = require_object(payload.get("bulkOperation"), "bulkOperationRunQuery.bulkOperation")
            ident = require_str(operation.get("id"), "bulkOperation.id")
        waited = 0.0
        while waited <= self.bulk_max_wait:
            await self._sleep(self.bulk_poll_interval)
            waited += self.bulk_poll_interval
            data = await self._graphql("BulkOperation", queries.BULK_OPERATION, {"id": ident}, cost=1)
            with self._reading("BulkOperation"):
                node = require_object(data.get("node"), "node")
                status = require_str(node.get("status"), "node.status")
            if status == "COMPLETED":
                url = node.get("url")
                return await self._download_variants(url, locations) if isinstance(url, str) and url else []
            if status in BULK_DONE_BAD:
                code = node.get("errorCode")
                message = f"bulk operation {ident} ended {status} ({code})"
                if code == "ACCESS_DENIED":
                    raise AuthError(message, connector=self.name)
                raise TransientError(message, connector=self.name)
        raise TransientError(
            f"bulk operation {ident} did not finish in {self.bulk_max_wait:.0f}s", connector=self.name
        )

    async def _download_variants(self, url: str, locations: tuple[str, ...]) -> list[ItemView]:
        response = await self._files.request("GET", url)
        views: list[ItemView] = []
        for number, line in enumerate(response.content.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"bulk result line {number}"
            try:
                raw = json.loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError(f"{where} is not JSON", connector=self.name) from exc
            with self._reading("bulk result"):
                views.append(read_variant(raw, where, locations))
        return views

    # ------------------------------------------------------------------ writing

    async def set_quantities(self, updates: Sequence[QuantityUpdate], *, urgent: bool = False) -> UpdateResult:
        with urgent_calls(urgent):
            return await self._set_quantities(updates)

    async def _set_quantities(self, updates: Sequence[QuantityUpdate]) -> UpdateResult:
        result = UpdateResult()
        latest: dict[str, QuantityUpdate] = {}
        for update in updates:
            if not _ITEM_GID.match(update.ref):
                result.rejected[update.sku] = f"not a Shopify inventory item id: {update.ref!r}"
                continue
            latest[update.ref] = update  # a later update of the same item wins
        if not latest:
            return result
        locations = await self._sync_locations()
        pending = list(latest.values())
        change_from = queries.uses_change_from(self.settings.api_version)
        if change_from:
            groups = [pending]
        else:
            # ignoreCompareQuantity applies to a whole call: updates without a compare go apart.
            groups = [
                [u for u in pending if u.compare is not None],
                [u for u in pending if u.compare is None],
            ]
        salt = uuid.uuid4().hex
        # An update writes at most one entry per location; a call takes MAX_QUANTITIES entries.
        size = max(1, queries.MAX_QUANTITIES // len(locations))
        for group in groups:
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                if len(locations) == 1:
                    planned = [[_Entry(u, locations[0], u.quantity, u.compare)] for u in chunk]
                else:
                    planned = await self._plan_split(chunk, locations, result)
                if planned:
                    await self._set_chunk(planned, salt, result)
        return result

    async def _plan_split(
        self, chunk: list[QuantityUpdate], locations: tuple[str, ...], result: UpdateResult
    ) -> list[list[_Entry]]:
        """The writes that give each update's item its new total over several locations (the rule
        in ``connectors/locations.py``), from a fresh read of its levels there. The update's
        ``compare`` is checked against the read total (a mismatch is stale, nothing written) and
        each written level is compared with the level read, so a sale landing in between at any
        of those locations makes the write stale instead of overwriting it. Without a compare the
        levels are set outright, as on one location."""
        views = {view.ref: view for view in await self._items([u.ref for u in chunk])}
        planned: list[list[_Entry]] = []
        for update in chunk:
            view = views.get(update.ref)
            if view is None:
                result.rejected[update.sku] = f"Shopify has no inventory item {update.ref}"
            elif not view.levels:
                result.rejected[update.sku] = f"not stocked at any of the sync locations ({', '.join(locations)})"
            elif update.compare is not None and view.available != update.compare:
                result.stale.append(update.sku)
            else:
                current = dict(view.levels)
                changes = changed_levels(view.levels, update.quantity)
                if not changes:
                    result.applied[update.sku] = update.quantity
                    continue
                planned.append(
                    [
                        _Entry(update, location, level, None if update.compare is None else current[location])
                        for location, level in changes.items()
                    ]
                )
        return planned

    async def _set_chunk(self, chunk: list[list[_Entry]], salt: str, result: UpdateResult) -> None:
        """Send the entries of ``chunk`` (a list per update) in one call; an update is applied or
        refused whole, with the first reason Shopify gives for any of its entries."""
        pending = chunk
        while pending:
            entries = [entry for entries in pending for entry in entries]
            owner = [position for position, entries in enumerate(pending) for _ in entries]
            group, errors = await self._send_set(entries, salt)
            failed: set[int] = set()
            unplaced: list[str] = []
            for error in errors:
                index = _quantity_index(error.get("field"))
                code, message = str(error.get("code") or ""), str(error.get("message") or "")
                if index is None or index >= len(entries):
                    unplaced.append(f"{code}: {message}")
                    continue
                if owner[index] in failed:
                    continue
                failed.add(owner[index])
                update = entries[index].update
                if code in STALE_CODES:
                    result.stale.append(update.sku)
                else:
                    result.rejected[update.sku] = f"{code}: {message}" if code else message
            others = [entries for position, entries in enumerate(pending) if position not in failed]
            if not errors or group is not None:
                # Without errors, or when Shopify applied the call anyway, the rest took effect.
                for update_entries in others:
                    update = update_entries[0].update
                    result.applied[update.sku] = update.quantity
                return
            if unplaced:
                reason = "; ".join(unplaced)[:300]
                for update_entries in others:
                    result.rejected[update_entries[0].update.sku] = f"refused with the batch: {reason}"
                return
            # Shopify applies all or nothing: send the rest again without the refused items.
            pending = others

    async def _send_set(self, entries: list[_Entry], salt: str) -> tuple[Any, list[dict[str, Any]]]:
        key = _idempotency_key(entries, salt)
        version = self.settings.api_version
        change_from = queries.uses_change_from(version)
        quantities: list[dict[str, Any]] = []
        for entry in entries:
            item: dict[str, Any] = {
                "inventoryItemId": entry.update.ref,
                "locationId": entry.location,
                "quantity": entry.quantity,
            }
            if change_from:
                item["changeFromQuantity"] = entry.change_from  # null opts out, explicitly
            elif entry.change_from is not None:
                item["compareQuantity"] = entry.change_from
            quantities.append(item)
        payload: dict[str, Any] = {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://syncd/StockSync/{key}",
            "quantities": quantities,
        }
        if not change_from:
            payload["ignoreCompareQuantity"] = entries[0].change_from is None
        document = queries.set_quantities_mutation(version, key)
        data = await self._graphql("SetQuantities", document, {"input": payload}, cost=10)
        with self._reading("SetQuantities"):
            answer = require_object(data.get("inventorySetQuantities"), "inventorySetQuantities")
            raw_errors = require_list(answer.get("userErrors"), "inventorySetQuantities.userErrors")
            errors = [
                require_object(e, f"inventorySetQuantities.userErrors[{i}]") for i, e in enumerate(raw_errors)
            ]
        return answer.get("inventoryAdjustmentGroup"), errors

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


def _updated_of(raw: Any) -> datetime | None:
    """The change time of an order that could not be read, if that part of it can be."""
    try:
        return parse_time(require_object(raw, "order").get("updatedAt"), "updatedAt")
    except Invalid:
        return None


def _order_ref(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    for key in ("legacyResourceId", "id"):
        try:
            return numeric_id(raw.get(key), key)
        except Invalid:
            continue
    return None


def _quantity_index(field: Any) -> int | None:
    """The item a userError's ``field`` points at, e.g. ["input", "quantities", "3", "quantity"] -> 3."""
    if not isinstance(field, list):
        return None
    for position, part in enumerate(field[:-1]):
        if part == "quantities":
            following = str(field[position + 1])
            return int(following) if following.isdigit() else None
    return None


@dataclass(frozen=True)
class _Entry:
    """One level to set: ``update``'s item at ``location`` to ``quantity``, if it shows
    ``change_from`` there now (None: no check)."""

    update: QuantityUpdate
    location: str
    quantity: int
    change_from: int | None


def _idempotency_key(entries: Sequence[_Entry], salt: str) -> str:
    """The same key for the same request (so a retried push is applied once), another otherwise.

    Built from the pushes' own keys; updates without a key use ``salt``, fresh per call.
    """
    locations = {entry.location for entry in entries}
    parts = sorted(
        f"{e.update.key or salt}|{e.update.ref}|{e.quantity}|{e.change_from}"
        + (f"|{e.location}" if len(locations) > 1 else "")
        for e in entries
    )
    return str(uuid.uuid5(_KEY_NAMESPACE, "\n".join(parts)))
