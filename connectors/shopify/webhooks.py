"""Shopify webhook deliveries: the signature both sides compute, and parsing an order delivery.

Shopify signs the raw body: base64(HMAC-SHA256(app client secret, body)). The body of an order
topic is the REST order JSON. The headers (``X-Shopify-Webhook-Id`` and the rest) are not signed,
so deliveries are deduplicated on what the body says: a replayed body with fresh header ids is the
same delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from connectors.base import WebhookEvent
from connectors.limits import quarantine
from connectors.shopify.payloads import Invalid, read_rest_order
from syncd.errors import PayloadError, SignatureError

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"

ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled", "orders/paid"})


def signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_delivery(
    channel: str, secret: str | None, headers: Mapping[str, str], body: bytes, *, max_quantity: int
) -> WebhookEvent:
    """Verify and parse one delivery to ``channel``'s endpoint (see ChannelConnector.parse_webhook)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if not secret:
        raise SignatureError("webhook_secret is not configured; cannot verify deliveries", connector=channel)
    given = lowered.get(HMAC_HEADER.lower())
    if given is None:
        raise SignatureError(f"delivery has no {HMAC_HEADER} header", connector=channel)
    expected = signature(secret, body)
    if not hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace")):
        raise SignatureError("webhook signature does not match the body", connector=channel)

    topic = lowered.get(TOPIC_HEADER.lower(), "").strip()
    if not topic:
        raise PayloadError(f"delivery has no {TOPIC_HEADER} header", connector=channel)
    # Anyone holding one signed body can send it again with any headers (topic and ids included):
    # only the body counts. (An order's id and updated_at would not do: a cancellation can land
    # within the same second as the order.)
    dedupe_key = f"body:{hashlib.sha256(body).hexdigest()[:32]}"
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{topic} body is not JSON ({len(body)} bytes)", connector=channel) from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"{topic} body must be a JSON object", connector=channel)
    if topic not in ORDER_TOPICS:
        return WebhookEvent(dedupe_key=dedupe_key, lines=[], topic=topic)
    try:
        order = read_rest_order(payload, channel, "order", max_quantity=max_quantity)
    except Invalid as exc:
        # Signed, so it came from the shop: kept for a person instead of refused (a refusal would
        # only be sent again), and none of its lines reserved.
        item = quarantine(channel, "order", payload.get("id"), f"{topic} payload: {exc}", payload)
        return WebhookEvent(dedupe_key=dedupe_key, lines=[], topic=topic, quarantined=[item])
    return WebhookEvent(dedupe_key=dedupe_key, lines=order.lines, topic=topic)
