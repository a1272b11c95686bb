"""The Tiny sandbox's stock webhook: an unsigned POST to one URL each time a product's stock changes.

As Tiny's (set per account, with any URL), it carries no signature and no delivery id:
``{"versao", "cnpj", "tipo": "estoque", "dados": {"idProduto", "sku", "saldo", "tipoEstoque"}}``.
Tiny retries a refused delivery (up to 15 times, about 5 minutes apart); here, ``retries`` times.
"""

from __future__ import annotations

import random

import httpx
import structlog

from connectors import sandbox_kit
from connectors.sandbox_kit import Faults
from connectors.tiny.sandbox_account import Account, Product

CNPJ = "00000000000191"


class StockWebhooks(sandbox_kit.WebhookSender):
    log = structlog.get_logger("syncd.sandbox.tiny")
    retries = 2

    def __init__(
        self,
        url: str,
        account: Account,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        super().__init__(url, faults, rng, transport)
        self.account = account
        account.on_stock_change.append(self.stock_changed)

    def stock_changed(self, product: Product) -> None:
        balance = self.account.balance(product)
        payload = {
            "versao": "1.0.0",
            "cnpj": CNPJ,
            "tipo": "estoque",
            "dados": {
                "tipoEstoque": "F",
                "saldo": balance["saldo"],
                "idProduto": str(product.id),
                "sku": product.sku,
                "skuMapeamento": "",
                "skuMapeamentoPai": "",
            },
        }
        self._schedule(payload, lambda body: {"Content-Type": "application/json"}, sku=product.sku)
