"""ERP records (what a connector posted per movement key) survive a restart, per ERP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ErpRecord, ErpRecordStore, MemoryErpRecordStore
from syncd.store import Store


def _round_trip(records: ErpRecordStore) -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    sending = ErpRecord("shop:1001:1", None, "sending", now)
    assert records.load_erp_record("bling", sending.key) is None
    records.save_erp_record("bling", sending)
    assert records.load_erp_record("bling", sending.key) == sending
    posted = ErpRecord(sending.key, "987654", "posted", now + timedelta(seconds=1))
    records.save_erp_record("bling", posted)
    assert records.load_erp_record("bling", sending.key) == posted
    assert records.load_erp_record("tiny", sending.key) is None


def test_ledger_erp_record_round_trip_replace_and_per_erp(store: Store) -> None:
    """A saved record loads back equal, saving the same key replaces it, another ERP does not see it."""
    _round_trip(store)


def test_memory_erp_record_store_behaves_like_the_ledger() -> None:
    """The in-memory record store follows the same contract as the ledger."""
    _round_trip(MemoryErpRecordStore())


def test_erp_record_outlives_the_store_process(store_url: str, store: Store) -> None:
    """A record saved by one Store is read by the next one on the same database (a restart)."""
    if store_url.endswith(":memory:"):
        pytest.skip("each :memory: store is its own database")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    store.save_erp_record("bling", ErpRecord("k", "1", "posted", at))
    other = Store(store_url)
    try:
        assert other.load_erp_record("bling", "k") == ErpRecord("k", "1", "posted", at)
    finally:
        other.close()
