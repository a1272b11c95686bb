"""Webhook deliveries of the Shopify sandbox: signed, asynchronous, retried a little on failure.

A retry (and an injected duplicate) keeps the delivery's ``X-Shopify-Webhook-Id``, as Shopify's
retries do, so that deduplication on the receiving side gets exercised.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from connectors import sandbox_kit
from connectors.sandbox_kit import Faults
from connectors.shopify.webhooks import (
    EVENT_ID_HEADER,
    HMAC_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    signature,
)

RETRIES = 2
RETRY_DELAY = 0.5


class WebhookSender(sandbox_kit.WebhookSender):
    """Delivers order events to one URL; ``start``/``stop`` bracket the app's lifespan."""

    log = structlog.get_logger("syncd.sandbox.shopify")
    timeout = 5.0
    retries = RETRIES
    retry_delay = RETRY_DELAY

    def __init__(
        self,
        url: str,
        secret: str,
        api_version: str,
        shop_domain: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        super().__init__(url, faults, rng, transport)
        self.secret = secret
        self.api_version = api_version
        self.shop_domain = shop_domain

    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        # Fixed per event, so that every copy and retry carries the same ids.
        fixed = {
            "Content-Type": "application/json",
            TOPIC_HEADER: topic,
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            WEBHOOK_ID_HEADER: str(uuid.uuid4()),
            EVENT_ID_HEADER: str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        }

        def headers(body: bytes) -> dict[str, str]:
            return {**fixed, HMAC_HEADER: signature(self.secret, body)}

        self._schedule(payload, headers, topic=topic)
