"""What the ledger keeps of faults (mixed into ``Store``): quarantined orders and stock records, one
row per item and reason however often a poll reads them again, and the runs a crash left open.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from connectors.base import Quarantined
from syncd.store import models as t
from syncd.store.queries import chunks, insert

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from syncd.store.database import Database

# Runs this process started are its own (alive) whatever its pid; an earlier one with the same pid
# is a predecessor's (a restarted container often gets the same pid).
_PROCESS_STARTED = datetime.now(UTC)

INTERRUPTED = (
    "interrupted: the daemon stopped (killed or crashed) before this run finished; closed at the next start"
)


@dataclass(frozen=True)
class QuarantineRow:
    """A quarantined item as kept: ``seen`` times read, ``resolved_at`` once a clean version of the
    same order (or a good record of the same SKU) was taken in."""

    key: str
    connector: str
    kind: str
    ref: str | None
    reason: str
    excerpt: str
    first_seen_at: datetime
    last_seen_at: datetime
    seen: int
    resolved_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "kind": self.kind,
            "ref": self.ref,
            "reason": self.reason,
            "excerpt": self.excerpt,
            "first_seen_at": self.first_seen_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "seen": self.seen,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }


def quarantine_key(item: Quarantined) -> str:
    """The item's identity: its connector, kind, ref (or, unreadable, its excerpt) and reason."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]

    who = item.ref if item.ref is not None else f"~{digest(item.excerpt)}"
    return f"{item.kind}:{item.connector}:{who}:{digest(item.reason)}"


def run_owner() -> str:
    """This process as a run's owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead(owner: str | None, started_at: datetime, dialect: str) -> bool:
    """Whether the process that started a run is gone. On SQLite a start holds the ledger's lock,
    so no other process runs anything; on PostgreSQL only a process of this host can be checked."""
    if started_at >= _PROCESS_STARTED and owner == run_owner():
        return False  # this process's own
    if dialect == "sqlite":
        return True
    if owner is None:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # a predecessor's run (see _PROCESS_STARTED)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _row(row: Any) -> QuarantineRow:
    return QuarantineRow(
        row.key,
        row.connector,
        row.kind,
        row.ref,
        row.reason,
        row.excerpt,
        row.first_seen_at,
        row.last_seen_at,
        row.seen,
        row.resolved_at,
    )


class FaultTables:
    """The Store's side of quarantined items and interrupted runs."""

    _db: Database

    # -- quarantine ------------------------------------------------------------------------
    def record_quarantined(self, items: Sequence[Quarantined], now: datetime) -> list[Quarantined]:
        """Keep quarantined items; returns those not on record before (or resolved since)."""
        if not items:
            return []
        with self._db.transaction("record quarantined items") as conn:
            return self._record_quarantined(conn, items, now)

    @staticmethod
    def _record_quarantined(
        conn: Connection, items: Sequence[Quarantined], now: datetime
    ) -> list[Quarantined]:
        q = t.quarantine
        fresh: list[Quarantined] = []
        for item in items:
            key = quarantine_key(item)
            values = {
                "key": key,
                "connector": item.connector,
                "kind": item.kind,
                "ref": item.ref,
                "reason": item.reason,
                "excerpt": item.excerpt,
                "first_seen_at": now,
                "last_seen_at": now,
                "seen": 1,
                "resolved_at": None,
            }
            # A row comes back only from the statement that wrote it (rowcount is not reliable
            # with PostgreSQL's driver here).
            added = insert(conn, q).values(**values).on_conflict_do_nothing().returning(q.c.key)
            if conn.execute(added).first() is not None:
                fresh.append(item)
                continue
            reopen = (
                update(q)
                .where(q.c.key == key, q.c.resolved_at.is_not(None))
                .values(resolved_at=None, last_seen_at=now, seen=q.c.seen + 1)
                .returning(q.c.key)
            )
            if conn.execute(reopen).first() is not None:
                fresh.append(item)
            else:
                conn.execute(update(q).where(q.c.key == key).values(last_seen_at=now, seen=q.c.seen + 1))
        return fresh

    def quarantined(self, limit: int | None = None, *, open_only: bool = False) -> list[QuarantineRow]:
        """Quarantined items, the latest first (by when they were first read)."""
        q = t.quarantine
        query = select(q).order_by(q.c.first_seen_at.desc(), q.c.key)
        if open_only:
            query = query.where(q.c.resolved_at.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self._db.transaction("read quarantined items", write=False) as conn:
            return [_row(row) for row in conn.execute(query)]

    def quarantine_counts(self) -> dict[str, int]:
        """``total`` items on record and ``open`` ones (not resolved)."""
        q = t.quarantine
        with self._db.transaction("count quarantined items", write=False) as conn:
            total = conn.execute(select(func.count()).select_from(q)).scalar_one()
            still = conn.execute(
                select(func.count()).select_from(q).where(q.c.resolved_at.is_(None))
            ).scalar_one()
        return {"total": int(total), "open": int(still)}

    def open_quarantine_refs(self, kind: str) -> set[tuple[str, str]]:
        """``(connector, ref)`` of the open items of ``kind`` whose ref could be read."""
        q = t.quarantine
        query = select(q.c.connector, q.c.ref).where(
            q.c.kind == kind, q.c.resolved_at.is_(None), q.c.ref.is_not(None)
        )
        with self._db.transaction("read quarantined refs", write=False) as conn:
            return {(row.connector, row.ref) for row in conn.execute(query)}

    def resolve_quarantined(self, kind: str, refs: Iterable[tuple[str, str]], now: datetime) -> int:
        """Mark the open items of ``kind`` with these ``(connector, ref)`` resolved: a clean version
        arrived. Returns how many were."""
        q = t.quarantine
        wanted = sorted(set(refs))
        done = 0
        with self._db.transaction("resolve quarantined items") as conn:
            for connector in sorted({c for c, _ in wanted}):
                for batch in chunks([r for c, r in wanted if c == connector]):
                    done += conn.execute(
                        update(q)
                        .where(
                            q.c.kind == kind,
                            q.c.connector == connector,
                            q.c.ref.in_(batch),
                            q.c.resolved_at.is_(None),
                        )
                        .values(resolved_at=now)
                    ).rowcount
        return done

    # -- runs a crash left open ------------------------------------------------------------
    def close_interrupted_runs(self, now: datetime) -> list[int]:
        """Close the runs whose process is gone without finishing them (killed, crashed) as
        ``interrupted``; their end is unknown, so they end when they started. Returns their ids."""
        ru = t.run
        with self._db.transaction("close interrupted runs") as conn:
            query = select(ru.c.id, ru.c.owner, ru.c.started_at).where(ru.c.finished_at.is_(None))
            dialect = conn.dialect.name
            dead = [row.id for row in conn.execute(query) if _dead(row.owner, row.started_at, dialect)]
            for batch in chunks(dead):
                conn.execute(
                    update(ru)
                    .where(ru.c.id.in_(batch), ru.c.finished_at.is_(None))
                    .values(finished_at=ru.c.started_at, error=f"{INTERRUPTED} ({now.isoformat()})")
                )
        return dead
