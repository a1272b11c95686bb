"""Strict readers for the TikTok Shop JSON syncd relies on: products, inventory, orders, errors.

Each reader raises ``Invalid`` naming the offending field; the client turns it into ProtocolError
and the webhook parser into PayloadError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import OrderLine, OrderLineStatus

CANCELLED = "CANCELLED"


class Invalid(ValueError):
    """A TikTok Shop payload lacks a field or has one of the wrong type."""


@dataclass(frozen=True)
class SkuStock:
    """One SKU with its stock per warehouse, in the order TikTok lists the warehouses."""

    product_id: str
    sku_id: str
    seller_sku: str
    warehouses: tuple[tuple[str, int], ...]
    total: int

    @property
    def warehouse_ids(self) -> tuple[str, ...]:
        return tuple(warehouse for warehouse, _ in self.warehouses)


@dataclass(frozen=True)
class OrderView:
    id: str
    status: str
    updated_at: datetime
    lines: list[OrderLine]


def require_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object, got {type(value).__name__}")
    return value


def optional_list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    """A list field; absent or null reads as empty (TikTok leaves empty lists out)."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{where}.{key} must be a list, got {type(value).__name__}")
    return value


def require_str(obj: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{where}.{key} must be a string, got {type(value).__name__}")
    return value


def require_int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    # bool is an int subclass in Python; JSON true is never a quantity or a time.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{where}.{key} must be an integer, got {type(value).__name__}")
    return value


def read_products(data: dict[str, Any], where: str) -> list[SkuStock]:
    """The SKUs of a products search page (``data.products[].skus[]``)."""
    return _read_skus(data, where, ("products", "id", "inventory", "quantity", None))


def read_inventory(data: dict[str, Any], where: str) -> list[SkuStock]:
    """The SKUs of an inventory search answer (``data.inventory[].skus[]``)."""
    keys = (
        "inventory",
        "product_id",
        "warehouse_inventory",
        "available_quantity",
        "total_available_quantity",
    )
    return _read_skus(data, where, keys)


def _read_skus(
    data: dict[str, Any], where: str, keys: tuple[str, str, str, str, str | None]
) -> list[SkuStock]:
    # The two answers nest the same way under different names; without a total key the SKU's total
    # is the sum of its warehouses.
    products_key, product_id_key, stock_key, quantity_key, total_key = keys
    stocks: list[SkuStock] = []
    for index, raw in enumerate(optional_list(data, products_key, where)):
        product_where = f"{where}.{products_key}[{index}]"
        product = require_object(raw, product_where)
        product_id = require_str(product, product_id_key, product_where)
        for sku_index, raw_sku in enumerate(optional_list(product, "skus", product_where)):
            sku_where = f"{product_where}.skus[{sku_index}]"
            sku = require_object(raw_sku, sku_where)
            warehouses = []
            for inv_index, raw_inv in enumerate(optional_list(sku, stock_key, sku_where)):
                inv_where = f"{sku_where}.{stock_key}[{inv_index}]"
                inventory = require_object(raw_inv, inv_where)
                warehouses.append(
                    (
                        require_str(inventory, "warehouse_id", inv_where),
                        require_int(inventory, quantity_key, inv_where),
                    )
                )
            stocks.append(
                SkuStock(
                    product_id=product_id,
                    sku_id=require_str(sku, "id", sku_where),
                    seller_sku=require_str(sku, "seller_sku", sku_where, default=""),
                    warehouses=tuple(warehouses),
                    total=(
                        sum(quantity for _, quantity in warehouses)
                        if total_key is None
                        else require_int(sku, total_key, sku_where)
                    ),
                )
            )
    return stocks


def read_update_errors(data: dict[str, Any], where: str) -> tuple[dict[str, str], list[str]]:
    """Per-SKU refusals of an inventory update (sku_id -> reason), and errors naming no SKU."""
    by_sku: dict[str, str] = {}
    general: list[str] = []
    for index, raw in enumerate(optional_list(data, "errors", where)):
        error_where = f"{where}.errors[{index}]"
        error = require_object(raw, error_where)
        reason = f"{error.get('code')}: {str(error.get('message', ''))[:200]}"
        detail = error.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        sku_id = detail.get("sku_id")
        if isinstance(sku_id, str) and sku_id:
            extra = [
                f"warehouse {e.get('warehouse_id')}: {e.get('code')} {str(e.get('message', ''))[:100]}"
                for e in optional_list(detail, "extra_errors", f"{error_where}.detail")
                if isinstance(e, dict)
            ]
            by_sku[sku_id] = "; ".join([reason, *extra])
        else:
            general.append(reason)
    return by_sku, general


def from_unix(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Invalid(f"{seconds} is not a Unix time") from exc


def read_order(raw: Any, channel: str, where: str, *, max_quantity: int) -> OrderView:
    """An order reduced to OrderLines: one per SKU, its quantity the number of line items.

    A 202309 line item has no quantity: it is one unit. Its ``id`` is counted once however often
    it is listed. ``line_key`` is the SKU id, which stays the same as units are cancelled, so a
    line never turns into a second one. The line is cancelled when the order is, or when every
    unit of that SKU is; a partial cancellation within one SKU leaves it open (counted in full),
    which errs towards showing less stock, never more. More than ``max_quantity`` units of one
    SKU make the order Invalid.
    """
    order = require_object(raw, where)
    order_id = require_str(order, "id", where)
    where = f"{where}[id={order_id}]"
    status = require_str(order, "status", where)
    updated_at = from_unix(require_int(order, "update_time", where))
    units: dict[str, set[str]] = {}
    cancelled_units: dict[str, set[str]] = {}
    seller_skus: dict[str, str] = {}
    for index, raw_item in enumerate(optional_list(order, "line_items", where)):
        item_where = f"{where}.line_items[{index}]"
        item = require_object(raw_item, item_where)
        item_id = require_str(item, "id", item_where)
        sku_id = require_str(item, "sku_id", item_where)
        seller_sku = require_str(item, "seller_sku", item_where, default="")
        if not seller_sku:
            continue
        seller_skus.setdefault(sku_id, seller_sku)
        units.setdefault(sku_id, set()).add(item_id)
        if item.get("display_status") == CANCELLED:
            cancelled_units.setdefault(sku_id, set()).add(item_id)
    lines = []
    for sku_id, item_ids in units.items():
        if len(item_ids) > max_quantity:
            raise Invalid(
                f"{where} has {len(item_ids)} units of SKU {sku_id}, above max_quantity {max_quantity}"
            )
        cancelled = status == CANCELLED or cancelled_units.get(sku_id, set()) == item_ids
        line_status: OrderLineStatus = "cancelled" if cancelled else "open"
        lines.append(
            OrderLine(
                channel=channel,
                order_id=order_id,
                line_key=sku_id,
                sku=seller_skus[sku_id],
                quantity=len(item_ids),
                status=line_status,
                updated_at=updated_at,
            )
        )
    return OrderView(id=order_id, status=status, updated_at=updated_at, lines=lines)
