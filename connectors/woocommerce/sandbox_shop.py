"""The in-memory store behind the WooCommerce sandbox: products, variations, orders and stock.

It follows WooCommerce's own rules where syncd can see them: stock_quantity only sticks on items
that manage stock, stock_status follows the quantity, negative stock is accepted, orders reduce
stock when placed and restore it when cancelled, and errors carry WooCommerce's codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox_kit import ChangeJournal, StockShortage
from connectors.woocommerce.payloads import format_gmt

ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed")


class WooError(Exception):
    """An error WooCommerce would answer with ``{code, message, data: {status}}``."""

    def __init__(self, code: str, message: str, status: int, **data: Any):
        self.code = code
        self.message = message
        self.status = status
        self.data = data
        super().__init__(message)

    def envelope(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}


def invalid_param(name: str, reason: str) -> WooError:
    return WooError("rest_invalid_param", f"Invalid parameter(s): {name}", 400, params={name: reason})


def as_int(value: Any, name: str) -> int:
    """WordPress's integer check: JSON integers and numeric strings pass, anything else is refused."""
    if isinstance(value, bool):
        raise invalid_param(name, f"{name} is not of type integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise invalid_param(name, f"{name} is not of type integer.")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Item:
    """A product (simple or variable) or a variation (``parent_id`` set)."""

    id: int
    sku: str
    name: str
    type: str
    created: datetime
    modified: datetime
    parent_id: int = 0
    manage_stock: bool = False
    stock_quantity: int | None = None
    variations: list[int] = field(default_factory=list)

    @property
    def purchasable(self) -> bool:
        return self.type in ("simple", "variation")

    @property
    def stock_bearing(self) -> bool:
        return self.manage_stock and bool(self.sku)


@dataclass
class Line:
    id: int
    item_id: int
    product_id: int
    variation_id: int
    sku: str
    name: str
    quantity: int


@dataclass
class Order:
    id: int
    status: str
    created: datetime
    modified: datetime
    lines: list[Line]
    stock_reduced: bool = True


class Shop:
    """Catalogue and orders of one sandbox store; every method runs without awaiting (atomic)."""

    def __init__(self, clock: Callable[[], datetime] = utc_now):
        self.items: dict[int, Item] = {}
        self.orders: dict[int, Order] = {}
        self.journal = ChangeJournal()
        self._clock = clock
        self._next_id = 10
        self._next_line = 1

    def _new_id(self) -> int:
        # WordPress hands out post ids from one sequence shared by products, variations and orders.
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ catalogue

    def by_sku(self, sku: str) -> Item | None:
        return next((item for item in self.items.values() if item.sku == sku), None)

    def products(self) -> list[Item]:
        return [item for item in self.items.values() if item.type != "variation"]

    def variations_of(self, parent_id: int) -> list[Item]:
        parent = self.items.get(parent_id)
        if parent is None or parent.type != "variable":
            return []
        return [self.items[v] for v in parent.variations if v in self.items]

    def create(self, fields: dict[str, Any], *, parent: Item | None = None) -> Item:
        kind = "variation" if parent else fields.get("type", "simple")
        if kind not in ("simple", "variable", "variation"):
            raise invalid_param("type", "type is not one of simple, variable.")
        now = self._clock()
        item = Item(
            id=self._new_id(),
            sku="",
            name=str(fields.get("name", "")),
            type=kind,
            created=now,
            modified=now,
            parent_id=parent.id if parent else 0,
        )
        self._apply(item, fields)
        self.items[item.id] = item
        if parent:
            parent.variations.append(item.id)
        return item

    def update(self, item: Item, fields: dict[str, Any]) -> Item:
        self._apply(item, fields)
        item.modified = self._clock()
        return item

    def _apply(self, item: Item, fields: dict[str, Any]) -> None:
        # Validate everything first so that a refused update leaves the item untouched.
        sku = item.sku
        if "sku" in fields:
            if not isinstance(fields["sku"], str):
                raise invalid_param("sku", "sku is not of type string.")
            sku = fields["sku"].strip()
            owner = self.by_sku(sku) if sku else None
            if owner is not None and owner.id != item.id:
                raise WooError("product_invalid_sku", "Invalid or duplicated SKU.", 400)
        manage = item.manage_stock
        if "manage_stock" in fields:
            if not isinstance(fields["manage_stock"], bool):
                raise invalid_param("manage_stock", "manage_stock is not of type boolean.")
            manage = fields["manage_stock"]
        quantity = item.stock_quantity
        if fields.get("stock_quantity") is not None:
            quantity = as_int(fields["stock_quantity"], "stock_quantity")
        if "name" in fields:
            item.name = str(fields["name"])
        before = item.stock_quantity if item.stock_bearing else None
        item.sku = sku
        item.manage_stock = manage
        # WooCommerce keeps a quantity only on items that manage stock; negatives are allowed.
        item.stock_quantity = (quantity if quantity is not None else 0) if manage else None
        if item.sku:
            self.journal.changed(item.sku, before, item.stock_quantity if item.stock_bearing else None)

    def delete(self, item: Item) -> None:
        for child in list(item.variations):
            self.items.pop(child, None)
        self.items.pop(item.id, None)
        parent = self.items.get(item.parent_id)
        if parent and item.id in parent.variations:
            parent.variations.remove(item.id)

    def stock_status(self, item: Item) -> str:
        if item.type == "variable" and not item.manage_stock:
            children = self.variations_of(item.id)
            return "instock" if any(self.stock_status(c) == "instock" for c in children) else "outofstock"
        if not item.manage_stock:
            return "instock"
        return "instock" if (item.stock_quantity or 0) > 0 else "outofstock"

    def seed(self, entries: Iterable[dict[str, Any]]) -> int:
        count = 0
        for entry in entries:
            sku, quantity, parent_sku = entry.get("sku"), entry.get("quantity", 0), entry.get("parent")
            if not isinstance(sku, str) or not sku:
                raise ValueError("each item needs a non-empty 'sku'")
            if not isinstance(quantity, int) or isinstance(quantity, bool):
                raise ValueError(f"item {sku!r}: 'quantity' must be an integer")
            if parent_sku is not None and (not isinstance(parent_sku, str) or not parent_sku):
                raise ValueError(f"item {sku!r}: 'parent' must be a non-empty string")
            stock = {"manage_stock": True, "stock_quantity": quantity}
            existing = self.by_sku(sku)
            if existing is not None:
                self.update(existing, stock)
            elif parent_sku is None:
                self.create({"name": sku, "sku": sku, "type": "simple", **stock})
            else:
                parent = self.by_sku(parent_sku) or self.create(
                    {"name": parent_sku, "sku": parent_sku, "type": "variable"}
                )
                if parent.type != "variable":
                    raise ValueError(f"item {sku!r}: parent {parent_sku!r} is not a variable product")
                self.create({"name": f"{parent.name} - {sku}", "sku": sku, **stock}, parent=parent)
            count += 1
        return count

    # ------------------------------------------------------------------ orders

    def purchase(self, sku: str, quantity: int) -> Order:
        item = self.by_sku(sku)
        if item is None or not item.purchasable:
            raise LookupError(sku)
        if item.manage_stock:
            available = max(0, item.stock_quantity or 0)
            if quantity > available:
                raise StockShortage(available)
            self.update(item, {"stock_quantity": (item.stock_quantity or 0) - quantity})
        now = self._clock()
        line = Line(
            id=self._next_line,
            item_id=item.id,
            product_id=item.parent_id or item.id,
            variation_id=item.id if item.parent_id else 0,
            sku=item.sku,
            name=item.name,
            quantity=quantity,
        )
        self._next_line += 1
        order = Order(id=self._new_id(), status="processing", created=now, modified=now, lines=[line])
        self.orders[order.id] = order
        return order

    def cancel(self, order: Order) -> bool:
        """Cancel ``order`` and put its units back; False if it was already cancelled."""
        if order.status == "cancelled":
            return False
        if order.stock_reduced:
            for line in order.lines:
                item = self.items.get(line.item_id)
                if item is not None and item.manage_stock:
                    self.update(item, {"stock_quantity": (item.stock_quantity or 0) + line.quantity})
            order.stock_reduced = False
        order.status = "cancelled"
        order.modified = self._clock()
        return True

    # ------------------------------------------------------------------ JSON as the REST API shows it

    def item_json(self, item: Item) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": item.id,
            "name": item.name,
            "type": item.type,
            "status": "publish",
            "sku": item.sku,
            "parent_id": item.parent_id,
            "date_created": format_gmt(item.created),
            "date_created_gmt": format_gmt(item.created),
            "date_modified": format_gmt(item.modified),
            "date_modified_gmt": format_gmt(item.modified),
            "manage_stock": item.manage_stock,
            "stock_quantity": item.stock_quantity,
            "stock_status": self.stock_status(item),
            "backorders": "no",
        }
        if item.type != "variation":
            body["variations"] = list(item.variations)
        return body

    def order_json(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "parent_id": 0,
            "number": str(order.id),
            "status": order.status,
            "currency": "USD",
            "date_created": format_gmt(order.created),
            "date_created_gmt": format_gmt(order.created),
            "date_modified": format_gmt(order.modified),
            "date_modified_gmt": format_gmt(order.modified),
            "customer_id": 0,
            "line_items": [
                {
                    "id": line.id,
                    "name": line.name,
                    "product_id": line.product_id,
                    "variation_id": line.variation_id,
                    "quantity": line.quantity,
                    "sku": line.sku,
                    "subtotal": "0.00",
                    "total": "0.00",
                }
                for line in order.lines
            ],
        }
