"""Webhook deliveries of the WooCommerce sandbox: signed, asynchronous, never retried.

Like WooCommerce, a failed delivery is dropped; the sandbox can also drop, duplicate or delay
deliveries on purpose (``Faults``) so that syncd's order poll and deduplication get exercised.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
import structlog

from connectors import sandbox_kit
from connectors.sandbox_kit import Faults
from connectors.woocommerce.webhooks import SIGNATURE_HEADER, TOPIC_HEADER, signature

WEBHOOK_ID = "1"


class WebhookSender(sandbox_kit.WebhookSender):
    """Delivers order events to one URL; ``start``/``stop`` bracket the app's lifespan."""

    log = structlog.get_logger("syncd.sandbox.woocommerce")

    def __init__(
        self,
        url: str,
        secret: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        super().__init__(url, faults, rng, transport)
        self.secret = secret

    def emit(self, topic: str, payload: dict[str, Any], source: str) -> None:
        resource, _, event = topic.partition(".")

        def headers(body: bytes) -> dict[str, str]:
            return {
                "Content-Type": "application/json",
                "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
                "X-WC-Webhook-Source": source,
                TOPIC_HEADER: topic,
                "X-WC-Webhook-Resource": resource,
                "X-WC-Webhook-Event": event,
                SIGNATURE_HEADER: signature(self.secret, body),
                "X-WC-Webhook-ID": WEBHOOK_ID,
                # A fresh value per delivery, as WooCommerce's wp_hash(id . time()) is.
                "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            }

        self._schedule(payload, headers, topic=topic)
