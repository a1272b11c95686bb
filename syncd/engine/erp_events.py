"""ERP webhook intake (``POST /webhooks/erp``): a verified delivery names SKUs whose on-hand is read
again after the answer, applied as the ERP poll applies it, and those SKUs planned and pushed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import structlog

from connectors.base import ErpConnector, ErpWebhookEvent
from syncd.engine.intake import WEBHOOK_DEDUPE_TTL, Outcome, Receipt
from syncd.engine.reports import CycleReport
from syncd.engine.settlement import Settlement
from syncd.engine.supervisor import Supervisor
from syncd.errors import PayloadError, SignatureError, StoreError
from syncd.store import Store

log = structlog.get_logger("syncd.engine")


class ErpEvents:
    """Takes ERP webhook deliveries and reads what they name in the background, a burst at a time."""

    def __init__(
        self,
        store: Store,
        erp: ErpConnector,
        settlement: Settlement,
        touch: Callable[[Iterable[str]], None],
        supervisor: Supervisor,
        clock: Callable[[], datetime],
        debounce: float,
    ) -> None:
        self.store = store
        self.erp = erp
        self.settlement = settlement
        self.touch = touch  # queues SKUs for the fast path (planned and pushed after its debounce)
        self.supervisor = supervisor
        self.clock = clock
        self.debounce = debounce
        self._queued: list[ErpWebhookEvent] = []
        self._task: asyncio.Task[None] | None = None

    def receive(self, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Verify and parse one delivery and queue what it names; the read follows the answer.

        The delivery is remembered as seen when it is taken: a read that fails afterwards is not
        retried from the webhook (the ERP poll, the safety net, brings the change in)."""
        try:
            event = self.erp.parse_webhook(headers, body)
        except NotImplementedError:
            return Receipt(
                Outcome.UNKNOWN_CHANNEL,
                f"the ERP {self.erp.name!r} ({type(self.erp).__name__}) takes no webhooks; "
                "its changes are read by the ERP poll",
            )
        except SignatureError as exc:
            log.warning("erp_webhook.refused", erp=self.erp.name, reason=str(exc))
            return Receipt(Outcome.BAD_SIGNATURE, "invalid signature")
        except PayloadError as exc:
            log.warning("erp_webhook.malformed", erp=self.erp.name, reason=str(exc))
            return Receipt(Outcome.MALFORMED, f"malformed payload: {exc}")
        if event.duplicate:
            return Receipt(Outcome.DUPLICATE)
        if event.dedupe_key:
            key = f"erp:{event.dedupe_key}"
            try:
                if self.store.mark_webhook_seen(key, self.clock(), WEBHOOK_DEDUPE_TTL):
                    return Receipt(Outcome.DUPLICATE)
            except StoreError as exc:
                log.error("erp_webhook.store_failed", erp=self.erp.name, error=str(exc))
                return Receipt(Outcome.LEDGER_FAILED, "the ledger could not record the delivery; send it again later")
        if event.stale:
            # Older than a delivery already taken for the same products: that one's read covers it.
            log.info("erp_webhook.stale", erp=self.erp.name, topic=event.topic)
            return Receipt(Outcome.ACCEPTED)
        if event.skus or event.refs:
            self._queued.append(event)
            if self._task is None or self._task.done():
                self._task = self.supervisor.start("erp-webhook", self._read_queued)
        return Receipt(Outcome.ACCEPTED)

    def running(self) -> list[asyncio.Task[None]]:
        return [t for t in (self._task,) if t is not None and not t.done()]

    async def _read_queued(self) -> None:
        # A burst of deliveries (each recorded sale makes one) costs one read of the SKUs it names.
        await asyncio.sleep(self.debounce)
        while self._queued:
            events, self._queued = self._queued, []
            report = CycleReport("erp-webhook")
            try:
                skus = await self.settlement.read_events(events, report)
            except StoreError as exc:
                log.error("erp_webhook.store_failed", erp=self.erp.name, error=str(exc))
                continue
            if skus is None:
                log.warning("erp_webhook.read_failed", erp=self.erp.name, events=len(events), errors=report.errors)
                continue
            log.info("erp_webhook.read", erp=self.erp.name, events=len(events), skus=len(skus))
            if skus:
                self.touch(skus)
