"""Strict decoding of Tiny's answers: anything unexpected is a ProtocolError naming the request and field.

Also the few formats both sides share: Tiny's local timestamps (``2024-01-31 09:30:00``, Brasília
time, which has had no daylight saving since 2019) and the error envelope (``mensagem``, ``detalhes``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

import httpx

from syncd.errors import ProtocolError

BRASILIA = timezone(timedelta(hours=-3))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CANCELLED = 2  # situacao of a cancelled sales order


def format_time(when: datetime) -> str:
    """``when`` as Tiny writes times: Brasília local time, to the second."""
    return when.astimezone(BRASILIA).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A Tiny timestamp as an aware datetime; ValueError if it is not one."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BRASILIA).astimezone(UTC)


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    changed: str | None  # dataAlteracao as Tiny wrote it
    parent: bool  # a product with variations: its stock lives in the variations


@dataclass(frozen=True)
class Balance:
    """A product's stock as ``GET /estoque/{id}`` reports it, per deposit id."""

    product_id: int
    sku: str
    saldo: float
    reservado: float
    disponivel: float
    deposits: dict[int, tuple[float, float, float, bool]]  # id -> saldo, reservado, disponivel, ignored
    deposit_names: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderSummary:
    id: int
    ecommerce_number: str | None
    situacao: int | None


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int | None


def remote_message(response: httpx.Response) -> str:
    """The error's own words, short and safe: Tiny's ``mensagem`` and ``detalhes``, or Keycloak's
    ``error``/``error_description``, or the first characters of the body."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k])[:200] for k in ("mensagem", "error", "error_description") if body.get(k)]
    details = body.get("detalhes")
    if isinstance(details, list):
        for item in details[:5]:
            if isinstance(item, dict):
                field, text = item.get("campo"), item.get("mensagem")
                parts.append(f"{field}: {text}" if field else str(text))
    return "; ".join(parts)[:400]


class Reader:
    """Checks one decoded body; every failure names the request and the JSON path at fault."""

    def __init__(self, response: httpx.Response, connector: str):
        self.connector = connector
        self.where = f"{response.request.method} {response.request.url.path}"
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(
                f"{self.where} answered a body that is not JSON ({len(response.content)} bytes,"
                " truncated or malformed)",
                connector=connector,
            ) from exc
        if not isinstance(body, dict):
            raise ProtocolError(
                f"{self.where} answered JSON of type {type(body).__name__}, expected an object",
                connector=connector,
            )
        self.body: dict[str, Any] = body

    def fail(self, path: str, value: Any, expected: str) -> NoReturn:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ProtocolError(
            f"{self.where} answered {path} = {shown} ({type(value).__name__}), expected {expected}",
            connector=self.connector,
        )

    def field(self, obj: dict[str, Any], name: str, path: str) -> Any:
        if name not in obj:
            raise ProtocolError(f"{self.where} answered {path} without {name!r}", connector=self.connector)
        return obj[name]

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, value, "an object")
        return value

    def items(self, obj: dict[str, Any], name: str, path: str) -> list[Any]:
        value = self.field(obj, name, path)
        if not isinstance(value, list):
            self.fail(f"{path}.{name}", value, "a list")
        return value

    def ident(self, value: Any, path: str) -> int:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            self.fail(path, value, "a positive integer id")
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                self.fail(path, value, "a number")
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self.fail(path, value, "a number")
        return float(value)

    def text(self, value: Any, path: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(path, value, "a string")
        return value

    def total(self) -> int:
        """``paginacao.total``: how many records the whole listing holds."""
        paging = self.obj(self.field(self.body, "paginacao", "body"), "paginacao")
        total = self.field(paging, "total", "paginacao")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            self.fail("paginacao.total", total, "a non-negative integer")
        return total


def products_page(response: httpx.Response, connector: str) -> tuple[list[Product], int]:
    """``GET /produtos``: ``{itens: [{id, sku, dataAlteracao, tipoVariacao, ...}], paginacao}``."""
    r = Reader(response, connector)
    products = []
    for i, raw in enumerate(r.items(r.body, "itens", "body")):
        path = f"itens[{i}]"
        item = r.obj(raw, path)
        sku = r.text(item.get("sku"), f"{path}.sku", optional=True) or ""
        changed = r.text(item.get("dataAlteracao"), f"{path}.dataAlteracao", optional=True)
        if changed:
            try:
                parse_time(changed)
            except ValueError:
                r.fail(f"{path}.dataAlteracao", changed, f"a time like {TIME_FORMAT!r}")
        products.append(
            Product(
                id=r.ident(r.field(item, "id", path), f"{path}.id"),
                sku=sku.strip(),
                changed=changed or None,
                parent=item.get("tipoVariacao") == "P",
            )
        )
    return products, r.total()


def balance(response: httpx.Response, connector: str) -> Balance:
    """``GET /estoque/{id}``: ``{id, codigo, saldo, reservado, disponivel, depositos: [...]}``."""
    r = Reader(response, connector)
    b = r.body
    deposits: dict[int, tuple[float, float, float, bool]] = {}
    names: dict[int, str] = {}
    for i, raw in enumerate(r.items(b, "depositos", "body")):
        path = f"depositos[{i}]"
        d = r.obj(raw, path)
        ident = r.ident(r.field(d, "id", path), f"{path}.id")
        names[ident] = d["nome"] if isinstance(d.get("nome"), str) else ""
        deposits[ident] = (
            r.number(r.field(d, "saldo", path), f"{path}.saldo"),
            r.number(r.field(d, "reservado", path), f"{path}.reservado"),
            r.number(r.field(d, "disponivel", path), f"{path}.disponivel"),
            d.get("desconsiderar") is True,
        )
    return Balance(
        product_id=r.ident(r.field(b, "id", "body"), "id"),
        sku=(r.text(b.get("codigo"), "codigo", optional=True) or "").strip(),
        saldo=r.number(r.field(b, "saldo", "body"), "saldo"),
        reservado=r.number(r.field(b, "reservado", "body"), "reservado"),
        disponivel=r.number(r.field(b, "disponivel", "body"), "disponivel"),
        deposits=deposits,
        deposit_names=names,
    )


def orders_page(response: httpx.Response, connector: str) -> tuple[list[OrderSummary], int]:
    """``GET /pedidos``: ``{itens: [{id, situacao, ecommerce: {numeroPedidoEcommerce}}], paginacao}``."""
    r = Reader(response, connector)
    orders = []
    for i, raw in enumerate(r.items(r.body, "itens", "body")):
        path = f"itens[{i}]"
        item = r.obj(raw, path)
        shop = item.get("ecommerce")
        number = None
        if shop is not None:
            number = r.text(
                r.obj(shop, f"{path}.ecommerce").get("numeroPedidoEcommerce"),
                f"{path}.ecommerce.numeroPedidoEcommerce",
                optional=True,
            )
        situacao = item.get("situacao")
        if situacao is not None and (not isinstance(situacao, int) or isinstance(situacao, bool)):
            r.fail(f"{path}.situacao", situacao, "an integer")
        orders.append(OrderSummary(r.ident(r.field(item, "id", path), f"{path}.id"), number, situacao))
    return orders, r.total()


def created_id(response: httpx.Response, connector: str) -> int:
    """``POST /pedidos``: ``{id, numeroPedido}``; the new order's id."""
    r = Reader(response, connector)
    return r.ident(r.field(r.body, "id", "body"), "id")


def token_answer(response: httpx.Response, connector: str) -> TokenAnswer:
    """The token endpoint's ``{access_token, refresh_token, expires_in, refresh_expires_in}``."""
    r = Reader(response, connector)
    b = r.body
    access = r.text(r.field(b, "access_token", "body"), "access_token")
    refresh = r.text(r.field(b, "refresh_token", "body"), "refresh_token")
    if not access or not refresh:
        raise ProtocolError(f"{r.where} answered an empty token", connector=connector)
    expires = b.get("expires_in")
    if not isinstance(expires, int) or isinstance(expires, bool) or expires <= 0:
        r.fail("expires_in", expires, "a positive number of seconds")
    refresh_expires = b.get("refresh_expires_in")
    if refresh_expires is not None and (not isinstance(refresh_expires, int) or refresh_expires < 0):
        r.fail("refresh_expires_in", refresh_expires, "a number of seconds")
    # Keycloak says 0 for a refresh token without an expiry of its own (an offline token).
    return TokenAnswer(access, refresh, expires, refresh_expires or None)
