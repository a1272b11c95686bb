"""Bling webhooks: ``X-Bling-Signature-256`` checked on the raw body in constant time, deliveries
deduplicated on ``eventId``, and a stock event older than one already taken for the same product
marked stale (Bling delivers out of order and retries for days). A webhook is a hint to read the
product's balance again, never a quantity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.errors import PayloadError, SignatureError

SIGNATURE_HEADER = "x-bling-signature-256"
SEEN_EVENTS = 10_000  # event ids remembered in memory (the ledger's webhook_seen keeps them longer)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, connector: str) -> None:
    given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
    if not given:
        raise SignatureError("webhook without X-Bling-Signature-256", connector=connector)
    if not hmac.compare_digest(given.strip().encode(), sign(secret, body).encode()):
        raise SignatureError("webhook signature does not match the body", connector=connector)


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event: str
    at: datetime
    product_id: int | None
    deposit_id: int | None


def parse(body: bytes, connector: str) -> Delivery:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"webhook body is not JSON ({len(body)} bytes)", connector=connector) from exc
    if not isinstance(payload, dict):
        raise PayloadError("webhook body is not a JSON object", connector=connector)
    event_id, event, date, data = (payload.get(k) for k in ("eventId", "event", "date", "data"))
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("webhook without eventId", connector=connector)
    if not isinstance(event, str) or not event:
        raise PayloadError(f"webhook {event_id}: no event name", connector=connector)
    if not isinstance(data, dict):
        raise PayloadError(f"webhook {event_id}: data is not an object", connector=connector)
    try:
        at = datetime.fromisoformat(str(date))
    except ValueError:
        raise PayloadError(
            f"webhook {event_id}: date {str(date)[:40]!r} is not ISO 8601", connector=connector
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    product = data.get("produto") if isinstance(data.get("produto"), dict) else data
    pid = product.get("id") if isinstance(product, dict) else None
    deposit = data.get("deposito")
    did = deposit.get("id") if isinstance(deposit, dict) else None
    return Delivery(
        event_id,
        event,
        at,
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        did if isinstance(did, int) and not isinstance(did, bool) else None,
    )


class WebhookState:
    """What deliveries were taken: event ids (bounded) and the newest event time per product."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._latest: dict[int, datetime] = {}

    def duplicate(self, event_id: str) -> bool:
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        return False

    def stale(self, product_id: int, at: datetime) -> bool:
        """True if an event newer than ``at`` was already taken for the product (else remember it)."""
        latest = self._latest.get(product_id)
        if latest is not None and at < latest:
            return True
        self._latest[product_id] = at
        return False
