"""The allocation accounts in the ledger: what is saved is read back as it was, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, update

from syncd.accounts import Accounts, SendRequest
from syncd.allocation import PartKind, WriteState
from syncd.errors import StoreError
from syncd.store import Store
from syncd.store import models as t

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_accounts_round_trip_through_the_ledger(store: Store) -> None:
    """Levels, a write on the wire and held units come back exactly, and are found by the searches."""
    accounts = Accounts(store)
    accounts.read("shop", {"A": 5, "B": 2}, T0, T0 + timedelta(seconds=1))
    accounts.read("web", {"A": 3}, T0, T0 + timedelta(seconds=1))
    accounts.read("web", {"A": 1}, T0 + timedelta(seconds=2), T0 + timedelta(seconds=3))  # 2 missing
    grants = accounts.send_many(
        "shop", [SendRequest(7, "A", 4, 5, ats=10, threshold=20, racing=1)], T0 + timedelta(seconds=4)
    )
    assert grants["A"].quantity == 4
    book = store.load_accounts(["A", "B", "C"])
    assert set(book) == {"A", "B"}
    a = book["A"]
    assert a.listing("shop").writes[0].push_id == 7 and a.listing("shop").writes[0].state is WriteState.SENT
    assert a.listing("web").exposure == 1
    assert sorted((p.channel, p.kind, p.units) for p in a.parts) == [
        ("shop", PartKind.FORGOTTEN, 1),
        ("web", PartKind.MISSING, 2),
    ]
    assert store.skus_holding("web") == {"A"} and store.skus_holding("nowhere") == set()
    assert store.skus_writing() == {"A"}
    assert accounts.restarted() == 1
    assert store.load_accounts(["A"])["A"].listing("shop").writes[0].state is WriteState.LOST


def test_unreadable_accounts_are_a_store_error(store: Store, store_url: str) -> None:
    """A damaged accounts row is an error naming the SKU, never read as nothing exposed."""
    if store_url.endswith(":memory:"):
        pytest.skip("a second connection to :memory: sees another, empty database")
    Accounts(store).read("shop", {"A": 5}, T0, T0)
    damage = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with damage.begin() as conn:
            conn.execute(update(t.allocation_book).values(data="{not json"))
    finally:
        damage.dispose()
    with pytest.raises(StoreError, match="'A'"):
        store.load_accounts(["A"])
