"""Replica tests use the store suite's backends (SQLite file, in-memory, PostgreSQL when
SYNCD_TEST_DATABASE_URL is set) and its PostgreSQL schema per test."""

from __future__ import annotations

from tests.store.conftest import PG_URL, pg_admin, pg_schema_url, store, store_url

__all__ = ["PG_URL", "pg_admin", "pg_schema_url", "store", "store_url"]
