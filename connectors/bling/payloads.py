"""Bling API v3 answers turned into plain values, refusing what does not have the documented shape.

Every function raises ProtocolError naming the endpoint and the field; a single unusable product
in a list is left out (and logged by the caller), never the whole answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.http import json_body
from syncd.errors import ProtocolError


@dataclass(frozen=True)
class Product:
    id: int
    code: str


@dataclass(frozen=True)
class Balance:
    product_id: int
    code: str | None
    virtual_total: float
    deposits: dict[int, float]  # deposit id -> saldoVirtual


@dataclass(frozen=True)
class BlingFailure:
    """Bling's error envelope: ``{"error": {"type", "message", "description", "fields"?}}``."""

    kind: str
    message: str
    period: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"[:300]


def _where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"


def data_of(response: httpx.Response, expect: type, connector: str) -> Any:
    body = json_body(response, dict, connector=connector)
    data = body.get("data")
    if not isinstance(data, expect):
        raise ProtocolError(
            f"{_where(response)} answered without a 'data' {expect.__name__}", connector=connector
        )
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def products(response: httpx.Response, connector: str) -> tuple[list[Product], list[str]]:
    """A page of ``GET /produtos``: the products with a code, and why others were left out."""
    items = data_of(response, list, connector)
    found, skipped = [], []
    for i, item in enumerate(items):
        pid = _int(item.get("id")) if isinstance(item, dict) else None
        code = item.get("codigo") if isinstance(item, dict) else None
        if pid is None:
            skipped.append(f"data[{i}] has no integer id")
        elif not isinstance(code, str) or not code.strip():
            skipped.append(f"product {pid} has no codigo (SKU)")
        else:
            found.append(Product(pid, code.strip()))
    return found, skipped


def balances(response: httpx.Response, connector: str) -> tuple[list[Balance], dict[int | None, str]]:
    """``GET /estoques/saldos``: each product's virtual balance, in total and per deposit, and why
    others were left out (by product id)."""
    items = data_of(response, list, connector)
    found: list[Balance] = []
    skipped: dict[int | None, str] = {}
    for i, item in enumerate(items):
        product = item.get("produto") if isinstance(item, dict) else None
        pid = _int(product.get("id")) if isinstance(product, dict) else None
        if pid is None or not isinstance(item, dict):
            skipped[None] = f"data[{i}] has no produto.id"
            continue
        total = _number(item.get("saldoVirtualTotal"))
        if total is None:
            skipped[pid] = f"product {pid}: saldoVirtualTotal is not a number"
            continue
        deposits: dict[int, float] = {}
        for entry in item.get("depositos") or []:
            did = _int(entry.get("id")) if isinstance(entry, dict) else None
            value = _number(entry.get("saldoVirtual")) if isinstance(entry, dict) else None
            if did is not None and value is not None:
                deposits[did] = value
        code = product.get("codigo") if isinstance(product, dict) else None
        found.append(Balance(pid, code if isinstance(code, str) else None, total, deposits))
    return found, skipped


def created_id(response: httpx.Response, connector: str) -> int:
    """The id of what a ``POST`` created: ``{"data": {"id": ...}}``."""
    data = data_of(response, dict, connector)
    created = _int(data.get("id"))
    if created is None:
        raise ProtocolError(f"{_where(response)} answered no integer data.id", connector=connector)
    return created


def orders_by_number(response: httpx.Response, connector: str) -> dict[str, list[int]]:
    """Ids of the orders in a ``GET /pedidos/vendas`` page, by ``numeroLoja`` (lowest id first)."""
    items = data_of(response, list, connector)
    found: dict[str, list[int]] = {}
    for item in items:
        if not isinstance(item, dict) or _int(item.get("id")) is None:
            continue
        number = item.get("numeroLoja")
        if isinstance(number, str) and number:
            found.setdefault(number, []).append(int(item["id"]))
    return {number: sorted(ids) for number, ids in found.items()}


def failure(response: httpx.Response) -> BlingFailure:
    """The error envelope of a refused request (a short, safe summary when it is not one)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return BlingFailure(f"HTTP {response.status_code}", response.text[:120].strip() or "no body")
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return BlingFailure(f"HTTP {response.status_code}", str(body)[:120])
    kind = str(error.get("type") or f"HTTP {response.status_code}")
    parts = [str(error.get(k)) for k in ("message", "description") if error.get(k)]
    fields = error.get("fields")
    if isinstance(fields, list):
        parts += [str(f.get("msg")) for f in fields if isinstance(f, dict) and f.get("msg")]
    period = error.get("period") if isinstance(error.get("period"), str) else None
    return BlingFailure(kind, "; ".join(dict.fromkeys(parts)) or "no message", period)


def whole_units(value: float) -> int | None:
    """Bling keeps decimals; syncd sells whole units. None for a fractional balance."""
    return int(value) if value == int(value) else None


def id_params(name: str, ids: Iterable[int | str]) -> list[tuple[str, str]]:
    return [(name, str(i)) for i in ids]
