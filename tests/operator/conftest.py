"""The store backends of the store contract suite, reused for the history and report tables, and
the daemon tests' in-process world (sandboxes + daemon) for the engine's history hooks."""

from tests.daemon.conftest import world
from tests.store.conftest import pg_admin, pg_schema_url, store, store_url

__all__ = ["pg_admin", "pg_schema_url", "store", "store_url", "world"]
