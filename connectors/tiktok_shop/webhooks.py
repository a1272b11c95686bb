"""TikTok Shop webhook deliveries: verifying the ``Authorization`` signature and parsing the body.

An order status change (type 1) carries the order id and its new status but no line items, so
the event names the order in its topic (``order:<id>``) and the engine fetches the lines with
``TikTokShopConnector.lines_for_orders``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping

from connectors.base import WebhookEvent
from connectors.tiktok_shop.signing import webhook_signature
from syncd.errors import PayloadError, SignatureError

SIGNATURE_HEADER = "Authorization"
ORDER_STATUS_CHANGE = 1


def order_topic(order_id: str) -> str:
    return f"order:{order_id}"


def parse_delivery(
    channel: str, app_key: str, app_secret: str, headers: Mapping[str, str], body: bytes
) -> WebhookEvent:
    """Verify and parse one delivery (see ChannelConnector.parse_webhook)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not given:
        raise SignatureError(f"delivery has no {SIGNATURE_HEADER} header", connector=channel)
    expected = webhook_signature(app_key, app_secret, body)
    if not hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace")):
        raise SignatureError("webhook signature does not match the body", connector=channel)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not JSON ({len(body)} bytes)", connector=channel) from exc
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object", connector=channel)
    kind = payload.get("type")
    notification = payload.get("tts_notification_id")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise PayloadError("'type' must be an integer", connector=channel)
    if not isinstance(notification, str) or not notification:
        raise PayloadError("'tts_notification_id' must be a non-empty string", connector=channel)
    if kind != ORDER_STATUS_CHANGE:
        return WebhookEvent(dedupe_key=notification, lines=[], topic=f"type:{kind}")
    data = payload.get("data")
    order_id = data.get("order_id") if isinstance(data, dict) else None
    if not isinstance(order_id, str) or not order_id:
        raise PayloadError(
            f"order status change {notification} has no data.order_id string", connector=channel
        )
    return WebhookEvent(dedupe_key=notification, lines=[], topic=order_topic(order_id))
