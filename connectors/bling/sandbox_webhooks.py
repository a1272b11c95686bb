"""The Bling sandbox's faults and its webhook deliveries, signed as Bling signs them."""

from __future__ import annotations

import hashlib
import hmac
import random
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import structlog

from connectors.bling.sandbox_account import BlingAccount, Product
from connectors.sandbox_kit import Faults, WebhookSender

log = structlog.get_logger("syncd.sandbox.bling")


@dataclass
class BlingFaults(Faults):
    """Bling's faults beyond the common ones: a write applied and then answered with a time-out
    (504 after ``timeout_after_write_ms``), and webhooks delivered after the next one (reorder)."""

    timeout_after_write_rate: float = 0.0
    timeout_after_write_ms: float = 0.0
    webhook_reorder_rate: float = 0.0


class BlingWebhookSender(WebhookSender):
    """Bling's stock webhooks, signed ``X-Bling-Signature-256: sha256=<hex HMAC of the body>``."""

    log = log
    retries = 2

    def __init__(self, url: str, secret: str, faults: BlingFaults, rng: random.Random, **kwargs: Any):
        super().__init__(url, faults, rng, **kwargs)
        self.secret = secret.encode()
        self.bling_faults = faults
        self._held: list[dict[str, Any]] = []

    def signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Bling-Signature-256": self.signature(body)}

    def stock_event(self, account: BlingAccount, event: str, product: Product, data: dict[str, Any]) -> None:
        payload = {
            "eventId": str(uuid.uuid4()),
            "date": account.now().astimezone(UTC).isoformat(),
            "version": "v1",
            "event": event,
            "companyId": account.company_id,
            "data": data,
        }
        rate = self.bling_faults.webhook_reorder_rate
        if not self._held and rate and self.rng.random() < rate:
            self._held.append(payload)  # goes out right after the next one
            return
        self._schedule(payload, self.headers, topic=event, sku=product.codigo)
        self._release()

    def _release(self) -> None:
        while self._held:
            held = self._held.pop(0)
            self._schedule(held, self.headers, topic=held["event"], reordered=True)

    async def drain(self) -> None:
        self._release()
        await super().drain()
