"""Webhook deliveries of the TikTok Shop sandbox: signed order status changes (type 1).

Each delivery is attempted once; the sandbox can drop, duplicate (same ``tts_notification_id``)
or delay deliveries on purpose (``Faults``) so that syncd's order poll and dedupe get exercised.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import structlog

from connectors import sandbox_kit
from connectors.sandbox_kit import Faults
from connectors.tiktok_shop.signing import webhook_signature
from connectors.tiktok_shop.webhooks import ORDER_STATUS_CHANGE, SIGNATURE_HEADER

SHOP_ID = "7495540735365777507"


class WebhookSender(sandbox_kit.WebhookSender):
    """Delivers notifications to one URL; ``start``/``stop`` bracket the app's lifespan."""

    log = structlog.get_logger("syncd.sandbox.tiktok_shop")

    def __init__(
        self,
        url: str,
        app_key: str,
        app_secret: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        super().__init__(url, faults, rng, transport)
        self.app_key = app_key
        self.app_secret = app_secret

    def order_status_change(self, order_id: str, status: str, update_time: int) -> None:
        notification_id = str(self.rng.randrange(10**18, 10**19))
        payload: dict[str, Any] = {
            "type": ORDER_STATUS_CHANGE,
            "tts_notification_id": notification_id,
            "shop_id": SHOP_ID,
            "timestamp": update_time,
            "data": {
                "is_on_hold_order": False,
                "order_id": order_id,
                "order_status": status,
                "update_time": update_time,
            },
        }
        self._schedule(payload, self._headers, notification=notification_id)

    def _headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(self.app_key, self.app_secret, body),
        }
