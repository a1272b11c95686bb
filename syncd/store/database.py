"""Connecting to the ledger database: URL rules, SQLite set-up, migrations, and the one place where
driver and SQLAlchemy errors become StoreError.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError, StatementError
from sqlalchemy.pool import StaticPool

from syncd.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
# Any fixed number works; it only has to be the same for every replica migrating one database.
_PG_MIGRATION_LOCK = 0x73796E6364
_WRITE = "syncd_write"
# A PostgreSQL session left idle inside a transaction this long is ended by the server: a replica
# frozen mid-transaction (a paused VM, SIGSTOP) would otherwise hold its row locks, the lease row's
# among them, until it wakes, and no other replica could take over. No transaction of syncd's
# waits on its client anywhere near this long.
PG_IDLE_IN_TRANSACTION = "30s"


def normalize_url(raw: str) -> URL:
    """Parse ``raw``; bare ``postgresql://`` and ``postgres://`` go through psycopg 3, the driver shipped."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        # The text may hold a password, so it is not echoed back.
        raise StoreError(
            "database URL is not valid: expected sqlite:///path/to/file.db or postgresql+psycopg://..."
        ) from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"database {masked(url)}: only SQLite and PostgreSQL are supported")
    return url


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


class Database:
    """An engine plus the rules every ledger transaction follows."""

    def __init__(self, raw_url: str) -> None:
        self.url = normalize_url(raw_url)
        self.name = masked(self.url)
        self.dialect = self.url.get_backend_name()
        self._password = self.url.password
        memory = self.dialect == "sqlite" and _is_memory(self.url)
        # One shared in-memory connection cannot hold two transactions at once.
        self._serial: threading.Lock | nullcontext[None] = threading.Lock() if memory else nullcontext()
        with self.translate("open", ImportError):
            if self.dialect == "sqlite":
                self.engine = self._sqlite_engine(memory)
            else:
                self.engine = create_engine(self.url, pool_pre_ping=True)
                event.listen(self.engine, "connect", _pg_session)

    def _sqlite_engine(self, memory: bool) -> Engine:
        if memory:
            engine = create_engine(self.url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(str(self.url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy issues BEGIN itself (below): the sqlite3 module's own transaction
            # handling skips it before SELECTs, which breaks read-then-write transactions.
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            try:
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed process
                    # loses nothing, a power cut at worst the last commits, lines and cursors
                    # together, which the next order poll's overlap reads again. FULL made each of
                    # the fast path's commits wait for the disk.
                    cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that reads first and
            # then writes fails with "database is locked" instead of waiting its turn.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

        return engine

    @contextmanager
    def transaction(self, action: str, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; commits when the block ends normally, every database error is a StoreError."""
        with self._serial, self.translate(action), self.engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def migrate(self) -> None:
        config = Config()
        # Config values go through configparser interpolation, hence the doubled percent signs.
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        with self.transaction("migrate") as conn, self.translate("migrate", CommandError):
            if self.dialect == "postgresql":
                # Replicas starting together must not create the same tables twice.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def translate(self, action: str, *extra: type[Exception]) -> Iterator[None]:
        errors: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, *extra)
        try:
            yield
        except StoreError:
            raise
        except errors as exc:
            raise StoreError(f"{action} failed on database {self.name}: {self._reason(exc)}") from exc

    def _reason(self, exc: BaseException) -> str:
        # Driver messages without SQLAlchemy's statement and parameters: those may carry tokens.
        cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason

    def close(self) -> None:
        self.engine.dispose()


def _pg_session(dbapi_connection: Any, _record: Any) -> None:
    """Session settings of every PostgreSQL connection (outside any transaction)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute(f"SET idle_in_transaction_session_timeout = '{PG_IDLE_IN_TRANSACTION}'")
    finally:
        dbapi_connection.autocommit = autocommit
