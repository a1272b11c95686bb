"""Strict decoding of the mock ERP's answers: anything unexpected is a ProtocolError naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from connectors.base import Quarantined, StockRecord
from connectors.http import json_body
from connectors.limits import quarantine
from syncd.errors import ProtocolError


@dataclass(frozen=True)
class StockAnswer:
    records: list[StockRecord]
    cursor: str
    next_page_token: str | None
    quarantined: list[Quarantined]


@dataclass(frozen=True)
class MovementsAnswer:
    acknowledged: list[str]
    rejected: list[tuple[str, str]]


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


class _Reader:
    """Checks one decoded body; every failure names the request and the JSON path at fault."""

    def __init__(self, response: httpx.Response, connector: str):
        self.connector = connector
        self.where = f"{response.request.method} {response.request.url.path}"
        self.body: dict[str, Any] = json_body(response, dict, connector=connector)

    def fail(self, path: str, value: Any, expected: str) -> NoReturn:
        raise ProtocolError(
            f"{self.where} answered {path} = {_show(value)}, expected {expected}", connector=self.connector
        )

    def get(self, obj: dict[str, Any], name: str, path: str) -> Any:
        if name not in obj:
            raise ProtocolError(f"{self.where} answered {path} without {name!r}", connector=self.connector)
        return obj[name]

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, value, "an object")
        return value

    def array(self, obj: dict[str, Any], name: str, path: str) -> list[Any]:
        value = self.get(obj, name, path)
        if not isinstance(value, list):
            self.fail(name if path == "body" else f"{path}.{name}", value, "a list")
        return value

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(path, value, "a non-empty string")
        return value

    def count(self, value: Any, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(path, value, "a non-negative integer")
        return value


def stock_answer(
    response: httpx.Response, connector: str, *, max_quantity: int, warehouses: Sequence[str] | None = None
) -> StockAnswer:
    """Decode ``GET /api/v1/stock``: ``{"items": [{"sku", "on_hand", "seq", "warehouses"?}],
    "cursor", "next_page_token"}``.

    The cursor stays opaque here (the ERP's latest change sequence number, as a string). An item
    that is malformed or whose on-hand is above ``max_quantity`` is quarantined, not returned, so
    that the other records (and the cursor) still count. With ``warehouses``, on-hand is the sum
    of the item's units in those (a warehouse it does not list holds none of it), and an item
    without its ``warehouses`` object is malformed.
    """
    r = _Reader(response, connector)
    records = []
    quarantined = []
    for i, raw in enumerate(r.array(r.body, "items", "body")):
        path = f"items[{i}]"
        try:
            item = r.mapping(raw, path)
            sku = r.text(r.get(item, "sku", path), f"{path}.sku")
            on_hand = r.count(r.get(item, "on_hand", path), f"{path}.on_hand")
            r.count(r.get(item, "seq", path), f"{path}.seq")
            if warehouses is not None:
                levels = r.mapping(r.get(item, "warehouses", path), f"{path}.warehouses")
                on_hand = sum(r.count(levels.get(w, 0), f"{path}.warehouses.{w}") for w in warehouses)
            if on_hand > max_quantity:
                r.fail(f"{path}.on_hand", on_hand, f"an integer from 0 to {max_quantity} (max_quantity)")
        except ProtocolError as exc:
            ref = raw.get("sku") if isinstance(raw, dict) else None
            reason = str(exc).removeprefix(f"{connector}: ")
            quarantined.append(quarantine(connector, "stock", ref, reason, raw))
            continue
        records.append(StockRecord(sku=sku, on_hand=on_hand))
    cursor = r.text(r.get(r.body, "cursor", "body"), "cursor")
    token = r.get(r.body, "next_page_token", "body")
    if token is not None:
        token = r.text(token, "next_page_token")
    return StockAnswer(records=records, cursor=cursor, next_page_token=token, quarantined=quarantined)


def warehouses_answer(response: httpx.Response, connector: str) -> list[str]:
    """Decode ``GET /api/v1/warehouses``: ``{"warehouses": [{"name"}]}``."""
    r = _Reader(response, connector)
    names = []
    for i, raw in enumerate(r.array(r.body, "warehouses", "body")):
        path = f"warehouses[{i}]"
        names.append(r.text(r.get(r.mapping(raw, path), "name", path), f"{path}.name"))
    return names


def movements_answer(response: httpx.Response, connector: str, sent: set[str]) -> MovementsAnswer:
    """Decode ``POST /api/v1/movements``: ``{"acknowledged": [key], "rejected": [{"key", "reason"}]}``."""
    r = _Reader(response, connector)
    acknowledged = []
    for i, raw in enumerate(r.array(r.body, "acknowledged", "body")):
        key = r.text(raw, f"acknowledged[{i}]")
        if key not in sent:
            r.fail(f"acknowledged[{i}]", key, "a key of a movement sent")
        acknowledged.append(key)
    rejected = []
    for i, raw in enumerate(r.array(r.body, "rejected", "body")):
        path = f"rejected[{i}]"
        entry = r.mapping(raw, path)
        key = r.text(r.get(entry, "key", path), f"{path}.key")
        if key not in sent:
            r.fail(f"{path}.key", key, "a key of a movement sent")
        reason = r.get(entry, "reason", path)
        if not isinstance(reason, str):
            r.fail(f"{path}.reason", reason, "a string")
        rejected.append((key, reason))
    return MovementsAnswer(acknowledged=acknowledged, rejected=rejected)


def imported_answer(response: httpx.Response, connector: str, asked: set[str]) -> set[str]:
    """Decode ``GET /api/v1/imported-orders``: ``{"imported": [ref]}``, each one of the refs asked."""
    r = _Reader(response, connector)
    imported = set()
    for i, raw in enumerate(r.array(r.body, "imported", "body")):
        ref = r.text(raw, f"imported[{i}]")
        if ref not in asked:
            r.fail(f"imported[{i}]", ref, "one of the references asked")
        imported.add(ref)
    return imported
