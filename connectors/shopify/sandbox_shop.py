"""The in-memory shop behind the Shopify sandbox: variants, their levels at the shop's locations
(the primary one and any added), orders, and the GraphQL operations the connector sends, resolved
by operation name over their variables.

It keeps Shopify's rules where syncd can see them: 250-item pages and input arrays, cursors,
compare-and-set by API version, all-or-nothing ``inventorySetQuantities`` with its userError
codes, ``@idempotent`` replays, orders searched by ``updated_at`` and bulk queries as JSONL.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox_kit import ChangeJournal, StockShortage

LOCATION_ID = 1
LOCATION_GID = f"gid://shopify/Location/{LOCATION_ID}"
MAX_PAGE = 250
REASONS = frozenset(
    {"correction", "cycle_count_available", "received", "restock", "other", "damaged", "shrinkage"}
)
IDEMPOTENCY_VERSION = "2026-01"
CHANGE_FROM_REQUIRED_VERSION = "2026-04"


class GraphQLFailure(Exception):
    """A top-level error: ``{"errors": [{"message", "extensions": {"code"}}]}`` and no data."""

    def __init__(self, message: str, code: str):
        self.message = message
        self.code = code
        super().__init__(message)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def gql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def gid(kind: str, ident: int) -> str:
    return f"gid://shopify/{kind}/{ident}"


def at_least(version: str, floor: str) -> bool:
    return version == "unstable" or version >= floor


@dataclass
class Variant:
    id: int
    product_id: int
    item_id: int
    sku: str
    tracked: bool = True
    available: int | None = 0
    """``available`` at the primary location; None when the item is not stocked there."""
    levels: dict[str, int] = field(default_factory=dict)
    """``available`` at the other locations that stock the item, by location gid."""

    def level_at(self, location: Any) -> int | None:
        """``available`` at ``location``; None where the item is not stocked (or no such location)."""
        if location == LOCATION_GID:
            return self.available
        return self.levels.get(location) if isinstance(location, str) else None

    @property
    def shown(self) -> int | None:
        """What a shopper can buy: the sum over the locations that stock it (None: stocked nowhere)."""
        stocked = [level for level in (self.available, *self.levels.values()) if level is not None]
        return sum(stocked) if stocked else None


@dataclass
class Line:
    id: int
    variant_id: int
    sku: str
    quantity: int


@dataclass
class Order:
    id: int
    created: datetime
    updated: datetime
    lines: list[Line]
    cancelled: datetime | None = None


@dataclass
class BulkRun:
    id: int
    rows: list[dict[str, Any]]
    polls: int = 0
    status: str = "CREATED"


@dataclass
class Shop:
    locations: dict[str, str] = field(default_factory=lambda: {LOCATION_GID: "Main warehouse"})
    """Location gid -> name; the first is the primary location."""
    variants: dict[int, Variant] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    bulk: dict[int, BulkRun] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    journal: ChangeJournal = field(default_factory=ChangeJournal)
    _next_id: int = 1000

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ hooks

    def seed(self, entries: list[dict[str, Any]]) -> int:
        for entry in entries:
            sku, quantity = entry.get("sku"), entry.get("quantity", 0)
            if not isinstance(sku, str) or not sku:
                raise ValueError("each item needs a non-empty 'sku'")
            if not isinstance(quantity, int) or isinstance(quantity, bool):
                raise ValueError(f"{sku}: 'quantity' must be an integer")
            if self.by_sku(sku) is not None:
                raise ValueError(f"{sku}: already seeded")
            group = entry.get("parent") or sku
            if group not in self.products:
                self.products[group] = self.new_id()
            tracked = entry.get("tracked", True) is not False
            levels = self._seed_levels(sku, entry.get("locations"))
            ident = self.new_id()
            variant = Variant(ident, self.products[group], self.new_id(), sku, tracked, quantity, levels)
            self.variants[ident] = variant
            self.journal.changed(sku, None, variant.shown if tracked else None)
        return len(entries)

    def _seed_levels(self, sku: str, given: Any) -> dict[str, int]:
        """An item's ``locations``: ``{gid: units}`` at locations besides the primary one (added
        to the shop when new)."""
        if given is None:
            return {}
        if not isinstance(given, dict) or not all(
            isinstance(q, int) and not isinstance(q, bool) for q in given.values()
        ):
            raise ValueError(f"{sku}: 'locations' must map location gids to integer units")
        levels: dict[str, int] = {}
        for location, units in given.items():
            if not re.fullmatch(r"gid://shopify/Location/\d+", location):
                raise ValueError(f"{sku}: {location!r} is not a location gid")
            self.add_location(location)
            if location != LOCATION_GID:
                levels[location] = units
        return levels

    def add_location(self, location: str, name: str | None = None) -> None:
        """Add a location (or rename one); ``name`` defaults to its number."""
        if name is not None or location not in self.locations:
            self.locations[location] = name or f"Location {location.rsplit('/', 1)[-1]}"

    def by_sku(self, sku: str) -> Variant | None:
        return next((v for v in self.variants.values() if v.sku == sku), None)

    def by_item(self, ref: Any) -> Variant | None:
        match = re.fullmatch(r"gid://shopify/InventoryItem/(\d+)", ref) if isinstance(ref, str) else None
        if match is None:
            return None
        return next((v for v in self.variants.values() if v.item_id == int(match.group(1))), None)

    def set_available(
        self, variant: Variant, quantity: int, *, track: bool = False, location: str = LOCATION_GID
    ) -> None:
        """Set ``variant``'s ``available`` units at ``location`` (and track it if ``track``): every
        change of stock goes through here, so the journal sees it (as the sum a shopper sees)."""
        before = variant.shown if variant.tracked else None
        variant.tracked = variant.tracked or track
        if location == LOCATION_GID:
            variant.available = quantity
        else:
            variant.levels[location] = quantity
        self.journal.changed(variant.sku, before, variant.shown if variant.tracked else None)

    def set_shown(self, variant: Variant, quantity: int) -> None:
        """Make ``variant`` show ``quantity`` in all: at the primary location, 0 at the others."""
        before = variant.shown if variant.tracked else None
        variant.tracked = True
        variant.available = quantity
        variant.levels = dict.fromkeys(variant.levels, 0)
        self.journal.changed(variant.sku, before, variant.shown)

    def purchase(self, sku: str, quantity: int) -> Order:
        variant = self.by_sku(sku)
        if variant is None:
            raise LookupError(sku)
        if variant.tracked:
            available = variant.shown or 0
            if available < quantity:
                raise StockShortage(available)
            # Fulfilled from the locations in the shop's order, the primary one first.
            left = quantity
            for location in self.locations:
                level = variant.level_at(location)
                if left and level is not None and level > 0:
                    taken = min(level, left)
                    self.set_available(variant, level - taken, location=location)
                    left -= taken
        now = utc_now()
        order = Order(self.new_id(), now, now, [Line(self.new_id(), variant.id, sku, quantity)])
        self.orders[order.id] = order
        return order

    def cancel(self, order: Order) -> bool:
        """Cancel and restock; False when already cancelled."""
        if order.cancelled is not None:
            return False
        order.cancelled = order.updated = utc_now()
        for line in order.lines:
            variant = self.variants.get(line.variant_id)
            if variant is None or not variant.tracked:
                continue
            # Restocked at the first location that stocks the item.
            location = next((loc for loc in self.locations if variant.level_at(loc) is not None), None)
            if location is not None:
                self.set_available(
                    variant, (variant.level_at(location) or 0) + line.quantity, location=location
                )
        return True

    def order_rest(self, order: Order) -> dict[str, Any]:
        """The REST order JSON that order webhooks carry."""
        return {
            "id": order.id,
            "admin_graphql_api_id": gid("Order", order.id),
            "name": f"#{order.id}",
            "created_at": order.created.isoformat(),
            "updated_at": order.updated.isoformat(),
            "cancelled_at": order.cancelled.isoformat() if order.cancelled else None,
            "cancel_reason": "customer" if order.cancelled else None,
            "line_items": [
                {
                    "id": line.id,
                    "admin_graphql_api_id": gid("LineItem", line.id),
                    "variant_id": line.variant_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "current_quantity": 0 if order.cancelled else line.quantity,
                }
                for line in order.lines
            ],
        }

    # ------------------------------------------------------------------ GraphQL views

    def item_json(self, variant: Variant, levels: dict[str, Any]) -> dict[str, Any]:
        """The item with one level field per entry of ``levels`` (field name -> location id)."""
        item: dict[str, Any] = {
            "id": gid("InventoryItem", variant.item_id),
            "sku": variant.sku,
            "tracked": variant.tracked,
        }
        for name, location in levels.items():
            level = variant.level_at(location) if location in self.locations else None
            item[name] = None if level is None else {"quantities": [{"name": "available", "quantity": level}]}
        return item

    def variant_json(self, variant: Variant, levels: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": gid("ProductVariant", variant.id),
            "sku": variant.sku,
            "inventoryItem": self.item_json(variant, levels),
        }

    def order_json(self, order: Order, lines_first: int) -> dict[str, Any]:
        return {
            "id": gid("Order", order.id),
            "legacyResourceId": str(order.id),
            "updatedAt": gql_time(order.updated),
            "cancelledAt": gql_time(order.cancelled) if order.cancelled else None,
            "lineItems": lines_connection(order, lines_first, None),
        }


def line_json(line: Line) -> dict[str, Any]:
    return {"id": gid("LineItem", line.id), "sku": line.sku, "quantity": line.quantity}


def lines_connection(order: Order, first: int, after: str | None) -> dict[str, Any]:
    start = decode_cursor(after) if after else 0
    page = order.lines[start : start + first]
    end = start + len(page)
    more = end < len(order.lines)
    return {
        "nodes": [line_json(line) for line in page],
        "pageInfo": {"hasNextPage": more, "endCursor": encode_cursor(end) if page else None},
    }


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphQLFailure("Invalid cursor for current pagination sort.", "BAD_REQUEST") from exc


def page_size(variables: dict[str, Any], name: str = "first") -> int:
    first = variables.get(name)
    if not isinstance(first, int) or isinstance(first, bool) or first < 1:
        raise GraphQLFailure("you must provide one of first or last", "BAD_REQUEST")
    if first > MAX_PAGE:
        raise GraphQLFailure(f"The page size of {first} is over the maximum of {MAX_PAGE}.", "BAD_REQUEST")
    return first


_SEARCH = re.compile(r"updated_at:\s*(>=|<=|>|<)\s*'?([^'\s]+)'?")


def order_filter(search: Any) -> Callable[[Order], bool]:
    """The ``updated_at`` terms of an orders search string (other terms are not supported)."""
    if not isinstance(search, str) or not search.strip():
        return lambda order: True
    checks: list[Callable[[Order], bool]] = []
    for operator, value in _SEARCH.findall(search):
        try:
            bound = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise GraphQLFailure(f"Invalid search date {value!r}", "BAD_REQUEST") from exc
        bound = bound.replace(tzinfo=UTC) if bound.tzinfo is None else bound
        checks.append(_compare(operator, bound))
    return lambda order: all(check(order) for check in checks)


def _compare(operator: str, bound: datetime) -> Callable[[Order], bool]:
    if operator == ">=":
        return lambda order: order.updated >= bound
    if operator == ">":
        return lambda order: order.updated > bound
    if operator == "<=":
        return lambda order: order.updated <= bound
    return lambda order: order.updated < bound


_BULK_LEVEL = re.compile(r'(?:(\w+)\s*:\s*)?inventoryLevel\(\s*locationId:\s*"([^"]+)"\s*\)')
_LEVEL_VARIABLE = re.compile(r"^location(\d+)$")


def level_fields(variables: dict[str, Any]) -> dict[str, Any]:
    """The level fields a read asks for, from its variables: ``locationId`` gives the plain
    ``inventoryLevel``, ``location0``, ``location1``... give the aliases ``level0``, ``level1``..."""
    fields = {"inventoryLevel": variables["locationId"]} if "locationId" in variables else {}
    for name, value in variables.items():
        match = _LEVEL_VARIABLE.match(name)
        if match:
            fields[f"level{match.group(1)}"] = value
    return fields


def bulk_rows(shop: Shop, query: Any) -> list[dict[str, Any]]:
    """The JSONL rows of a bulk query over productVariants (the only one the sandbox runs)."""
    if not isinstance(query, str) or "productVariants" not in query:
        raise ValueError("the sandbox runs bulk queries over productVariants only")
    fields = {alias or "inventoryLevel": location for alias, location in _BULK_LEVEL.findall(query)}
    return [shop.variant_json(v, fields) for v in sorted(shop.variants.values(), key=lambda v: v.id)]
