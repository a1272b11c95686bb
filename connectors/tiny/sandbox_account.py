"""The Tiny sandbox's account: products, deposits, balances, sales orders and OAuth tokens.

Plain in-memory state (the sandbox's handlers run on one event loop, so no lock). Quantities follow
Tiny: ``saldo`` per deposit, ``reservado`` = units of open orders not yet posted, ``disponivel`` =
saldo - reservado. An order reserves on creation; posting its stock (``lancar-estoque``, what
invoicing does) turns the reservation into an outflow; cancelling releases the reservation, or
returns the units if they were posted (assumed: Tiny's docs do not say).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.tiny.wire import CANCELLED, format_time

OPEN = 0


@dataclass
class Deposit:
    id: int
    nome: str
    desconsiderar: bool = False


@dataclass
class Product:
    id: int
    sku: str
    descricao: str
    created: datetime
    changed: datetime
    situacao: str = "A"


@dataclass
class Order:
    id: int
    numero: int
    ecommerce_number: str | None
    ecommerce_id: int | None
    contact_id: int
    deposit_id: int
    items: list[tuple[int, float]]
    created: datetime
    situacao: int = OPEN
    posted: bool = False


@dataclass
class Tokens:
    """OAuth state, as Tiny's Keycloak realm keeps it. Used refresh tokens stay valid until they
    expire (Keycloak's default) unless ``revoke_used`` is set."""

    clients: dict[str, str] = field(default_factory=dict)
    access_lifetime: int = 4 * 3600
    refresh_lifetime: int = 24 * 3600
    revoke_used: bool = False
    codes: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # code -> client, redirect, expiry
    access: dict[str, float] = field(default_factory=dict)
    refresh: dict[str, float] = field(default_factory=dict)
    issued: int = 0


class Account:
    """One Tiny account: what the sandbox's API reads and writes, and its hooks inspect."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.deposits: dict[int, Deposit] = {1: Deposit(1, "Geral")}
        self.products: dict[int, Product] = {}
        self.saldo: dict[tuple[int, int], float] = {}
        self.orders: dict[int, Order] = {}
        self.tokens = Tokens()
        # Called with each product whose stock changed (the sandbox's stock webhook listens).
        self.on_stock_change: list[Callable[[Product], None]] = []
        self._next_id = 1000

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ catalogue and stock

    def default_deposit(self) -> int:
        return min(self.deposits)

    def add_deposit(self, deposit_id: int, nome: str, desconsiderar: bool = False) -> Deposit:
        self.deposits[deposit_id] = Deposit(deposit_id, nome, desconsiderar)
        return self.deposits[deposit_id]

    def product_by_sku(self, sku: str) -> Product | None:
        return next((p for p in self.products.values() if p.sku == sku), None)

    def set_stock(self, sku: str, quantity: float, deposit_id: int | None = None) -> Product:
        """Set a SKU's saldo in a deposit (the first by default), creating the product if new."""
        deposit_id = deposit_id if deposit_id is not None else self.default_deposit()
        if deposit_id not in self.deposits:
            raise ValueError(f"unknown deposit {deposit_id}; known: {sorted(self.deposits)}")
        product = self.product_by_sku(sku)
        now = self.now()
        if product is None:
            product = Product(self._new_id(), sku, f"Produto {sku}", now, now)
            self.products[product.id] = product
        self.saldo[(product.id, deposit_id)] = quantity
        product.changed = now
        self._changed(product)
        return product

    def _changed(self, product: Product) -> None:
        for listener in self.on_stock_change:
            listener(product)

    def reserved(self, product_id: int, deposit_id: int) -> float:
        return sum(
            qty
            for o in self.orders.values()
            if o.situacao != CANCELLED and not o.posted and o.deposit_id == deposit_id
            for pid, qty in o.items
            if pid == product_id
        )

    def balance(self, product: Product) -> dict[str, object]:
        """``GET /estoque/{id}``'s body."""
        rows: list[dict[str, object]] = []
        totals = [0.0, 0.0, 0.0]
        for d in self.deposits.values():
            saldo = self.saldo.get((product.id, d.id), 0.0)
            reservado = self.reserved(product.id, d.id)
            figures = (saldo, reservado, saldo - reservado)
            if not d.desconsiderar:  # a deposit Tiny sets aside stays out of the product's totals
                totals = [t + f for t, f in zip(totals, figures, strict=True)]
            rows.append(
                {"id": d.id, "nome": d.nome, "desconsiderar": d.desconsiderar}
                | dict(zip(("saldo", "reservado", "disponivel"), figures, strict=True))
            )
        return {
            "id": product.id,
            "nome": product.descricao,
            "codigo": product.sku,
            "unidade": "UN",
            "saldo": totals[0],
            "reservado": totals[1],
            "disponivel": totals[2],
            "depositos": rows,
        }

    def listing(self, product: Product) -> dict[str, object]:
        """A ``GET /produtos`` item."""
        return {
            "id": product.id,
            "sku": product.sku,
            "descricao": product.descricao,
            "tipo": "S",
            "situacao": product.situacao,
            "dataCriacao": format_time(product.created),
            "dataAlteracao": format_time(product.changed),
            "unidade": "UN",
            "gtin": "",
            "tipoVariacao": "N",
        }

    def available(self, sku: str) -> float:
        product = self.product_by_sku(sku)
        return float(self.balance(product)["disponivel"]) if product else 0.0  # type: ignore[arg-type]

    # ------------------------------------------------------------------ orders

    def _touch(self, order: Order) -> None:
        now = self.now()
        for product_id, _ in order.items:
            if product_id in self.products:
                self.products[product_id].changed = now
                self._changed(self.products[product_id])

    def create_order(
        self,
        contact_id: int,
        items: list[tuple[int, float]],
        ecommerce_number: str | None,
        ecommerce_id: int | None,
        deposit_id: int | None,
    ) -> Order:
        """A new sales order, reserving its items; a repeated ecommerce number makes a second order,
        as Tiny does."""
        order = Order(
            id=self._new_id(),
            numero=len(self.orders) + 1,
            ecommerce_number=ecommerce_number,
            ecommerce_id=ecommerce_id,
            contact_id=contact_id,
            deposit_id=deposit_id if deposit_id is not None else self.default_deposit(),
            items=items,
            created=self.now(),
        )
        self.orders[order.id] = order
        self._touch(order)
        return order

    def set_situacao(self, order: Order, situacao: int) -> None:
        if order.situacao == CANCELLED and situacao != CANCELLED:
            raise ValueError("o pedido está cancelado")
        if situacao == CANCELLED and order.situacao != CANCELLED and order.posted:
            self._move(order, +1)
            order.posted = False
        order.situacao = situacao
        self._touch(order)

    def post_stock(self, order: Order) -> None:
        if order.situacao == CANCELLED:
            raise ValueError("o pedido está cancelado")
        if order.posted:
            raise ValueError("o estoque do pedido já foi lançado")
        self._move(order, -1)
        order.posted = True
        self._touch(order)

    def reverse_stock(self, order: Order) -> None:
        if not order.posted:
            raise ValueError("o estoque do pedido não foi lançado")
        self._move(order, +1)
        order.posted = False
        self._touch(order)

    def _move(self, order: Order, sign: int) -> None:
        for product_id, qty in order.items:
            key = (product_id, order.deposit_id)
            self.saldo[key] = self.saldo.get(key, 0.0) + sign * qty

    def order_json(self, order: Order) -> dict[str, object]:
        return {
            "id": order.id,
            "numeroPedido": order.numero,
            "situacao": order.situacao,
            "data": format_time(order.created)[:10],
            "dataCriacao": format_time(order.created),
            "ecommerce": {
                "id": order.ecommerce_id,
                "nome": "Loja",
                "numeroPedidoEcommerce": order.ecommerce_number,
            },
            "cliente": {"id": order.contact_id},
            "deposito": {"id": order.deposit_id},
            "itens": [
                {
                    "produto": {"id": pid, "sku": self.products[pid].sku if pid in self.products else ""},
                    "quantidade": qty,
                }
                for pid, qty in order.items
            ],
            "estoqueLancado": order.posted,
        }

    # ------------------------------------------------------------------ OAuth

    def issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(16)
        self.tokens.codes[code] = (client_id, redirect_uri, self.clock() + 60)
        return code

    def issue_tokens(self) -> dict[str, object]:
        t = self.tokens
        now = self.clock()
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        t.access[access] = now + t.access_lifetime
        t.refresh[refresh] = now + t.refresh_lifetime
        t.issued += 1
        return {
            "access_token": access,
            "expires_in": t.access_lifetime,
            "refresh_token": refresh,
            "refresh_expires_in": t.refresh_lifetime,
            "token_type": "Bearer",
            "scope": "openid",
        }

    def access_valid(self, token: str) -> bool:
        expiry = self.tokens.access.get(token)
        return expiry is not None and expiry > self.clock()

    def use_refresh(self, token: str) -> bool:
        """Whether ``token`` may be exchanged now; used tokens die only when ``revoke_used``."""
        expiry = self.tokens.refresh.get(token)
        if expiry is None or expiry <= self.clock():
            return False
        if self.tokens.revoke_used:
            del self.tokens.refresh[token]
        return True

    def expire_access_tokens(self) -> int:
        count = len(self.tokens.access)
        self.tokens.access.clear()
        return count
