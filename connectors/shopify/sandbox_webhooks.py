"""Webhook deliveries of the Shopify sandbox: signed, asynchronous, retried a little on failure.

A retry (and an injected duplicate) keeps the delivery's ``X-Shopify-Webhook-Id``, as Shopify's
retries do, so that deduplication on the receiving side gets exercised.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from connectors.sandbox_kit import Faults
from connectors.shopify.webhooks import (
    EVENT_ID_HEADER,
    HMAC_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    signature,
)

log = structlog.get_logger("syncd.sandbox.shopify")

RETRIES = 2
RETRY_DELAY = 0.5


class WebhookSender:
    """Delivers order events to one URL; ``start``/``stop`` bracket the app's lifespan."""

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
        self.url = url
        self.secret = secret
        self.api_version = api_version
        self.shop_domain = shop_domain
        self.faults = faults
        self.rng = rng
        self.delivered = 0
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(transport=self._transport, timeout=httpx.Timeout(5.0))

    async def stop(self, grace: float = 5.0) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self) -> None:
        """Wait until every delivery scheduled so far has been attempted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        if self._client is None:
            log.warning("sandbox.webhook.not_started", topic=topic)
            return
        if self.faults.webhook_drop_rate and self.rng.random() < self.faults.webhook_drop_rate:
            log.info("sandbox.webhook.dropped", topic=topic)
            return
        copies = 2 if self.rng.random() < self.faults.webhook_duplicate_rate else 1
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            TOPIC_HEADER: topic,
            HMAC_HEADER: signature(self.secret, body),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            WEBHOOK_ID_HEADER: str(uuid.uuid4()),
            EVENT_ID_HEADER: str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        }
        task = asyncio.get_running_loop().create_task(self._deliver(topic, body, headers, copies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, topic: str, body: bytes, headers: dict[str, str], copies: int) -> None:
        if self.faults.webhook_delay_ms:
            await asyncio.sleep(self.faults.webhook_delay_ms / 1000)
        for _ in range(copies):
            for attempt in range(1 + RETRIES):
                client = self._client
                if client is None:
                    return
                try:
                    response = await client.post(self.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    log.info("sandbox.webhook.failed", topic=topic, error=type(exc).__name__)
                else:
                    if response.status_code < 300:
                        self.delivered += 1
                        break
                    log.info("sandbox.webhook.refused", topic=topic, status=response.status_code)
                if attempt < RETRIES:
                    await asyncio.sleep(RETRY_DELAY)
