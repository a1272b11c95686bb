"""The mock ERP's own state: stock per warehouse with a change sequence, recorded movements,
imported orders.

One SQLite connection (a file, or memory) behind a lock, so that the sandbox's request handlers
may call it from worker threads; every public method is one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku     TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL,
    seq     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stock_seq ON stock (seq);
CREATE TABLE IF NOT EXISTS warehouses (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
INSERT OR IGNORE INTO warehouses (name, position) VALUES ('main', 0);
CREATE TABLE IF NOT EXISTS levels (
    sku       TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    on_hand   INTEGER NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
-- A database from before warehouses: its stock was all in the default one.
INSERT OR IGNORE INTO levels (sku, warehouse, on_hand)
    SELECT sku, 'main', on_hand FROM stock WHERE sku NOT IN (SELECT sku FROM levels);
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


DEFAULT_WAREHOUSE = "main"


@dataclass(frozen=True)
class StockRow:
    """A SKU's on-hand over all warehouses, its units in each, and its change sequence number."""

    sku: str
    on_hand: int
    seq: int
    warehouses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MovementIn:
    """``warehouses``: where the movement may take units from, in order (a compensation goes to
    the first); empty: every warehouse, the default one first."""

    key: str
    sku: str
    delta: int
    reason: str
    reference: str = ""
    warehouses: tuple[str, ...] = ()


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

    def set_stock(
        self, items: Iterable[tuple[str, int]], warehouse: str = DEFAULT_WAREHOUSE
    ) -> list[StockRow]:
        """Set each SKU's units in ``warehouse`` (creating unknown SKUs and the warehouse), each
        change taking a new sequence number; a SKU's on-hand is the sum over its warehouses."""
        with self._transaction() as conn:
            self._add_warehouse(conn, warehouse)
            seq = self._latest_seq(conn)
            rows = []
            for sku, units in items:
                seq += 1
                conn.execute(
                    "INSERT INTO levels (sku, warehouse, on_hand) VALUES (?, ?, ?) "
                    "ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = excluded.on_hand",
                    (sku, warehouse, units),
                )
                rows.append(self._write_total(conn, sku, seq))
            return rows

    @staticmethod
    def _add_warehouse(conn: sqlite3.Connection, name: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO warehouses (name, position) "
            "SELECT ?, COALESCE(MAX(position), -1) + 1 FROM warehouses",
            (name,),
        )

    @staticmethod
    def _levels(conn: sqlite3.Connection, sku: str) -> dict[str, int]:
        """The SKU's units per warehouse, in the warehouses' order."""
        return dict(
            conn.execute(
                "SELECT l.warehouse, l.on_hand FROM levels l JOIN warehouses w ON w.name = l.warehouse "
                "WHERE l.sku = ? ORDER BY w.position",
                (sku,),
            ).fetchall()
        )

    def _write_total(self, conn: sqlite3.Connection, sku: str, seq: int) -> StockRow:
        levels = self._levels(conn, sku)
        total = sum(levels.values())
        conn.execute(
            "INSERT INTO stock (sku, on_hand, seq) VALUES (?, ?, ?) "
            "ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand, seq = excluded.seq",
            (sku, total, seq),
        )
        return StockRow(sku, total, seq, levels)

    def stock(self) -> dict[str, int]:
        with self._transaction() as conn:
            return dict(conn.execute("SELECT sku, on_hand FROM stock ORDER BY sku").fetchall())

    def levels(self) -> dict[str, dict[str, int]]:
        """Every SKU's units per warehouse."""
        with self._transaction() as conn:
            skus = [sku for (sku,) in conn.execute("SELECT sku FROM stock ORDER BY sku").fetchall()]
            return {sku: self._levels(conn, sku) for sku in skus}

    def warehouses(self) -> list[str]:
        """The warehouses' names, the default one first."""
        with self._transaction() as conn:
            return [name for (name,) in conn.execute("SELECT name FROM warehouses ORDER BY position")]

    def changes(self, after: int, limit: int) -> ChangesPage:
        """Up to ``limit`` rows with a sequence number above ``after``, in sequence order."""
        with self._transaction() as conn:
            fetched = conn.execute(
                "SELECT sku, on_hand, seq FROM stock WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            latest = self._latest_seq(conn)
            rows = [
                StockRow(sku, on_hand, seq, self._levels(conn, sku)) for sku, on_hand, seq in fetched[:limit]
            ]
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
                known = [name for (name,) in conn.execute("SELECT name FROM warehouses ORDER BY position")]
                unknown = [w for w in m.warehouses if w not in known]
                if unknown:
                    rejected.append((m.key, f"unknown warehouse {unknown[0]!r}; known: {', '.join(known)}"))
                    continue
                levels = self._levels(conn, m.sku)
                allowed = list(m.warehouses) or known
                held = sum(levels.get(w, 0) for w in allowed)
                if held + m.delta < 0:
                    # Like an ERP configured to refuse negative stock.
                    where = f" in {', '.join(m.warehouses)}" if m.warehouses else ""
                    rejected.append((m.key, f"insufficient stock for {m.sku!r}: on hand {held}{where}"))
                    continue
                for warehouse, units in _moved(levels, allowed, m.delta).items():
                    conn.execute(
                        "INSERT INTO levels (sku, warehouse, on_hand) VALUES (?, ?, ?) "
                        "ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = excluded.on_hand",
                        (m.sku, warehouse, units),
                    )
                self._write_total(conn, m.sku, self._latest_seq(conn) + 1)
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


def _moved(levels: dict[str, int], allowed: list[str], delta: int) -> dict[str, int]:
    """The new units of the warehouses a movement changes: a sale takes from ``allowed`` in order,
    a compensation goes to the first of them."""
    if delta >= 0:
        return {allowed[0]: levels.get(allowed[0], 0) + delta}
    changed: dict[str, int] = {}
    left = -delta
    for warehouse in allowed:
        units = levels.get(warehouse, 0)
        if left and units > 0:
            taken = min(units, left)
            changed[warehouse] = units - taken
            left -= taken
    return changed
