"""Migrations: the hand-written revisions build exactly the models' schema, and re-running is a no-op."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from syncd.store import Store
from syncd.store.models import metadata


@pytest.fixture
def inspector_engine(store_url: str) -> Iterator[Engine]:
    """A second, plain engine on the store's database (an in-memory one has nothing to compare)."""
    if store_url.endswith(":memory:"):
        pytest.skip("a second connection to :memory: sees another, empty database")
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"), poolclass=StaticPool)
    yield engine
    engine.dispose()


def test_migrated_schema_matches_models(store: Store, inspector_engine: Engine) -> None:
    """After migrate() the database has exactly the tables, columns, types and indexes of the models."""
    with inspector_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
        head = context.get_current_revision()
    assert diffs == []
    assert head == "0007_quarantine"


def test_migrating_twice_is_a_no_op(store: Store) -> None:
    """Running migrate() on an up-to-date database changes nothing and keeps the data."""
    store.set_cursor("orders:shop", "kept")
    store.start_run("reconcile", datetime(2025, 3, 1, tzinfo=UTC))
    store.migrate()
    assert store.get_cursor("orders:shop") == "kept"
    assert len(store.recent_runs()) == 1


def test_a_second_store_on_a_migrated_database_sees_the_same_ledger(store_url: str, store: Store) -> None:
    """Another process migrating the same database at start-up leaves the first one's data intact."""
    if store_url.endswith(":memory:"):
        pytest.skip("each :memory: store is its own database")
    store.set_cursor("c", "v")
    other = Store(store_url)
    try:
        other.migrate()
        assert other.get_cursor("c") == "v"
    finally:
        other.close()
