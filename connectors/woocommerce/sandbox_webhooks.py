"""Webhook deliveries of the WooCommerce sandbox: signed, asynchronous, never retried.

Like WooCommerce, a failed delivery is dropped; the sandbox can also drop, duplicate or delay
deliveries on purpose (``Faults``) so that syncd's order poll and deduplication get exercised.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import httpx
import structlog

from connectors.sandbox_kit import Faults
from connectors.woocommerce.webhooks import SIGNATURE_HEADER, TOPIC_HEADER, signature

log = structlog.get_logger("syncd.sandbox.woocommerce")

WEBHOOK_ID = "1"


class WebhookSender:
    """Delivers order events to one URL; ``start``/``stop`` bracket the app's lifespan."""

    def __init__(
        self,
        url: str,
        secret: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = url
        self.secret = secret
        self.faults = faults
        self.rng = rng
        self.delivered = 0
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(transport=self._transport, timeout=httpx.Timeout(10.0))

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

    def emit(self, topic: str, payload: dict[str, Any], source: str) -> None:
        if self._client is None:
            log.warning("sandbox.webhook.not_started", topic=topic)
            return
        if self.faults.webhook_drop_rate and self.rng.random() < self.faults.webhook_drop_rate:
            log.info("sandbox.webhook.dropped", topic=topic)
            return
        copies = 2 if self.rng.random() < self.faults.webhook_duplicate_rate else 1
        body = json.dumps(payload, separators=(",", ":")).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(topic, body, source, copies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, topic: str, body: bytes, source: str, copies: int) -> None:
        delay = self.faults.webhook_delay_seconds(self.rng)
        if delay:
            await asyncio.sleep(delay)
        resource, _, event = topic.partition(".")
        for _ in range(copies):
            headers = {
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
            client = self._client
            if client is None:
                return
            try:
                response = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.info("sandbox.webhook.failed", topic=topic, error=type(exc).__name__)
                continue
            self.delivered += 1
            if response.status_code >= 300:
                log.info("sandbox.webhook.refused", topic=topic, status=response.status_code)
