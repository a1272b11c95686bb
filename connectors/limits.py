"""Plausibility limits on the quantities other systems send, and how a refused item is quarantined.

Every quantity from outside (an order line, an on-hand, a listing level) must be an integer from 0
to the connector's ``max_quantity``: a quantity of 10^9 from a signed webhook is a bug or an attack
upstream, and believing it would reserve a billion units and zero the SKU everywhere.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import structlog

from connectors.base import Quarantined

log = structlog.get_logger("syncd.limits")

EXCERPT_CHARS = 200
# Keys whose values never go into an excerpt: credentials, and the buyer's personal details.
_HIDDEN = (
    "token",
    "secret",
    "password",
    "auth",
    "signature",
    "sign",
    "cookie",
    "email",
    "phone",
    "address",
    "billing",
    "shipping",
    "customer",
    "buyer",
    "recipient",
    "name",
    "note",
)
_KEPT = frozenset({"sku", "seller_sku", "product_name", "sku_name"})


def quantity_problem(value: Any, maximum: int) -> str | None:
    """Why ``value`` is not a plausible quantity (``must be an integer from 0 to N, got ...``), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return None
    return f"must be an integer from 0 to {maximum}, got {_show(value)}"


def plausible_level(connector: str, sku: str, value: int | None, maximum: int) -> int | None:
    """A level read from a channel, or None (logged) when it is out of bounds: the SKU then reads
    as unknown, so no push is ever decided from it."""
    if value is None or 0 <= value <= maximum:
        return value
    log.warning("listing.level_refused", connector=connector, sku=sku, value=value, max_quantity=maximum)
    return None


def quarantine(
    connector: str, kind: Literal["order", "stock"], ref: Any, reason: str, raw: Any
) -> Quarantined:
    """A Quarantined item for ``raw``, logged once as ``order.quarantined`` or ``stock.quarantined``."""
    shown_ref = str(ref) if isinstance(ref, str | int) and not isinstance(ref, bool) and str(ref) else None
    item = Quarantined(
        connector=connector, kind=kind, ref=shown_ref, reason=reason[:300], excerpt=excerpt(raw)
    )
    log.warning(f"{kind}.quarantined", connector=connector, ref=item.ref, reason=item.reason)
    return item


def excerpt(raw: Any, limit: int = EXCERPT_CHARS) -> str:
    """Compact JSON of ``raw`` with credentials and buyer details left out, cut to ``limit`` characters."""
    try:
        text = json.dumps(_redacted(raw), separators=(",", ":"), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: ("…" if _hidden(str(key)) else _redacted(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _hidden(key: str) -> bool:
    lowered = key.lower()
    return lowered not in _KEPT and any(word in lowered for word in _HIDDEN)


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"
