"""SQL building blocks the Store composes: dialect upserts, batched IN lists, key parsing, and the
per-line ingestion step that stays correct when two writers deliver the same order line at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Literal, TypeVar

from sqlalchemy import Connection, Table, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from connectors.base import OrderLine
from syncd.errors import StoreError
from syncd.store import models as t

# Rows per IN list or VALUES batch: far below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500

LINE_STATES = frozenset({"reserved", "posted", "settled", "released", "compensate"})
COUNTED_STATES = ("reserved", "posted")  # units the ERP does not reflect yet

LINE_IDENT = ["channel", "order_id", "line_key"]
LineIdent = tuple[str, str, str]
Outcome = Literal["new", "stored", "released", "compensate", "duplicate"]
_T = TypeVar("_T")


def chunks(items: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that knows ``ON CONFLICT`` in the connection's dialect."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def split_order_ref(ref: str) -> tuple[str, str]:
    """``channel:order_id``; channel names hold no colon, order ids may."""
    channel, sep, order_id = ref.partition(":")
    if not sep or not channel or not order_id:
        raise ValueError(f"order reference {ref!r} is not channel:order_id")
    return channel, order_id


def split_line_key(key: str) -> LineIdent:
    """``channel:order_id:line_key``; channel and line key hold no colon, the order id may."""
    channel, sep, rest = key.partition(":")
    order_id, sep2, line_key = rest.rpartition(":")
    if not (sep and sep2 and channel and order_id and line_key):
        raise ValueError(f"order line key {key!r} is not channel:order_id:line_key")
    return channel, order_id, line_key


def line_states(conn: Connection, idents: Iterable[LineIdent]) -> dict[LineIdent, str]:
    ol = t.order_line
    found: dict[LineIdent, str] = {}
    for batch in chunks(sorted(set(idents))):
        query = select(ol.c.channel, ol.c.order_id, ol.c.line_key, ol.c.state).where(
            tuple_(ol.c.channel, ol.c.order_id, ol.c.line_key).in_(batch)
        )
        for channel, order_id, line_key, state in conn.execute(query):
            found[(channel, order_id, line_key)] = state
    return found


def ingest_line(conn: Connection, line: OrderLine, state: str | None, now: datetime) -> tuple[Outcome, str]:
    """Record one line given the state last seen for it; returns what happened and its state now.

    Each write is conditional on that state. When another writer got there first (only possible
    on PostgreSQL, SQLite writers are serialised) the state is read again and the step retried.
    """
    ol = t.order_line
    ident = (line.channel, line.order_id, line.line_key)
    match = (
        (ol.c.channel == line.channel) & (ol.c.order_id == line.order_id) & (ol.c.line_key == line.line_key)
    )
    cancelled = line.status == "cancelled"
    for _ in range(5):
        if state is None:
            initial = "released" if cancelled else "reserved"
            row = {
                "channel": line.channel,
                "order_id": line.order_id,
                "line_key": line.line_key,
                "sku": line.sku,
                "quantity": line.quantity,
                "state": initial,
                "created_at": now,
                "updated_at": now,
                "acked_at": None,
            }
            # RETURNING, not rowcount: drivers need not report a count for INSERT.
            stmt = insert(conn, ol).values(row).on_conflict_do_nothing(index_elements=LINE_IDENT)
            if conn.execute(stmt.returning(ol.c.id)).first() is not None:
                return ("stored" if cancelled else "new"), initial
        else:
            if not cancelled or state in ("released", "compensate"):
                return "duplicate", state
            target = "released" if state == "reserved" else "compensate"
            stmt2 = update(ol).where(match, ol.c.state == state).values(state=target, updated_at=now)
            if conn.execute(stmt2).rowcount == 1:
                return ("released" if target == "released" else "compensate"), target
        state = line_states(conn, [ident]).get(ident)
    raise StoreError(f"order line {line.key} kept changing under concurrent writers; try again")
