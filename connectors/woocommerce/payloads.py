"""Strict readers for the WooCommerce REST v3 JSON syncd relies on (products, variations, orders).

Each reader raises ``Invalid`` naming the offending field; the client turns that into ProtocolError
and the webhook parser into PayloadError, so one set of checks serves both boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import OrderLine, OrderLineStatus
from connectors.limits import quantity_problem

# WooCommerce writes GMT dates without an offset, to the second.
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

CANCELLED_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})


class Invalid(ValueError):
    """A WooCommerce payload lacks a field or has one of the wrong type."""


@dataclass(frozen=True)
class ProductView:
    """A product or variation, reduced to its stock fields.

    ``manage_stock`` is True, False, or "parent" for a variation whose stock lives on its parent.
    """

    id: int
    sku: str
    type: str
    manage_stock: bool | str
    stock_quantity: int | None
    variations: tuple[int, ...]


@dataclass(frozen=True)
class OrderView:
    id: int
    modified: datetime
    modified_raw: str
    lines: list[OrderLine]


def format_gmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime(DATE_FORMAT)


def parse_gmt(value: Any, field: str) -> datetime:
    """A WooCommerce ``*_gmt`` date (no offset means UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a date string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Invalid(f"{field} is not an ISO 8601 date: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def require_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object, got {type(value).__name__}")
    return value


def require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"{where} must be a list, got {type(value).__name__}")
    return value


def _int(obj: dict[str, Any], key: str, where: str, *, nullable: bool = False) -> int | None:
    if key not in obj:
        raise Invalid(f"{where} has no {key!r}")
    value = obj[key]
    if value is None and nullable:
        return None
    # bool is an int subclass in Python; JSON true is never a quantity or an id.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{where}.{key} must be an integer, got {type(value).__name__}")
    return value


def _required_int(obj: dict[str, Any], key: str, where: str) -> int:
    value = _int(obj, key, where)
    assert value is not None
    return value


def _str(obj: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{where}.{key} must be a string, got {type(value).__name__}")
    return value


def read_product(raw: Any, where: str, *, variation: bool = False) -> ProductView:
    """A product, or with ``variation`` an item of a variations list (``type`` optional there)."""
    obj = require_object(raw, where)
    ident = _required_int(obj, "id", where)
    where = f"{where}[id={ident}]"
    manage = obj.get("manage_stock")
    if not isinstance(manage, bool) and manage != "parent":
        raise Invalid(f"{where}.manage_stock must be true, false or 'parent', got {manage!r:.40}")
    variations = obj.get("variations", [])
    if not isinstance(variations, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in variations
    ):
        raise Invalid(f"{where}.variations must be a list of integer ids")
    return ProductView(
        id=ident,
        sku=_str(obj, "sku", where, default=""),
        type=_str(obj, "type", where, default="variation" if variation else None),
        manage_stock=manage,
        stock_quantity=_int(obj, "stock_quantity", where, nullable=True),
        variations=tuple(variations),
    )


def read_order(raw: Any, channel: str, where: str, *, max_quantity: int) -> OrderView:
    """An order with its line items reduced to OrderLines; lines without a SKU are left out.

    A line quantity that is not an integer from 0 to ``max_quantity`` makes the order Invalid.
    """
    obj = require_object(raw, where)
    ident = _required_int(obj, "id", where)
    where = f"{where}[id={ident}]"
    status = _str(obj, "status", where)
    modified_raw = _str(obj, "date_modified_gmt", where)
    modified = parse_gmt(modified_raw, f"{where}.date_modified_gmt")
    line_status: OrderLineStatus = "cancelled" if status in CANCELLED_STATUSES else "open"
    lines: list[OrderLine] = []
    for index, raw_line in enumerate(require_list(obj.get("line_items"), f"{where}.line_items")):
        line_where = f"{where}.line_items[{index}]"
        line = require_object(raw_line, line_where)
        line_id = _required_int(line, "id", line_where)
        sku = _str(line, "sku", line_where, default="")
        if "quantity" not in line:
            raise Invalid(f"{line_where} has no 'quantity'")
        quantity = line["quantity"]
        problem = quantity_problem(quantity, max_quantity)
        if problem:
            raise Invalid(f"{line_where}.quantity {problem}")
        if not sku:
            continue
        lines.append(
            OrderLine(
                channel=channel,
                order_id=str(ident),
                line_key=str(line_id),
                sku=sku,
                quantity=quantity,
                status=line_status,
                updated_at=modified,
            )
        )
    return OrderView(id=ident, modified=modified, modified_raw=modified_raw, lines=lines)
