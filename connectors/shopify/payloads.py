"""Reading Shopify answers: variants and levels (GraphQL), and orders (GraphQL and REST webhooks).

Both order shapes reduce to the same OrderLines: the order and line ids are the numeric ids
(GraphQL gids and REST ids name the same objects), so a line counts once however it arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from connectors.base import OrderLine
from connectors.limits import quantity_problem


class Invalid(ValueError):
    """A part of an answer is missing or of the wrong type; the message says where."""


def require_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} is not an object")
    return value


def require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"{where} is not a list")
    return value


def require_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"{where} is not a non-empty string")
    return value


def require_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{where} is not an integer")
    return value


def parse_time(value: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(require_str(value, where).replace("Z", "+00:00"))
    except ValueError as exc:
        raise Invalid(f"{where} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise Invalid(f"{where} has no time zone")
    return parsed.astimezone(UTC)


def numeric_id(value: Any, where: str) -> str:
    """``123`` from ``gid://shopify/Order/123``, ``"123"`` or ``123``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    tail = require_str(value, where).rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise Invalid(f"{where} is not a Shopify id: {value!r}")
    return tail


@dataclass(frozen=True)
class ItemView:
    """An inventory item as syncd sees it: its SKU and its ``available`` units over the sync
    locations (None when stocked at none of them); ``levels`` has the units at each sync location
    that stocks it, in the configured order."""

    ref: str
    sku: str | None
    tracked: bool
    available: int | None
    levels: tuple[tuple[str, int], ...] = ()


def _available(level: Any, where: str) -> int | None:
    """The ``available`` quantity of an ``inventoryLevel`` object; None for a null level."""
    if level is None:
        return None
    quantities = require_list(require_object(level, where).get("quantities"), f"{where}.quantities")
    available = None
    for index, entry in enumerate(quantities):
        entry = require_object(entry, f"{where}.quantities[{index}]")
        if entry.get("name") == "available":
            available = require_int(entry.get("quantity"), f"{where}.quantities[{index}]")
    if available is None:
        raise Invalid(f"{where} has no 'available' quantity")
    return available


def read_item(raw: Any, where: str, locations: Sequence[str] = ()) -> ItemView:
    """An ``InventoryItem { id sku? tracked inventoryLevel { quantities } }`` node; with several
    ``locations``, the levels are the aliased fields ``level0``, ``level1``... in their order, and
    each must be in the answer (null: not stocked there)."""
    item = require_object(raw, where)
    ref = require_str(item.get("id"), f"{where}.id")
    sku = item.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise Invalid(f"{where}.sku is not a string")
    tracked = item.get("tracked")
    if not isinstance(tracked, bool):
        raise Invalid(f"{where}.tracked is not a boolean")
    levels: list[tuple[str, int]] = []
    if len(locations) <= 1:
        available = _available(item.get("inventoryLevel"), f"{where}.inventoryLevel")
        if available is not None and locations:
            levels.append((locations[0], available))
    else:
        for index, location in enumerate(locations):
            field = f"level{index}"
            if field not in item:
                raise Invalid(f"{where} has no level for location {location} ({field})")
            level = _available(item[field], f"{where}.{field}")
            if level is not None:
                levels.append((location, level))
        available = sum(level for _, level in levels) if levels else None
    return ItemView(
        ref=ref, sku=(sku or "").strip() or None, tracked=tracked, available=available, levels=tuple(levels)
    )


def read_variant(raw: Any, where: str, locations: Sequence[str] = ()) -> ItemView:
    """A ``ProductVariant { id sku inventoryItem {...} }`` node; the variant's SKU is the one shown."""
    variant = require_object(raw, where)
    view = read_item(variant.get("inventoryItem"), f"{where}.inventoryItem", locations)
    sku = variant.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise Invalid(f"{where}.sku is not a string")
    return replace(view, sku=(sku or "").strip() or None)


@dataclass(frozen=True)
class OrderView:
    id: str
    gid: str
    updated_at: datetime
    status: str
    lines: list[OrderLine]
    more_lines_after: str | None
    """Cursor of the line items not yet read (GraphQL orders with many lines), else None."""


def _line(
    channel: str, order_id: str, raw: Any, where: str, status: str, updated: datetime, max_quantity: int
) -> OrderLine | None:
    line = require_object(raw, where)
    sku = line.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise Invalid(f"{where}.sku is not a string")
    if not sku or not sku.strip():
        return None  # custom items and products without a SKU carry no stock syncd tracks
    given: Any = line.get("quantity")
    problem = quantity_problem(given, max_quantity)
    if problem:
        raise Invalid(f"{where}.quantity {problem}")
    quantity = int(given)  # checked above: an int within bounds
    return OrderLine(
        channel=channel,
        order_id=order_id,
        line_key=numeric_id(line.get("id"), f"{where}.id"),
        sku=sku.strip(),
        quantity=quantity,
        status="cancelled" if status == "cancelled" else "open",
        updated_at=updated,
    )


def read_graphql_order(raw: Any, channel: str, where: str, *, max_quantity: int) -> OrderView:
    order = require_object(raw, where)
    gid = require_str(order.get("id"), f"{where}.id")
    order_id = numeric_id(order.get("legacyResourceId") or gid, f"{where}.legacyResourceId")
    updated = parse_time(order.get("updatedAt"), f"{where}.updatedAt")
    status = "open" if order.get("cancelledAt") is None else "cancelled"
    items = require_object(order.get("lineItems"), f"{where}.lineItems")
    lines = read_line_nodes(items, channel, order_id, status, updated, f"{where}.lineItems", max_quantity)
    after = next_cursor(items, f"{where}.lineItems")
    return OrderView(
        id=order_id, gid=gid, updated_at=updated, status=status, lines=lines, more_lines_after=after
    )


def read_line_nodes(
    connection: dict[str, Any],
    channel: str,
    order_id: str,
    status: str,
    updated: datetime,
    where: str,
    max_quantity: int,
) -> list[OrderLine]:
    nodes = require_list(connection.get("nodes"), f"{where}.nodes")
    lines = [
        _line(channel, order_id, raw, f"{where}.nodes[{i}]", status, updated, max_quantity)
        for i, raw in enumerate(nodes)
    ]
    return [line for line in lines if line is not None]


def next_cursor(connection: dict[str, Any], where: str) -> str | None:
    """The cursor of the next page, None on the last; a next page without a cursor is malformed."""
    info = require_object(connection.get("pageInfo"), f"{where}.pageInfo")
    if info.get("hasNextPage") is not True:
        return None
    return require_str(info.get("endCursor"), f"{where}.pageInfo.endCursor (hasNextPage is true)")


def read_rest_order(raw: Any, channel: str, where: str, *, max_quantity: int) -> OrderView:
    """The REST order JSON that order webhooks carry."""
    order = require_object(raw, where)
    order_id = numeric_id(order.get("id"), f"{where}.id")
    updated = parse_time(order.get("updated_at"), f"{where}.updated_at")
    status = "open" if order.get("cancelled_at") is None else "cancelled"
    items = require_list(order.get("line_items"), f"{where}.line_items")
    lines = [
        _line(channel, order_id, raw, f"{where}.line_items[{i}]", status, updated, max_quantity)
        for i, raw in enumerate(items)
    ]
    return OrderView(
        id=order_id,
        gid=f"gid://shopify/Order/{order_id}",
        updated_at=updated,
        status=status,
        lines=[line for line in lines if line is not None],
        more_lines_after=None,
    )
