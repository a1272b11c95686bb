"""The in-memory shop behind the TikTok Shop sandbox: products, SKUs per warehouse, orders, tokens.

It keeps TikTok's rules where syncd can see them: stock is per warehouse and the shown quantity
is their sum, an order takes one line item per unit, a cancellation restores the units to the
warehouses they came from, and errors carry TikTok's envelope codes.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox_kit import ChangeJournal, StockShortage

DEFAULT_WAREHOUSE = "7068517275539719942"
LIVE = "ACTIVATE"
PAID = "AWAITING_SHIPMENT"
CANCELLED = "CANCELLED"
ORDER_STATUSES = (
    "UNPAID",
    "ON_HOLD",
    "AWAITING_SHIPMENT",
    "PARTIALLY_SHIPPING",
    "AWAITING_COLLECTION",
    "IN_TRANSIT",
    "DELIVERED",
    "COMPLETED",
    "CANCELLED",
)
# Codes the reference lists, then the sandbox's stand-ins for codes it does not (parameter
# errors, unknown product or SKU): TikTok has such errors, their exact numbers are not confirmed.
THROTTLED = 36009002
BAD_REQUEST_AUTH = 36009004
TOKEN_EXPIRED = 105002
BAD_SIGN = 106001
INVALID_PARAMS = 36009001
PRODUCT_NOT_FOUND = 12052048
SKU_NOT_FOUND = 12052046
WAREHOUSE_NOT_FOUND = 12052050


class TtsError(Exception):
    """An error TikTok answers with ``{code, message}`` in its envelope."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass
class Sku:
    id: str
    product_id: str
    seller_sku: str
    # warehouse id -> available units, in the order TikTok lists them.
    stock: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.stock.values())


@dataclass
class Product:
    id: str
    title: str
    status: str
    created: int
    updated: int
    sku_ids: list[str] = field(default_factory=list)


@dataclass
class LineItem:
    id: str
    sku_id: str
    seller_sku: str
    product_id: str
    warehouse_id: str
    status: str


@dataclass
class Order:
    id: str
    status: str
    created: int
    updated: int
    items: list[LineItem]
    cancel_reason: str = ""


def _ids(start: int) -> Callable[[], str]:
    counter = itertools.count(start)
    return lambda: str(next(counter))


class Shop:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.products: dict[str, Product] = {}
        self.skus: dict[str, Sku] = {}
        self.orders: dict[str, Order] = {}
        self.journal = ChangeJournal()
        # warehouse id -> name: the default one, and every one a SKU has been stocked in.
        self.warehouses: dict[str, str] = {DEFAULT_WAREHOUSE: "Default warehouse"}
        self._product_id = _ids(1729380000000000001)
        self._sku_id = _ids(1729390000000000001)
        self._order_id = _ids(576650000000000001)
        self._item_id = _ids(577000000000000001)
        # access token -> expiry (Unix seconds); refresh token -> expiry.
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, float] = {}

    def now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------ catalogue

    def by_seller_sku(self, seller_sku: str) -> Sku | None:
        return next((sku for sku in self.skus.values() if sku.seller_sku == seller_sku), None)

    def seed(self, entries: Iterable[dict[str, Any]]) -> int:
        """Items ``{"sku", "quantity", "parent"?, "warehouses"?}``; SKUs sharing a parent share a product.

        ``warehouses`` maps warehouse ids to units (it replaces ``quantity``); without it the
        quantity goes to the default warehouse. A known SKU only gets its stock set again.
        """
        count = 0
        for entry in entries:
            seller_sku, parent = entry.get("sku"), entry.get("parent")
            if not isinstance(seller_sku, str) or not seller_sku:
                raise ValueError("each item needs a non-empty 'sku'")
            if parent is not None and (not isinstance(parent, str) or not parent):
                raise ValueError(f"item {seller_sku!r}: 'parent' must be a non-empty string")
            stock = _stock_of(entry, seller_sku)
            self.know_warehouses(stock)
            existing = self.by_seller_sku(seller_sku)
            if existing is not None:
                self.set_stock(existing, stock)
            else:
                title = parent or seller_sku
                product = next(
                    (p for p in self.products.values() if parent is not None and p.title == parent), None
                )
                if product is None:
                    now = self.now()
                    product = Product(self._product_id(), title, LIVE, now, now)
                    self.products[product.id] = product
                sku = Sku(self._sku_id(), product.id, seller_sku, stock)
                self.skus[sku.id] = sku
                self.journal.changed(seller_sku, None, sku.total)
                product.sku_ids.append(sku.id)
            count += 1
        return count

    def know_warehouses(self, stock: Iterable[str], name: str | None = None) -> None:
        """Add warehouses not known yet (named after their id unless ``name``)."""
        for warehouse in stock:
            if name is not None or warehouse not in self.warehouses:
                self.warehouses[warehouse] = name or f"Warehouse {warehouse}"

    def warehouses_json(self) -> list[dict[str, Any]]:
        """``GET /logistics/202309/warehouses``: the shop's warehouses, the default one first."""
        return [
            {
                "id": warehouse,
                "name": name,
                "effect_status": "ENABLED",
                "type": "SALES_WAREHOUSE",
                "sub_type": "DOMESTIC_WAREHOUSE",
                "is_default": warehouse == DEFAULT_WAREHOUSE,
            }
            for warehouse, name in self.warehouses.items()
        ]

    def set_stock(self, sku: Sku, stock: dict[str, int]) -> None:
        self.know_warehouses(stock)
        before = sku.total
        sku.stock = stock
        self.products[sku.product_id].updated = self.now()
        self.journal.changed(sku.seller_sku, before, sku.total)

    def update_inventory(self, product_id: str, entries: list[Any]) -> list[dict[str, Any]]:
        """Apply ``skus[{id, inventory[{warehouse_id?, quantity}]}]``; the per-SKU errors."""
        product = self.products.get(product_id)
        if product is None or product.status != LIVE:
            raise TtsError(PRODUCT_NOT_FOUND, f"Product {product_id} does not exist or is not live.")
        errors: list[dict[str, Any]] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise TtsError(INVALID_PARAMS, "skus[].id is required.")
            inventory = entry.get("inventory")
            if not isinstance(inventory, list) or not inventory:
                raise TtsError(INVALID_PARAMS, "skus[].inventory is required.")
            sku = self.skus.get(entry["id"])
            if sku is None or sku.product_id != product_id:
                errors.append(_sku_error(entry["id"], SKU_NOT_FOUND, "SKU does not exist in this product."))
                continue
            changes, extra = _inventory_changes(sku, inventory)
            if extra:
                errors.append(_sku_error(sku.id, WAREHOUSE_NOT_FOUND, "Inventory update failed.", extra))
                continue
            before = sku.total
            sku.stock.update(changes)
            self.journal.changed(sku.seller_sku, before, sku.total)
        product.updated = self.now()
        return errors

    # ------------------------------------------------------------------ orders

    def purchase(self, seller_sku: str, quantity: int) -> Order:
        sku = self.by_seller_sku(seller_sku)
        if sku is None or self.products[sku.product_id].status != LIVE:
            raise LookupError(seller_sku)
        if quantity > sku.total:
            raise StockShortage(sku.total)
        items: list[LineItem] = []
        before = sku.total
        for warehouse in sku.stock:
            while sku.stock[warehouse] > 0 and len(items) < quantity:
                sku.stock[warehouse] -= 1
                items.append(
                    LineItem(self._item_id(), sku.id, sku.seller_sku, sku.product_id, warehouse, PAID)
                )
        self.journal.changed(sku.seller_sku, before, sku.total)
        now = self.now()
        order = Order(self._order_id(), PAID, now, now, items)
        self.orders[order.id] = order
        return order

    def cancel(self, order: Order) -> bool:
        """Cancel the order and give its units back; False if it already was cancelled."""
        if order.status == CANCELLED:
            return False
        before = {s.id: s.total for item in order.items if (s := self.skus.get(item.sku_id)) is not None}
        for item in order.items:
            sku = self.skus.get(item.sku_id)
            if sku is not None:
                sku.stock[item.warehouse_id] = sku.stock.get(item.warehouse_id, 0) + 1
            item.status = CANCELLED
        for ident, total in before.items():
            self.journal.changed(self.skus[ident].seller_sku, total, self.skus[ident].total)
        order.status = CANCELLED
        order.cancel_reason = "Buyer requested cancellation"
        order.updated = self.now()
        return True

    # ------------------------------------------------------------------ tokens

    def issue_tokens(self, access_ttl: float, refresh_ttl: float) -> tuple[str, str]:
        access, refresh = f"TTP_{secrets.token_urlsafe(24)}", f"TTP_{secrets.token_urlsafe(24)}"
        self.access_tokens[access] = self.clock() + access_ttl
        self.refresh_tokens[refresh] = self.clock() + refresh_ttl
        return access, refresh

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens:
            self.access_tokens[token] = 0.0

    # ------------------------------------------------------------------ JSON

    def product_json(self, product: Product) -> dict[str, Any]:
        return {
            "id": product.id,
            "title": product.title,
            "status": product.status,
            "create_time": product.created,
            "update_time": product.updated,
            "skus": [
                {
                    "id": sku.id,
                    "seller_sku": sku.seller_sku,
                    "price": {"currency": "USD", "tax_exclusive_price": "19.99"},
                    "inventory": [{"warehouse_id": w, "quantity": q} for w, q in sku.stock.items()],
                }
                for sku in (self.skus[sku_id] for sku_id in product.sku_ids)
            ],
        }

    def inventory_json(self, skus: list[Sku]) -> list[dict[str, Any]]:
        by_product: dict[str, list[Sku]] = {}
        for sku in skus:
            by_product.setdefault(sku.product_id, []).append(sku)
        committed = self._committed()
        return [
            {
                "product_id": product_id,
                "skus": [
                    {
                        "id": sku.id,
                        "seller_sku": sku.seller_sku,
                        "total_available_quantity": sku.total,
                        "total_committed_quantity": sum(committed.get((sku.id, w), 0) for w in sku.stock),
                        "warehouse_inventory": [
                            {
                                "warehouse_id": w,
                                "available_quantity": q,
                                "committed_quantity": committed.get((sku.id, w), 0),
                            }
                            for w, q in sku.stock.items()
                        ],
                    }
                    for sku in group
                ],
            }
            for product_id, group in by_product.items()
        ]

    def _committed(self) -> dict[tuple[str, str], int]:
        units: dict[tuple[str, str], int] = {}
        for order in self.orders.values():
            for item in order.items:
                if item.status != CANCELLED:
                    units[(item.sku_id, item.warehouse_id)] = (
                        units.get((item.sku_id, item.warehouse_id), 0) + 1
                    )
        return units

    def order_json(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "status": order.status,
            "create_time": order.created,
            "update_time": order.updated,
            "cancel_reason": order.cancel_reason,
            "line_items": [
                {
                    "id": item.id,
                    "sku_id": item.sku_id,
                    "seller_sku": item.seller_sku,
                    "product_id": item.product_id,
                    "display_status": item.status,
                    "sale_price": "19.99",
                    "is_gift": False,
                }
                for item in order.items
            ],
        }


def _stock_of(entry: dict[str, Any], seller_sku: str) -> dict[str, int]:
    warehouses = entry.get("warehouses")
    if warehouses is None:
        quantity = entry.get("quantity", 0)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise ValueError(f"item {seller_sku!r}: 'quantity' must be a non-negative integer")
        return {DEFAULT_WAREHOUSE: quantity}
    if (
        not isinstance(warehouses, dict)
        or not warehouses
        or not all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in warehouses.values())
    ):
        raise ValueError(f"item {seller_sku!r}: 'warehouses' must map warehouse ids to units")
    return dict(warehouses)


def _inventory_changes(sku: Sku, inventory: list[Any]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    changes: dict[str, int] = {}
    extra: list[dict[str, Any]] = []
    for row in inventory:
        if not isinstance(row, dict):
            raise TtsError(INVALID_PARAMS, "inventory[] must be objects.")
        quantity = row.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise TtsError(INVALID_PARAMS, "inventory[].quantity must be a non-negative integer.")
        warehouse = row.get("warehouse_id")
        if warehouse is None:
            # Only a SKU with a single warehouse may leave it out.
            if len(sku.stock) != 1:
                extra.append(
                    {"warehouse_id": "", "code": INVALID_PARAMS, "message": "warehouse_id is required."}
                )
                continue
            warehouse = next(iter(sku.stock))
        if warehouse not in sku.stock:
            extra.append(
                {"warehouse_id": warehouse, "code": WAREHOUSE_NOT_FOUND, "message": "Warehouse not found."}
            )
            continue
        changes[warehouse] = quantity
    return changes, extra


def _sku_error(
    sku_id: str, code: int, message: str, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": {"sku_id": sku_id, "extra_errors": extra or []}}
