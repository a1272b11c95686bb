"""Channel tokens kept in the ledger survive a restart and never leak into errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import StoredToken
from syncd.errors import StoreError
from syncd.store import Store


def test_token_round_trip_and_replace(store: Store) -> None:
    """A saved token loads back equal; saving again under the same name replaces it."""
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    first = StoredToken("acc-1", "ref-1", now + timedelta(days=7), now + timedelta(days=30))
    assert store.load_token("tiktok_shop:tiktok") is None
    store.save_token("tiktok_shop:tiktok", first)
    assert store.load_token("tiktok_shop:tiktok") == first
    second = StoredToken("acc-2", "ref-2", now + timedelta(days=8))
    store.save_token("tiktok_shop:tiktok", second)
    assert store.load_token("tiktok_shop:tiktok") == second


def test_unreadable_token_names_it_without_its_value(store: Store) -> None:
    """A corrupt token row is a StoreError naming the token, never printing the secret."""
    from syncd.store import models as t

    with store._db.transaction("corrupt") as conn:
        conn.execute(
            t.token.insert().values(name="bad", value='{"access_token": "sekrit-123"', expires_at=None)
        )
    with pytest.raises(StoreError) as caught:
        store.load_token("bad")
    assert "bad" in str(caught.value) and "sekrit-123" not in str(caught.value)
