"""The ledger's tables as SQLModel classes; migrations in ``syncd/migrations`` must create exactly these.

The tables hang off their own registry so other SQLModel tables in the process never leak into
the ledger's metadata (and so into the schema check against the migrations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# SQLite only auto-increments an "INTEGER PRIMARY KEY"; elsewhere ids are 64-bit because outbox and
# drift rows accumulate for years.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite keeps naive UTC text, so awareness is restored on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous; guessing would silently shift settlement cut-offs.
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_type=UtcDateTime, nullable=nullable)


def _text(*, primary_key: bool = False, long: bool = False, nullable: bool = False) -> Any:
    return Field(default="", sa_type=Text if long else String, primary_key=primary_key, nullable=nullable)


def _int(*, nullable: bool = False) -> Any:
    return Field(default=None if nullable else 0, sa_type=Integer, nullable=nullable)


def _id() -> Any:
    return Field(default=None, sa_type=BigId, primary_key=True)


class LedgerTable(SQLModel, registry=registry()):
    """Base of every ledger table (own metadata, see module docstring)."""


class SkuTable(LedgerTable, table=True):
    __tablename__ = "sku"

    sku: str = _text(primary_key=True)
    on_hand: int = _int()
    read_at: datetime = _time()


class ListingTable(LedgerTable, table=True):
    __tablename__ = "listing"

    channel: str = _text(primary_key=True)
    sku: str = _text(primary_key=True)
    ref: str = _text()
    last_pushed: int | None = _int(nullable=True)
    pushed_at: datetime | None = _time(nullable=True)
    sold_since_push: int = _int()
    observed: int | None = _int(nullable=True)
    observed_at: datetime | None = _time(nullable=True)
    status: str = _text()
    detail: str = _text(long=True)


class OrderLineTable(LedgerTable, table=True):
    __tablename__ = "order_line"
    __table_args__ = (
        # The constraint that makes ingestion idempotent, even between concurrent writers.
        UniqueConstraint("channel", "order_id", "line_key", name="uq_order_line_key"),
        Index("ix_order_line_state_sku", "state", "sku"),
    )

    id: int | None = _id()
    channel: str = _text()
    order_id: str = _text()
    line_key: str = _text()
    sku: str = _text()
    quantity: int = _int()
    state: str = _text()
    created_at: datetime = _time()
    updated_at: datetime = _time()
    acked_at: datetime | None = _time(nullable=True)


class PushTable(LedgerTable, table=True):
    __tablename__ = "push"
    __table_args__ = (
        Index("ix_push_state", "state"),
        Index("ix_push_channel_sku", "channel", "sku"),
        Index("ix_push_sku_state", "sku", "state"),
    )

    id: int | None = _id()
    channel: str = _text()
    sku: str = _text()
    target: int = _int()
    compare: int | None = _int(nullable=True)
    reason: str = _text()
    state: str = _text()
    attempts: int = _int()
    created_at: datetime = _time()
    updated_at: datetime = _time()
    last_error: str = _text(long=True)
    # The replica writing it (see syncd/store/replicas.py): set just before the write, kept after.
    claimed_by: str | None = _text(nullable=True)
    claimed_at: datetime | None = _time(nullable=True)


class DriftTable(LedgerTable, table=True):
    __tablename__ = "drift"
    __table_args__ = (Index("ix_drift_at", "at"),)

    id: int | None = _id()
    at: datetime = _time()
    channel: str = _text()
    sku: str = _text()
    expected: int | None = _int(nullable=True)
    observed: int = _int()
    cause: str = _text()
    correction: int | None = _int(nullable=True)


class HistoryTable(LedgerTable, table=True):
    """Per-SKU events over time for the operator's view (what the other tables overwrite)."""

    __tablename__ = "history"
    __table_args__ = (
        Index("ix_history_sku_at", "sku", "at"),
        Index("ix_history_kind_at", "kind", "at"),  # the page's totals, chart and refused sales
        Index("ix_history_at", "at"),  # pruning
    )

    id: int | None = _id()
    at: datetime = _time()
    sku: str = _text()
    channel: str = _text()  # "" for the ERP's figures and for SKU-wide decisions
    kind: str = _text()  # "on_hand" | "read" | "push" | "order" | "cancel" | "refused" | "decision"
    quantity: int | None = _int(nullable=True)
    outcome: str = _text()  # push: "sent", "rejected", "stale", "failed"; order: its order id
    detail: str = _text(long=True)  # JSON object: the reasons and figures behind the event


class CursorTable(LedgerTable, table=True):
    __tablename__ = "cursor"

    name: str = _text(primary_key=True)
    value: str = _text(long=True)


class RunTable(LedgerTable, table=True):
    __tablename__ = "run"
    __table_args__ = (Index("ix_run_started_at", "started_at"),)

    id: int | None = _id()
    kind: str = _text()
    started_at: datetime = _time()
    finished_at: datetime | None = _time(nullable=True)
    counts: str = _text(long=True)  # JSON object
    error: str | None = _text(long=True, nullable=True)
    owner: str | None = _text(nullable=True)  # "host:pid" of the process that ran it


class WebhookSeenTable(LedgerTable, table=True):
    __tablename__ = "webhook_seen"
    __table_args__ = (Index("ix_webhook_seen_expires_at", "expires_at"),)

    key: str = _text(primary_key=True)
    seen_at: datetime = _time()
    expires_at: datetime = _time()


class LeaseTable(LedgerTable, table=True):
    __tablename__ = "lease"

    name: str = _text(primary_key=True)
    holder: str = _text()
    expires_at: datetime = _time()


class HandoffTable(LedgerTable, table=True):
    """SKUs a standby replica took sales for, waiting for the syncer to plan and push them."""

    __tablename__ = "handoff"

    id: int | None = _id()
    sku: str = _text()
    at: datetime = _time()


class AlertTable(LedgerTable, table=True):
    """An alert condition syncd notified (or is about to): kept so a restart neither sends an open
    alert again nor forgets to resolve it. ``unsent`` is the message still owed: open, resolved or
    nothing."""

    __tablename__ = "alert"

    key: str = _text(primary_key=True)
    kind: str = _text()
    text: str = _text(long=True)
    opened_at: datetime = _time()
    resolved_at: datetime | None = _time(nullable=True)
    unsent: str = _text()
    attempts: int = _int()


class TokenTable(LedgerTable, table=True):
    """Channel access tokens (secrets: never log a row of this table)."""

    __tablename__ = "token"

    name: str = _text(primary_key=True)
    value: str = _text(long=True)
    expires_at: datetime | None = _time(nullable=True)


class ErpRecordTable(LedgerTable, table=True):
    """What an ERP connector without idempotency keys posted per movement key (exactly once)."""

    __tablename__ = "erp_record"

    erp: str = _text(primary_key=True)
    key: str = _text(primary_key=True)
    erp_id: str | None = _text(nullable=True)
    state: str = _text()
    at: datetime = _time()


class AllocationBookTable(LedgerTable, table=True):
    """A SKU's allocation accounts (see ``syncd/allocation.py``): its listings' confirmed levels,
    the writes on the wire and the units held, as one JSON document (``syncd/store/accounts.py``)."""

    __tablename__ = "allocation_book"
    __table_args__ = (Index("ix_allocation_book_writing", "writing"),)

    sku: str = _text(primary_key=True)
    data: str = _text(long=True)
    holding: str = _text()  # ",channel,channel," of the channels it holds units on
    writing: int = _int()  # 1 while a write is on the wire


class QuarantineTable(LedgerTable, table=True):
    """An order or stock record read from outside that syncd refused to act on (malformed or out of
    bounds), kept for a person: one row per item and reason (``key``), however often it is read."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_last_seen_at", "last_seen_at"),)

    key: str = _text(primary_key=True)
    connector: str = _text()
    kind: str = _text()  # "order" | "stock"
    ref: str | None = _text(nullable=True)  # the order id or SKU, when it could be read
    reason: str = _text(long=True)
    excerpt: str = _text(long=True)  # bounded, credentials and buyer details left out
    first_seen_at: datetime = _time()
    last_seen_at: datetime = _time()
    seen: int = _int()
    resolved_at: datetime | None = _time(nullable=True)  # a clean version of it arrived since


metadata = LedgerTable.metadata
sku = metadata.tables["sku"]
listing = metadata.tables["listing"]
order_line = metadata.tables["order_line"]
push = metadata.tables["push"]
drift = metadata.tables["drift"]
history = metadata.tables["history"]
cursor = metadata.tables["cursor"]
run = metadata.tables["run"]
webhook_seen = metadata.tables["webhook_seen"]
lease = metadata.tables["lease"]
handoff = metadata.tables["handoff"]
token = metadata.tables["token"]
erp_record = metadata.tables["erp_record"]
allocation_book = metadata.tables["allocation_book"]
quarantine = metadata.tables["quarantine"]
