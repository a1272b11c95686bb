"""The mock ERP's own state: stock with a change sequence, recorded movements, imported orders.

One SQLite connection (a file, or memory) behind a lock, so that the sandbox's request handlers
may call it from worker threads; every public method is one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku     TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL,
    seq     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stock_seq ON stock (seq);
CREATE TABLE IF NOT EXISTS movements (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    sku       TEXT NOT NULL,
    delta     INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    reference TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS imported_orders (
    ref TEXT PRIMARY KEY
);
"""


@dataclass(frozen=True)
class StockRow:
    sku: str
    on_hand: int
    seq: int


@dataclass(frozen=True)
class MovementIn:
    key: str
    sku: str
    delta: int
    reason: str
    reference: str = ""


@dataclass(frozen=True)
class ChangesPage:
    """Rows after a sequence number, whether more follow, and the latest sequence number overall."""

    rows: list[StockRow]
    has_more: bool
    latest_seq: int


class ErpDatabase:
    """The mock ERP's tables and the few operations its API and test hooks need."""

    def __init__(self, path: str = ":memory:"):
        self.path = path
        # One connection shared by worker threads; the lock serialises every use of it.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _latest_seq(conn: sqlite3.Connection) -> int:
        # Rows are never deleted and each change takes max+1, so the maximum only grows.
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM stock").fetchone()[0])

    # ------------------------------------------------------------------ stock

    def set_stock(self, items: Iterable[tuple[str, int]]) -> list[StockRow]:
        """Set on-hand of each SKU (creating unknown ones), each change taking a new sequence number."""
        with self._transaction() as conn:
            seq = self._latest_seq(conn)
            rows = []
            for sku, on_hand in items:
                seq += 1
                rows.append(StockRow(sku, on_hand, seq))
            conn.executemany(
                "INSERT INTO stock (sku, on_hand, seq) VALUES (?, ?, ?) "
                "ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand, seq = excluded.seq",
                [(r.sku, r.on_hand, r.seq) for r in rows],
            )
            return rows

    def stock(self) -> dict[str, int]:
        with self._transaction() as conn:
            return dict(conn.execute("SELECT sku, on_hand FROM stock ORDER BY sku").fetchall())

    def changes(self, after: int, limit: int) -> ChangesPage:
        """Up to ``limit`` rows with a sequence number above ``after``, in sequence order."""
        with self._transaction() as conn:
            fetched = conn.execute(
                "SELECT sku, on_hand, seq FROM stock WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            latest = self._latest_seq(conn)
        rows = [StockRow(*row) for row in fetched[:limit]]
        return ChangesPage(rows=rows, has_more=len(fetched) > limit, latest_seq=latest)

    # ------------------------------------------------------------------ movements

    def apply_movements(self, movements: Iterable[MovementIn]) -> tuple[list[str], list[tuple[str, str]]]:
        """Apply each movement once per key; return the acknowledged keys and (key, reason) refusals."""
        acknowledged: list[str] = []
        rejected: list[tuple[str, str]] = []
        at = datetime.now(UTC).isoformat()
        with self._transaction() as conn:
            for m in movements:
                if conn.execute("SELECT 1 FROM movements WHERE key = ?", (m.key,)).fetchone():
                    acknowledged.append(m.key)
                    continue
                row = conn.execute("SELECT on_hand FROM stock WHERE sku = ?", (m.sku,)).fetchone()
                if row is None:
                    rejected.append((m.key, f"unknown SKU {m.sku!r}"))
                    continue
                on_hand = row[0] + m.delta
                if on_hand < 0:
                    # Like an ERP configured to refuse negative stock.
                    rejected.append((m.key, f"insufficient stock for {m.sku!r}: on hand {row[0]}"))
                    continue
                conn.execute(
                    "UPDATE stock SET on_hand = ?, seq = ? WHERE sku = ?",
                    (on_hand, self._latest_seq(conn) + 1, m.sku),
                )
                conn.execute(
                    "INSERT INTO movements (key, sku, delta, reason, reference, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (m.key, m.sku, m.delta, m.reason, m.reference, at),
                )
                acknowledged.append(m.key)
        return acknowledged, rejected

    def movements(self) -> list[dict[str, object]]:
        with self._transaction() as conn:
            cursor = conn.execute("SELECT key, sku, delta, reason, reference, at FROM movements ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # ------------------------------------------------------------------ imported orders

    def mark_imported(self, refs: Iterable[str]) -> None:
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO imported_orders (ref) VALUES (?)", [(r,) for r in refs])

    def imported(self, refs: Iterable[str]) -> list[str]:
        """Of ``refs``, those imported, in the order asked."""
        wanted = list(dict.fromkeys(refs))
        known: set[str] = set()
        with self._transaction() as conn:
            # Chunked to stay under SQLite's limit on bound parameters.
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                query = f"SELECT ref FROM imported_orders WHERE ref IN ({marks})"
                known.update(r for (r,) in conn.execute(query, chunk).fetchall())
        return [r for r in wanted if r in known]
