"""The state behind the Bling sandbox: one account's products, deposits, balances, sales orders,
stock movements and OAuth grants, with Bling's rules (orders reserve stock until it is posted,
refresh tokens rotate, an authorization code works once within a minute).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CODE_TTL = timedelta(minutes=1)
REFRESH_TTL = timedelta(days=30)


class Refused(Exception):
    """A request Bling would refuse: ``kind`` is its error type, ``fields`` the field errors."""

    def __init__(
        self, kind: str, message: str, status: int = 400, fields: list[dict[str, Any]] | None = None
    ):
        self.kind, self.status, self.fields = kind, status, fields or []
        super().__init__(message)


@dataclass
class Product:
    id: int
    codigo: str
    nome: str
    changed_at: datetime


@dataclass
class Order:
    id: int
    numero: int
    numero_loja: str
    loja_id: int | None
    contato_id: int
    items: list[tuple[int, int]]  # (product id, units)
    created_at: datetime
    posted_deposit: int | None = None
    external: bool = False  # placed in Bling itself (a marketplace the ERP imports), not by syncd
    reversed: bool = False


@dataclass
class Movement:
    id: int
    product_id: int
    deposit_id: int
    operation: str
    quantity: int
    note: str


@dataclass
class Grant:
    access: str
    refresh: str
    access_expires: datetime
    refresh_expires: datetime


StockListener = Callable[[str, Product, int, dict[str, Any]], None]


@dataclass
class BlingAccount:
    """One Bling account. Quantities are whole units (Bling stores decimals; syncd sells units)."""

    client_id: str
    client_secret: str
    company_id: str = "sandbox-company"
    access_ttl: timedelta = timedelta(hours=6)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    deposits: dict[int, str] = field(default_factory=lambda: {1: "Geral"})
    products: dict[int, Product] = field(default_factory=dict)
    physical: dict[tuple[int, int], int] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    movements: list[Movement] = field(default_factory=list)
    codes: dict[str, datetime] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)  # by access token
    listeners: list[StockListener] = field(default_factory=list)
    _next_id: int = 1000

    @property
    def default_deposit(self) -> int:
        return next(iter(self.deposits))

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ catalogue and stock
    def by_code(self, codigo: str) -> Product | None:
        return next((p for p in self.products.values() if p.codigo == codigo), None)

    def ensure_product(self, codigo: str) -> Product:
        product = self.by_code(codigo)
        if product is None:
            product = Product(self._id(), codigo, f"Produto {codigo}", self.now())
            self.products[product.id] = product
        return product

    def reserved(self, product_id: int, deposit_id: int) -> int:
        """Units of open orders not yet posted: Bling reserves them in the default deposit."""
        if deposit_id != self.default_deposit:
            return 0
        return sum(
            units
            for order in self.orders.values()
            if order.posted_deposit is None and not order.reversed
            for pid, units in order.items
            if pid == product_id
        )

    def balance(self, product_id: int, deposit_id: int) -> tuple[int, int]:
        """(saldoFisico, saldoVirtual) of a product in a deposit."""
        fisico = self.physical.get((product_id, deposit_id), 0)
        return fisico, fisico - self.reserved(product_id, deposit_id)

    def totals(self, product_id: int) -> tuple[int, int]:
        pairs = [self.balance(product_id, d) for d in self.deposits]
        return sum(p for p, _ in pairs), sum(v for _, v in pairs)

    def set_stock(self, codigo: str, units: int, deposit_id: int | None = None) -> Product:
        product = self.ensure_product(codigo)
        deposit = self.default_deposit if deposit_id is None else deposit_id
        if deposit not in self.deposits:
            raise Refused("VALIDATION_ERROR", f"deposit {deposit} does not exist")
        self.physical[(product.id, deposit)] = units
        self._notify("stock.updated", product, deposit, "B", units)
        return product

    def move(self, product_id: int, deposit_id: int, operation: str, units: int, note: str = "") -> Movement:
        if product_id not in self.products:
            raise Refused("RESOURCE_NOT_FOUND", f"product {product_id} not found", 404)
        if deposit_id not in self.deposits:
            raise Refused("VALIDATION_ERROR", f"deposit {deposit_id} not found")
        key = (product_id, deposit_id)
        current = self.physical.get(key, 0)
        if operation == "B":
            self.physical[key] = units
        elif operation == "E":
            self.physical[key] = current + units
        elif current - units < 0:
            raise Refused(
                "VALIDATION_ERROR",
                "Estoque insuficiente",
                fields=[
                    {"code": 1, "msg": f"only {current} in deposit {deposit_id}", "element": "quantidade"}
                ],
            )
        else:
            self.physical[key] = current - units
        movement = Movement(self._id(), product_id, deposit_id, operation, units, note)
        self.movements.append(movement)
        self._notify("stock.updated", self.products[product_id], deposit_id, operation, units)
        return movement

    def _notify(self, event: str, product: Product, deposit_id: int, operation: str, units: int) -> None:
        fisico, virtual = self.totals(product.id)
        data = {
            "produto": {"id": product.id},
            "deposito": {"id": deposit_id},
            "operacao": operation,
            "quantidade": units,
            "saldoFisicoTotal": fisico,
            "saldoVirtualTotal": virtual,
        }
        for listener in self.listeners:
            listener(event, product, deposit_id, data)

    # ------------------------------------------------------------------ sales orders
    def create_order(
        self,
        numero_loja: str,
        loja_id: int | None,
        contato_id: int,
        items: list[tuple[int, int]],
        external: bool = False,
    ) -> Order:
        for product_id, _ in items:
            if product_id not in self.products:
                raise Refused(
                    "VALIDATION_ERROR",
                    "Não foi possível salvar a venda",
                    fields=[{"code": 2, "msg": f"Produto {product_id} não encontrado", "element": "itens"}],
                )
        order = Order(
            self._id(),
            len(self.orders) + 1,
            numero_loja,
            loja_id,
            contato_id,
            items,
            self.now(),
            external=external,
        )
        self.orders[order.id] = order
        for product_id, _ in items:
            self._notify("virtual_stock.updated", self.products[product_id], self.default_deposit, "R", 0)
        return order

    def post_order(self, order_id: int, deposit_id: int | None) -> None:
        order = self._order(order_id)
        if order.posted_deposit is not None or order.reversed:
            return  # already posted (or reversed): Bling posts an order's stock once
        deposit = self.default_deposit if deposit_id is None else deposit_id
        for product_id, units in order.items:
            current = self.physical.get((product_id, deposit), 0)
            if current < units:
                raise Refused(
                    "VALIDATION_ERROR",
                    "Estoque insuficiente",
                    fields=[
                        {"code": 1, "msg": f"only {current} of product {product_id}", "element": "itens"}
                    ],
                )
        for product_id, units in order.items:
            self.physical[(product_id, deposit)] = self.physical.get((product_id, deposit), 0) - units
        order.posted_deposit = deposit
        for product_id, units in order.items:
            self._notify("stock.updated", self.products[product_id], deposit, "S", units)

    def reverse_order(self, order_id: int) -> None:
        order = self._order(order_id)
        deposit = order.posted_deposit
        if deposit is None:
            raise Refused("VALIDATION_ERROR", "O estoque desta venda não foi lançado")
        for product_id, units in order.items:
            self.physical[(product_id, deposit)] = self.physical.get((product_id, deposit), 0) + units
        order.posted_deposit = None
        # syncd reverses cancelled sales: the order then reserves nothing either.
        order.reversed = True
        for product_id, units in order.items:
            self._notify("stock.updated", self.products[product_id], deposit, "E", units)

    def _order(self, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise Refused("RESOURCE_NOT_FOUND", f"Pedido de venda {order_id} não encontrado", 404)
        return order

    # ------------------------------------------------------------------ OAuth
    def issue_code(self) -> str:
        code = secrets.token_hex(16)
        self.codes[code] = self.now() + CODE_TTL
        return code

    def exchange(self, grant_type: str, code: str | None, refresh: str | None) -> Grant:
        now = self.now()
        if grant_type == "authorization_code":
            expires = self.codes.pop(code or "", None)
            if expires is None or expires < now:
                raise Refused("invalid_grant", "Invalid authorization code", 400)
        elif grant_type == "refresh_token":
            # Rotation: the refresh token used is spent, whatever happens to the answer.
            old = next((g for g in self.grants.values() if g.refresh == refresh), None)
            if old is None or old.refresh_expires < now:
                raise Refused("invalid_grant", "Invalid refresh token", 400)
            del self.grants[old.access]
        else:
            raise Refused("unsupported_grant_type", f"grant_type {grant_type!r} is not supported", 400)
        grant = Grant(secrets.token_hex(24), secrets.token_hex(24), now + self.access_ttl, now + REFRESH_TTL)
        self.grants[grant.access] = grant
        return grant

    def valid_access(self, token: str) -> bool:
        grant = self.grants.get(token)
        return grant is not None and grant.access_expires > self.now()

    @property
    def refresh_tokens(self) -> set[str]:
        return {g.refresh for g in self.grants.values()}
