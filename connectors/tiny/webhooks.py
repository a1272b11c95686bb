"""Tiny's stock webhook, read as a hint: which SKUs to read again, never a quantity to trust.

Tiny signs nothing (webhooks are set per account, with any URL), so anyone who knows the URL can
post one. A hint only triggers a balance read through the API, which is authenticated: a forged
or stale delivery costs a read, never a wrong quantity. The body is
``{"tipo": "estoque", "dados": {"idProduto", "sku", "saldo", "tipoEstoque", ...}, ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from syncd.errors import PayloadError

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class StockHint:
    """SKUs (and Tiny product ids) whose stock may have changed; empty for other notifications."""

    skus: frozenset[str] = field(default_factory=frozenset)
    product_ids: frozenset[int] = field(default_factory=frozenset)
    kind: str = ""


def parse_stock_webhook(body: bytes) -> StockHint:
    """Parse one delivery; PayloadError naming what is wrong when it cannot be understood."""
    if len(body) > MAX_BODY:
        raise PayloadError(f"Tiny webhook body of {len(body)} bytes is larger than {MAX_BODY}")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("Tiny webhook body is not JSON (truncated or malformed)") from exc
    if not isinstance(payload, dict):
        raise PayloadError("Tiny webhook body must be a JSON object")
    kind = payload.get("tipo")
    if not isinstance(kind, str) or not kind:
        raise PayloadError("Tiny webhook body has no 'tipo'")
    if kind != "estoque":
        return StockHint(kind=kind)  # another notification (orders, products): nothing to read
    data = payload.get("dados")
    if not isinstance(data, dict):
        raise PayloadError("Tiny stock webhook has no 'dados' object")
    sku = data.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise PayloadError("Tiny stock webhook: 'dados.sku' must be a string")
    raw_id = data.get("idProduto")
    product_id: int | None = None
    if isinstance(raw_id, str) and raw_id.strip().isdigit():
        product_id = int(raw_id)
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool) and raw_id > 0:
        product_id = raw_id
    elif raw_id not in (None, ""):
        raise PayloadError("Tiny stock webhook: 'dados.idProduto' must be a product id")
    sku = (sku or "").strip()
    if not sku and product_id is None:
        raise PayloadError("Tiny stock webhook names neither 'dados.sku' nor 'dados.idProduto'")
    return StockHint(
        skus=frozenset([sku]) if sku else frozenset(),
        product_ids=frozenset([product_id]) if product_id is not None else frozenset(),
        kind=kind,
    )
