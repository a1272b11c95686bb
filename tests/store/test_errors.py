"""Database failures surface as StoreError naming the database, never its password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.errors import StoreError
from syncd.store import Store


def open_and_migrate(url: str) -> None:
    store = Store(url)
    try:
        store.migrate()
    finally:
        store.close()


def test_path_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    """A database path that cannot exist (a parent is a file) gives StoreError naming the path."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StoreError, match="not-a-dir") as caught:
        open_and_migrate(f"sqlite:///{blocker / 'data' / 'ledger.db'}")
    assert caught.value.__cause__ is not None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    """A database in a read-only directory gives StoreError naming the path."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="locked"):
            open_and_migrate(f"sqlite:///{locked / 'ledger.db'}")
    finally:
        locked.chmod(0o700)


def test_corrupt_database_file_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not an SQLite database gives StoreError naming it, chained to the driver error."""
    path = tmp_path / "ledger.db"
    path.write_bytes(b"definitely not sqlite " + bytes(range(256)) * 16)
    with pytest.raises(StoreError, match=r"ledger\.db") as caught:
        open_and_migrate(f"sqlite:///{path}")
    assert "not a database" in str(caught.value)
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_unreachable_server_error_masks_the_password(scheme: str) -> None:
    """An unreachable PostgreSQL gives StoreError naming host and database, with the password masked."""
    store = Store(f"{scheme}://syncd:hunter2-secret@127.0.0.1:1/ledger")
    try:
        assert "hunter2-secret" not in repr(store)
        with pytest.raises(StoreError) as caught:
            store.ping()
    finally:
        store.close()
    message = str(caught.value)
    assert "hunter2-secret" not in message
    assert "postgresql+psycopg://syncd:***@127.0.0.1:1/ledger" in message


@pytest.mark.parametrize("url", ["mysql://root@localhost/ledger", "not a url", ""])
def test_unsupported_or_malformed_urls_are_refused(url: str) -> None:
    """Only SQLite and PostgreSQL URLs are accepted; anything else is a StoreError at construction."""
    with pytest.raises(StoreError):
        Store(url)
