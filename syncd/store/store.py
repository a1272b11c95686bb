"""The Store: every read and write of the ledger, each method one transaction.

Rows handed out are frozen dataclasses, never live ORM objects, so callers cannot change the
ledger by accident. Every database failure surfaces as StoreError (chained to the driver's error).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base import Listing, OrderLine
from syncd.core import Drift, PlannedPush


@dataclass(frozen=True)
class SkuRow:
    sku: str
    on_hand: int
    read_at: datetime


@dataclass(frozen=True)
class ListingRow:
    channel: str
    sku: str
    ref: str
    last_pushed: int | None
    pushed_at: datetime | None
    sold_since_push: int
    observed: int | None
    observed_at: datetime | None
    status: str  # "ok" | "rejected" | "unmapped"
    detail: str


@dataclass(frozen=True)
class LineRow:
    channel: str
    order_id: str
    line_key: str
    sku: str
    quantity: int
    state: str  # "reserved" | "posted" | "settled" | "released" | "compensate"
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.order_id}:{self.line_key}"


@dataclass(frozen=True)
class IngestResult:
    new: list[OrderLine] = field(default_factory=list)  # lines reserved for the first time
    released: list[OrderLine] = field(default_factory=list)  # reserved lines now cancelled
    to_compensate: list[OrderLine] = field(default_factory=list)  # posted/settled lines now cancelled
    duplicates: int = 0

    @property
    def touched_skus(self) -> set[str]:
        return {line.sku for line in [*self.new, *self.released, *self.to_compensate]}


@dataclass(frozen=True)
class PushRow:
    id: int
    channel: str
    sku: str
    target: int
    compare: int | None
    reason: str
    state: str  # "pending" | "sent" | "failed" | "superseded"
    attempts: int
    created_at: datetime
    last_error: str


@dataclass(frozen=True)
class DriftRow:
    at: datetime
    channel: str
    sku: str
    expected: int | None
    observed: int
    cause: str
    correction: int | None


@dataclass(frozen=True)
class RunRow:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None


class Store:
    """The ledger. ``url`` is an SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``."""

    def __init__(self, url: str) -> None: ...

    def migrate(self) -> None:
        """Bring the schema to the newest version (Alembic ``upgrade head``)."""

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""

    def close(self) -> None: ...

    # -- stock ------------------------------------------------------------------------------
    def apply_stock(
        self, records: Sequence[tuple[str, int]], read_started: datetime, now: datetime
    ) -> int:
        """Store ERP on-hand figures read by a request that started at ``read_started``.

        In the same transaction, every ``posted`` order line of those SKUs whose movement was
        acknowledged before ``read_started`` becomes ``settled`` (the ERP figure now includes it).
        Returns the number of lines settled.
        """

    def settle_orders(self, order_refs: Iterable[str], now: datetime) -> int:
        """Settle the reserved or posted lines of orders (``channel:order_id``) the ERP imported."""

    def skus(self, skus: Iterable[str] | None = None) -> dict[str, SkuRow]: ...

    def reserved_by_sku(self, skus: Iterable[str] | None = None) -> dict[str, int]:
        """Units in ``reserved`` or ``posted`` lines, per SKU (SKUs with none are absent)."""

    # -- listings ---------------------------------------------------------------------------
    def sync_listings(self, channel: str, listings: Sequence[Listing], observed_at: datetime) -> None:
        """Upsert the channel's listings (ref, observed quantity); ones no longer listed are dropped."""

    def record_observed(self, channel: str, observed: dict[str, int], at: datetime) -> None: ...

    def record_pushed(self, channel: str, applied: dict[str, int], at: datetime) -> None:
        """After a successful push: last_pushed = quantity, sold_since_push = 0, status ok."""

    def set_listing_status(self, channel: str, sku: str, status: str, detail: str = "") -> None: ...

    def listings(self, channel: str | None = None, skus: Iterable[str] | None = None) -> list[ListingRow]: ...

    # -- order lines ------------------------------------------------------------------------
    def ingest_lines(self, lines: Sequence[OrderLine], now: datetime) -> IngestResult:
        """Idempotently record order lines (unique on channel, order id, line key).

        A new open line is ``reserved`` and adds its quantity to the listing's sold_since_push.
        A new line already cancelled is stored as ``released`` and touches nothing else.
        A known reserved line now cancelled becomes ``released``; a known posted or settled line
        now cancelled becomes ``compensate``. Anything else already known is a duplicate.
        """

    def lines_in_state(self, state: str, limit: int = 1000) -> list[LineRow]: ...

    def mark_lines(self, keys: Iterable[str], state: str, now: datetime) -> None:
        """Move lines (by ``channel:order:line`` key) to ``state``; ``posted`` also stamps acked time."""

    # -- outbox -----------------------------------------------------------------------------
    def enqueue_pushes(self, pushes: Sequence[PlannedPush], now: datetime) -> None:
        """Queue pushes; a pending push for the same (channel, sku) is superseded by the new one."""

    def pending_pushes(self, channel: str | None = None, limit: int = 10_000) -> list[PushRow]: ...

    def complete_pushes(self, ids: Iterable[int], now: datetime) -> None: ...

    def fail_push(self, push_id: int, error: str, now: datetime, *, give_up: bool) -> None:
        """Count a failed attempt; ``give_up`` marks it failed for good, else it stays pending."""

    # -- drift, runs, cursors ---------------------------------------------------------------
    def record_drift(self, drifts: Sequence[Drift], corrections: dict[tuple[str, str], int], now: datetime) -> None: ...

    def recent_drift(self, limit: int = 50) -> list[DriftRow]: ...

    def start_run(self, kind: str, now: datetime) -> int: ...

    def finish_run(self, run_id: int, now: datetime, counts: dict[str, int], error: str | None = None) -> None: ...

    def recent_runs(self, limit: int = 20) -> list[RunRow]: ...

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    # -- webhooks and leases ----------------------------------------------------------------
    def mark_webhook_seen(self, key: str, now: datetime, ttl: timedelta) -> bool:
        """Record a delivery key; True if it was already seen and not expired (a duplicate)."""

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the named lease for ``holder``; False while another holder's is unexpired."""

    def counts(self) -> dict[str, int]:
        """Ledger sizes for metrics: skus, listings, lines per state, pending pushes, drift rows."""
