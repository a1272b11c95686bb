"""Webhook deliveries of the TikTok Shop sandbox: signed order status changes (type 1).

Each delivery is attempted once; the sandbox can drop, duplicate (same ``tts_notification_id``)
or delay deliveries on purpose (``Faults``) so that syncd's order poll and dedupe get exercised.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import structlog

from connectors.sandbox_kit import Faults
from connectors.tiktok_shop.signing import webhook_signature
from connectors.tiktok_shop.webhooks import ORDER_STATUS_CHANGE, SIGNATURE_HEADER

log = structlog.get_logger("syncd.sandbox.tiktok_shop")

SHOP_ID = "7495540735365777507"


class WebhookSender:
    """Delivers notifications to one URL; ``start``/``stop`` bracket the app's lifespan."""

    def __init__(
        self,
        url: str,
        app_key: str,
        app_secret: str,
        faults: Faults,
        rng: random.Random,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = url
        self.app_key = app_key
        self.app_secret = app_secret
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

    def order_status_change(self, order_id: str, status: str, update_time: int) -> None:
        payload: dict[str, Any] = {
            "type": ORDER_STATUS_CHANGE,
            "tts_notification_id": str(self.rng.randrange(10**18, 10**19)),
            "shop_id": SHOP_ID,
            "timestamp": update_time,
            "data": {
                "is_on_hold_order": False,
                "order_id": order_id,
                "order_status": status,
                "update_time": update_time,
            },
        }
        self._emit(payload)

    def _emit(self, payload: dict[str, Any]) -> None:
        if self._client is None:
            log.warning("sandbox.webhook.not_started")
            return
        if self.faults.webhook_drop_rate and self.rng.random() < self.faults.webhook_drop_rate:
            log.info("sandbox.webhook.dropped", notification=payload["tts_notification_id"])
            return
        copies = 2 if self.rng.random() < self.faults.webhook_duplicate_rate else 1
        body = json.dumps(payload, separators=(",", ":")).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(body, copies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: bytes, copies: int) -> None:
        delay = self.faults.webhook_delay_seconds(self.rng)
        if delay:
            await asyncio.sleep(delay)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(self.app_key, self.app_secret, body),
        }
        for _ in range(copies):
            client = self._client
            if client is None:
                return
            try:
                response = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.info("sandbox.webhook.failed", error=type(exc).__name__)
                continue
            self.delivered += 1
            if response.status_code >= 300:
                log.info("sandbox.webhook.refused", status=response.status_code)
