"""The ledger: SQLModel tables on SQLite (default) or PostgreSQL, behind the ``Store`` class."""

from syncd.store.store import (
    DriftRow,
    HistoryEvent,
    IngestResult,
    LineRow,
    ListingRow,
    PushRow,
    RunRow,
    SkuRow,
    Store,
)

__all__ = [
    "DriftRow",
    "HistoryEvent",
    "IngestResult",
    "LineRow",
    "ListingRow",
    "PushRow",
    "RunRow",
    "SkuRow",
    "Store",
]
