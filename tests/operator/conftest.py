"""The store backends of the store contract suite, reused for the history and report tables."""

from tests.store.conftest import pg_admin, pg_schema_url, store, store_url

__all__ = ["pg_admin", "pg_schema_url", "store", "store_url"]
