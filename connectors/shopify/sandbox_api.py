"""The GraphQL operations of the Shopify sandbox, by operation name: each returns its ``data``
and its cost (requested before running, actual after), like Shopify's calculated query cost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.shopify.sandbox_shop import (
    CHANGE_FROM_REQUIRED_VERSION,
    IDEMPOTENCY_VERSION,
    LOCATION_GID,
    MAX_PAGE,
    REASONS,
    BulkRun,
    GraphQLFailure,
    Shop,
    at_least,
    bulk_rows,
    decode_cursor,
    encode_cursor,
    gid,
    level_fields,
    lines_connection,
    order_filter,
    page_size,
)

_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+(\w+)")
_IDEMPOTENT = re.compile(r'@idempotent\s*\(\s*key\s*:\s*"([^"]*)"\s*\)')
ORDER_NODE_COST = 13


@dataclass
class Call:
    """One GraphQL request: its document, variables, API version and where bulk files are served."""

    query: str
    variables: dict[str, Any]
    version: str
    files_url: str


@dataclass(frozen=True)
class Operation:
    requested: Callable[[Call], int]
    run: Callable[[Call], tuple[dict[str, Any], int]]


def operation_name(body: dict[str, Any]) -> str | None:
    name = body.get("operationName")
    if isinstance(name, str) and name:
        return name
    match = _OPERATION.match(body.get("query") or "")
    return match.group(1) if match else None


class Api:
    """The operations the connector sends, resolved over the shop."""

    def __init__(self, shop: Shop):
        self.shop = shop
        self.operations: dict[str, Operation] = {
            "PrimaryLocation": Operation(lambda c: 1, self.primary_location),
            "Locations": Operation(lambda c: 1 + len(c.variables.get("ids") or []), self.locations),
            "VariantCount": Operation(lambda c: 1, self.variant_count),
            "Variants": Operation(lambda c: 2 + 3 * _first(c), self.variants),
            "InventoryItems": Operation(lambda c: 1 + 2 * len(c.variables.get("ids") or []), self.items),
            "Orders": Operation(lambda c: 2 + ORDER_NODE_COST * _first(c), self.orders),
            "OrderLineItems": Operation(lambda c: 2 + MAX_PAGE, self.order_lines),
            "RunBulkQuery": Operation(lambda c: 10, self.run_bulk),
            "BulkOperation": Operation(lambda c: 1, self.bulk_operation),
            "SetQuantities": Operation(lambda c: 10, self.set_quantities),
        }

    # ------------------------------------------------------------------ reads

    def primary_location(self, call: Call) -> tuple[dict[str, Any], int]:
        return {"location": {"id": LOCATION_GID, "isActive": True}}, 1

    def locations(self, call: Call) -> tuple[dict[str, Any], int]:
        ids = call.variables.get("ids")
        if not isinstance(ids, list):
            raise GraphQLFailure(
                "Variable $ids of type [ID!]! was provided invalid value", "INVALID_VARIABLE"
            )
        _check_input_size(len(ids))
        nodes = [
            {"id": ref, "name": self.shop.locations[ref], "isActive": True}
            if isinstance(ref, str) and ref in self.shop.locations
            else None
            for ref in ids
        ]
        return {"nodes": nodes}, 1 + len(nodes)

    def variant_count(self, call: Call) -> tuple[dict[str, Any], int]:
        return {"productVariantsCount": {"count": len(self.shop.variants), "precision": "EXACT"}}, 1

    def variants(self, call: Call) -> tuple[dict[str, Any], int]:
        first = page_size(call.variables)
        after = call.variables.get("after")
        start = int(decode_cursor(after)) if isinstance(after, str) else 0
        ordered = sorted(self.shop.variants.values(), key=lambda v: v.id)
        page = [v for v in ordered if v.id > start][:first]
        more = bool(page) and page[-1].id < ordered[-1].id
        fields = level_fields(call.variables)
        connection = {
            "nodes": [self.shop.variant_json(v, fields) for v in page],
            "pageInfo": {"hasNextPage": more, "endCursor": encode_cursor(page[-1].id) if page else None},
        }
        return {"productVariants": connection}, 2 + 3 * len(page)

    def items(self, call: Call) -> tuple[dict[str, Any], int]:
        ids = call.variables.get("ids")
        if not isinstance(ids, list):
            raise GraphQLFailure(
                "Variable $ids of type [ID!]! was provided invalid value", "INVALID_VARIABLE"
            )
        _check_input_size(len(ids))
        fields = level_fields(call.variables)
        nodes = []
        for ref in ids:
            variant = self.shop.by_item(ref)
            nodes.append(self.shop.item_json(variant, fields) if variant else None)
        return {"nodes": nodes}, 1 + 2 * len(nodes)

    def orders(self, call: Call) -> tuple[dict[str, Any], int]:
        first = page_size(call.variables)
        wanted = order_filter(call.variables.get("query"))
        ordered = sorted((o for o in self.shop.orders.values() if wanted(o)), key=lambda o: (o.updated, o.id))
        after = call.variables.get("after")
        if isinstance(after, str):
            updated, ident = decode_cursor(after)
            ordered = [o for o in ordered if (o.updated.isoformat(), o.id) > (updated, ident)]
        page, more = ordered[:first], len(ordered) > first
        last = page[-1] if page else None
        connection = {
            "nodes": [self.shop.order_json(o, 10) for o in page],
            "pageInfo": {
                "hasNextPage": more,
                "endCursor": encode_cursor([last.updated.isoformat(), last.id]) if last else None,
            },
        }
        return {"orders": connection}, 2 + ORDER_NODE_COST * len(page)

    def order_lines(self, call: Call) -> tuple[dict[str, Any], int]:
        ref = call.variables.get("id")
        match = re.fullmatch(r"gid://shopify/Order/(\d+)", ref) if isinstance(ref, str) else None
        order = self.shop.orders.get(int(match.group(1))) if match else None
        if order is None:
            return {"node": None}, 1
        after = call.variables.get("after")
        connection = lines_connection(order, MAX_PAGE, after if isinstance(after, str) else None)
        return {"node": {"lineItems": connection}}, 2 + len(connection["nodes"])

    # ------------------------------------------------------------------ bulk

    def run_bulk(self, call: Call) -> tuple[dict[str, Any], int]:
        try:
            rows = bulk_rows(self.shop, call.variables.get("query"))
        except ValueError as exc:
            failure: dict[str, Any] = {"field": ["query"], "message": str(exc)}
            return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [failure]}}, 10
        running = [b for b in self.shop.bulk.values() if b.status in ("CREATED", "RUNNING")]
        # Before 2026-01 a shop runs one bulk query at a time.
        if running and not at_least(call.version, IDEMPOTENCY_VERSION):
            message = f"A bulk query operation for this app and shop is already in progress: {gid('BulkOperation', running[0].id)}."
            error: dict[str, Any] = {"field": None, "message": message}
            return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [error]}}, 10
        run = BulkRun(self.shop.new_id(), rows)
        self.shop.bulk[run.id] = run
        operation = {"id": gid("BulkOperation", run.id), "status": run.status}
        return {"bulkOperationRunQuery": {"bulkOperation": operation, "userErrors": []}}, 10

    def bulk_operation(self, call: Call) -> tuple[dict[str, Any], int]:
        ref = call.variables.get("id")
        match = re.fullmatch(r"gid://shopify/BulkOperation/(\d+)", ref) if isinstance(ref, str) else None
        run = self.shop.bulk.get(int(match.group(1))) if match else None
        if run is None:
            return {"node": None}, 1
        # A bulk query runs for a poll and is done at the next.
        run.polls += 1
        run.status = "RUNNING" if run.polls == 1 else "COMPLETED"
        done = run.status == "COMPLETED"
        url = f"{call.files_url}/{run.id}.jsonl" if done and run.rows else None
        node = {
            "id": gid("BulkOperation", run.id),
            "status": run.status,
            "errorCode": None,
            "objectCount": str(len(run.rows) if done else 0),
            "url": url,
            "partialDataUrl": None,
        }
        return {"node": node}, 1

    def bulk_file(self, ident: int) -> bytes | None:
        run = self.shop.bulk.get(ident)
        if run is None or run.status != "COMPLETED":
            return None
        return "".join(json.dumps(row) + "\n" for row in run.rows).encode()

    # ------------------------------------------------------------------ writes

    def set_quantities(self, call: Call) -> tuple[dict[str, Any], int]:
        new_api = at_least(call.version, IDEMPOTENCY_VERSION)
        keys = _IDEMPOTENT.findall(call.query)
        if keys and not new_api:
            raise GraphQLFailure("Directive 'idempotent' is not defined", "undefinedDirective")
        payload = call.variables.get("input")
        if not isinstance(payload, dict):
            raise GraphQLFailure(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value",
                "INVALID_VARIABLE",
            )
        fingerprint = json.dumps(payload, sort_keys=True)
        if keys:
            seen = self.shop.idempotency.get(keys[0])
            if seen is not None:
                if seen[0] == fingerprint:
                    return seen[1], 10
                error = {
                    "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "field": None,
                    "message": "The same idempotency key was used with different parameters.",
                }
                return _set_answer(None, [error]), 10
        answer = self._apply(payload, call.version)
        if keys:
            self.shop.idempotency[keys[0]] = (fingerprint, answer)
        return answer, 10

    def _apply(self, payload: dict[str, Any], version: str) -> dict[str, Any]:
        quantities = payload.get("quantities")
        if not isinstance(quantities, list):
            raise GraphQLFailure(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value for quantities",
                "INVALID_VARIABLE",
            )
        _check_input_size(len(quantities))
        allowed = {"inventoryItemId", "locationId", "quantity"}
        if at_least(version, IDEMPOTENCY_VERSION):
            allowed.add("changeFromQuantity")
        if not at_least(version, CHANGE_FROM_REQUIRED_VERSION):
            allowed.add("compareQuantity")
        errors: list[dict[str, Any]] = []

        def fail(code: str, message: str, *path: Any) -> None:
            errors.append({"code": code, "field": ["input", *(str(p) for p in path)], "message": message})

        if payload.get("name") not in ("available", "on_hand"):
            fail("INVALID_NAME", "The quantity name must be either 'available' or 'on_hand'.", "name")
        if payload.get("reason") not in REASONS:
            fail("INVALID_REASON", "The specified reason is invalid.", "reason")
        ignore = payload.get("ignoreCompareQuantity") is True
        planned: dict[tuple[int, str], int] = {}
        for index, entry in enumerate(quantities):
            if not isinstance(entry, dict) or set(entry) - allowed:
                extra = sorted(set(entry) - allowed) if isinstance(entry, dict) else []
                raise GraphQLFailure(
                    f"Variable $input of type InventorySetQuantitiesInput! was provided invalid value for "
                    f"quantities.{index}.{extra[0] if extra else ''} (Field is not defined on InventoryQuantityInput)",
                    "INVALID_VARIABLE",
                )
            if at_least(version, CHANGE_FROM_REQUIRED_VERSION) and "changeFromQuantity" not in entry:
                raise GraphQLFailure(
                    f"Variable $input was provided invalid value for quantities.{index}.changeFromQuantity "
                    "(Expected value to not be omitted; use null to skip the check)",
                    "INVALID_VARIABLE",
                )
            variant = self.shop.by_item(entry.get("inventoryItemId"))
            quantity = entry.get("quantity")
            where = ("quantities", index)
            if variant is None:
                fail(
                    "INVALID_INVENTORY_ITEM",
                    "The specified inventory item could not be found.",
                    *where,
                    "inventoryItemId",
                )
                continue
            location = entry.get("locationId")
            if not isinstance(location, str) or location not in self.shop.locations:
                fail("INVALID_LOCATION", "The specified location could not be found.", *where, "locationId")
                continue
            current = variant.level_at(location)
            if current is None:
                fail(
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                    "The specified inventory item is not stocked at the location.",
                    *where,
                    "locationId",
                )
                continue
            if (variant.id, location) in planned:
                fail(
                    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    "The combination of inventoryItemId and locationId must be unique.",
                    *where,
                    "inventoryItemId",
                )
                continue
            if not isinstance(quantity, int) or isinstance(quantity, bool):
                raise GraphQLFailure(
                    f"Variable $input was provided invalid value for quantities.{index}.quantity",
                    "INVALID_VARIABLE",
                )
            if quantity < 0:
                fail("INVALID_QUANTITY_NEGATIVE", "The quantity can't be negative.", *where, "quantity")
                continue
            if quantity > 1_000_000_000:
                fail(
                    "INVALID_QUANTITY_TOO_HIGH",
                    "The total quantity can't be higher than 1,000,000,000.",
                    *where,
                    "quantity",
                )
                continue
            if "changeFromQuantity" in entry:
                # Any value of changeFromQuantity, null included, overrides the older fields.
                expected = entry["changeFromQuantity"]
                if expected is not None and expected != current:
                    fail(
                        "CHANGE_FROM_QUANTITY_STALE",
                        "The changeFromQuantity value does not match the persisted value.",
                        *where,
                        "changeFromQuantity",
                    )
                    continue
            elif not ignore:
                if "compareQuantity" not in entry or entry["compareQuantity"] is None:
                    fail(
                        "COMPARE_QUANTITY_REQUIRED",
                        "The compareQuantity argument must be given to each quantity or ignored using ignoreCompareQuantity.",
                        *where,
                        "compareQuantity",
                    )
                    continue
                if entry["compareQuantity"] != current:
                    fail(
                        "COMPARE_QUANTITY_STALE",
                        "The compareQuantity value does not match persisted value.",
                        *where,
                        "compareQuantity",
                    )
                    continue
            planned[(variant.id, location)] = quantity
        if errors:
            return _set_answer(None, errors)
        for (ident, location), quantity in planned.items():
            self.shop.set_available(self.shop.variants[ident], quantity, location=location)
        return _set_answer({"id": gid("InventoryAdjustmentGroup", self.shop.new_id())}, [])


def _set_answer(group: dict[str, Any] | None, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": errors}}


def _first(call: Call) -> int:
    first = call.variables.get("first")
    return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else 1


def _check_input_size(size: int) -> None:
    if size > MAX_PAGE:
        raise GraphQLFailure(
            f"The input array size of {size} is greater than the maximum allowed of {MAX_PAGE}.",
            "MAX_INPUT_SIZE_EXCEEDED",
        )
