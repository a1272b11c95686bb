"""The ERP side: ingested sales (and cancellations of settled ones) recorded as stock movements,
and on-hand read into the ledger, which settles the reservations the ERP now reflects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from connectors.base import ErpConnector, ErpWebhookEvent, Movement, Quarantined, StockRecord
from syncd.engine.health import Health
from syncd.engine.reports import CycleReport
from syncd.history import History
from syncd.store import Store

MOVEMENT_RETRY_MIN = 10.0  # seconds before a movement the ERP refused is offered again
MOVEMENT_RETRY_MAX = 600.0


class Settlement:
    history: History = History.off()  # wired by the Engine

    def __init__(self, store: Store, erp: ErpConnector, health: Health, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.erp = erp
        self.health = health
        self.clock = clock
        self._movement_retry: dict[str, tuple[datetime, float]] = {}  # key -> (next try, last delay)
        # Until the ERP has been read once, no SKU can be called unknown to it.
        self.stock_known = store.counts().get("skus", 0) > 0
        self._quarantined: set[tuple[str, str]] | None = None  # open quarantined SKUs, read once

    async def post_movements(self, report: CycleReport) -> None:
        """Record ingested sales (and cancellations of settled sales) as ERP movements."""
        now = self.clock()
        sales = self.store.lines_in_state("reserved")
        undo = self.store.lines_in_state("compensate")
        waiting = {x.key for x in sales} | {f"{x.key}:cancel" for x in undo}
        self._movement_retry = {k: v for k, v in self._movement_retry.items() if k in waiting}
        sales = [x for x in sales if self._movement_due(x.key, now)]
        undo = [x for x in undo if self._movement_due(f"{x.key}:cancel", now)]
        movements = [
            Movement(line.key, line.sku, -line.quantity, "sale", f"{line.channel}:{line.order_id}")
            for line in sales
        ] + [
            Movement(
                f"{line.key}:cancel",
                line.sku,
                line.quantity,
                "cancellation",
                f"{line.channel}:{line.order_id}",
            )
            for line in undo
        ]
        if not movements:
            return
        acked = await self.health.call(self.erp.name, self.erp.record_movements(movements), report)
        if acked is None:
            return
        acked_set = set(acked)
        now = self.clock()
        for movement in movements:
            if movement.key in acked_set:
                self._movement_retry.pop(movement.key, None)
                continue
            # Refused (say, more sold than the ERP holds: an oversold unit). The line keeps
            # counting as reserved and is offered again later, less and less often, not on
            # every flush.
            _, last = self._movement_retry.get(movement.key, (now, 0.0))
            delay = min(MOVEMENT_RETRY_MAX, max(MOVEMENT_RETRY_MIN, 2 * last))
            self._movement_retry[movement.key] = (now + timedelta(seconds=delay), delay)
            report.counts["movements_refused"] += 1
        self.history.movements(movements, acked_set, now)
        posted = [line.key for line in sales if line.key in acked_set]
        compensated = [line.key for line in undo if f"{line.key}:cancel" in acked_set]
        self.store.mark_lines(posted, "posted", now)
        self.store.mark_lines(compensated, "released", now)
        report.counts["movements_posted"] += len(posted) + len(compensated)

    def _movement_due(self, key: str, now: datetime) -> bool:
        retry = self._movement_retry.get(key)
        return retry is None or retry[0] <= now

    async def read_erp(self, report: CycleReport, *, full: bool) -> set[str] | None:
        """Read on-hand (all, or changes since the cursor) into the ledger; the SKUs read."""
        started = self.clock()
        if full:
            records = await self.health.call(self.erp.name, self.erp.read_stock(), report)
            cursor = None
        else:
            page = await self.health.call(
                self.erp.name, self.erp.stock_changes(self.store.get_cursor("erp:stock")), report
            )
            records, cursor = (page.records, page.cursor) if page else (None, None)
            if page is not None:
                self._quarantine(page.quarantined, records or [], report)
        if records is None:
            return None
        self._apply(records, started, report)
        if cursor is not None:
            self.store.set_cursor("erp:stock", cursor)
        return {r.sku for r in records}

    async def read_events(self, events: Sequence[ErpWebhookEvent], report: CycleReport) -> set[str] | None:
        """Read the on-hand of what ERP webhook events name into the ledger (as ``read_erp``
        does, the poll's cursor left alone); the SKUs read, or None when the read failed."""
        started = self.clock()
        records = await self.health.call(self.erp.name, self.erp.event_stock(events), report)
        if records is None:
            return None
        self._apply(records, started, report)
        return {r.sku for r in records}

    def _quarantine(
        self, items: Sequence[Quarantined], records: Sequence[StockRecord], report: CycleReport
    ) -> None:
        """Keep the stock records the ERP sent that were refused (their SKUs keep their last
        on-hand); an open one is resolved once a good record of the same SKU is read."""
        now = self.clock()
        fresh = self.store.record_quarantined(items, now) if items else []
        if self._quarantined is None:
            self._quarantined = self.store.open_quarantine_refs("stock")
        self._quarantined |= {(q.connector, q.ref) for q in fresh if q.ref is not None}
        fixed = {(self.erp.name, r.sku) for r in records} & self._quarantined
        if fixed:
            self.store.resolve_quarantined("stock", fixed, now)
            self._quarantined -= fixed
        if fresh:
            report.counts["stock_quarantined"] += len(fresh)

    def _apply(self, records: Sequence[StockRecord], started: datetime, report: CycleReport) -> None:
        settled = self.store.apply_stock([(r.sku, r.on_hand) for r in records], started, self.clock())
        self.history.on_hand({r.sku: r.on_hand for r in records}, started)
        self.stock_known = True
        report.counts["skus_read"] += len(records)
        report.counts["lines_settled"] += settled
