"""WooCommerce webhook deliveries: the signature both sides compute, and parsing a delivery.

WooCommerce signs the exact body bytes it sends: base64(HMAC-SHA256(secret, body)). The ping it
sends when a webhook is created is form-encoded, unsigned, and carries nothing but its id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping

from connectors.base import WebhookEvent
from connectors.limits import quarantine
from connectors.woocommerce.payloads import Invalid, read_order
from syncd.errors import PayloadError, SignatureError

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"

_PING = re.compile(rb"webhook_id=\d+")


def signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_delivery(
    channel: str, secret: str | None, headers: Mapping[str, str], body: bytes, *, max_quantity: int
) -> WebhookEvent:
    """Verify and parse one delivery to ``channel``'s endpoint (see ChannelConnector.parse_webhook)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    given = lowered.get(SIGNATURE_HEADER.lower())
    if given is None and _PING.fullmatch(body.strip()):
        return WebhookEvent(dedupe_key=None, lines=[], ping=True)
    if not secret:
        raise SignatureError("webhook_secret is not configured; cannot verify deliveries", connector=channel)
    if given is None:
        raise SignatureError(f"delivery has no {SIGNATURE_HEADER} header", connector=channel)
    expected = signature(secret, body)
    if not hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace")):
        raise SignatureError("webhook signature does not match the body", connector=channel)

    topic = lowered.get(TOPIC_HEADER.lower(), "").strip()
    if not topic:
        raise PayloadError(f"delivery has no {TOPIC_HEADER} header", connector=channel)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{topic} body is not JSON ({len(body)} bytes)", connector=channel) from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"{topic} body must be a JSON object", connector=channel)
    # order.deleted carries only {id}: there are no lines to read from it.
    if not topic.startswith("order.") or topic == "order.deleted":
        return WebhookEvent(dedupe_key=None, lines=[], topic=topic)
    # Delivery ids and topics are unsigned headers: the key comes from the signed body alone. (The
    # order's modification time would not do alone: a cancellation can land within its second.)
    digest = hashlib.sha256(body).hexdigest()[:32]
    try:
        order = read_order(payload, channel, "order", max_quantity=max_quantity)
    except Invalid as exc:
        # Signed, so it came from the shop: kept for a person instead of refused (a refusal would
        # only be sent again), and none of its lines reserved.
        ref = payload.get("id")
        item = quarantine(channel, "order", ref, f"{topic} payload: {exc}", payload)
        return WebhookEvent(dedupe_key=f"{ref}:{digest}", lines=[], topic=topic, quarantined=[item])
    return WebhookEvent(dedupe_key=f"{order.id}:{digest}", lines=order.lines, topic=topic)
