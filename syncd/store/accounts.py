"""The allocation accounts in the ledger: one row per SKU holding its listings' levels, the writes
on the wire and the units held, as a JSON document (one read and one write per change: the fast
path changes them several times per sale), with the two facts searched for in columns of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from connectors.base import OrderLine
from syncd.accounts import AccountStore, Change, SkuAccounts, T, apply_sales, sales_of
from syncd.allocation import Level, ListingAccount, Part, PartKind, Write, WriteState
from syncd.errors import StoreError
from syncd.store import models as t
from syncd.store.queries import chunks, insert

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from syncd.store.database import Database


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _level(level: Level) -> list[Any]:
    return [level.quantity, level.at.isoformat(), level.sold]


def _unlevel(raw: list[Any]) -> Level:
    return Level(int(raw[0]), datetime.fromisoformat(raw[1]), int(raw[2]))


def encode(book: SkuAccounts) -> str:
    """The SKU's accounts as a JSON document (stable keys, times in ISO 8601 with their offset)."""
    listings = {
        channel: {
            "confirmed": None if a.confirmed is None else _level(a.confirmed),
            "writes": [[w.push_id, _level(w.level), w.compare, w.state.value] for w in a.writes],
        }
        for channel, a in sorted(book.listings.items())
    }
    parts = [[p.channel, p.kind.value, p.units, _time(p.since), _time(p.until), p.push_id] for p in book.parts]
    return json.dumps({"listings": listings, "parts": parts}, separators=(",", ":"))


def decode(sku: str, text: str) -> SkuAccounts:
    try:
        data = json.loads(text)
        listings = {
            channel: ListingAccount(
                channel,
                sku,
                None if raw["confirmed"] is None else _unlevel(raw["confirmed"]),
                tuple(Write(int(w[0]), _unlevel(w[1]), w[2], WriteState(w[3])) for w in raw["writes"]),
            )
            for channel, raw in data["listings"].items()
        }
        parts = tuple(
            Part(p[0], sku, PartKind(p[1]), int(p[2]), _when(p[3]), _when(p[4]) or datetime.min, p[5])
            for p in data["parts"]
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        # A damaged row must not be read as "nothing exposed": that would free units it may hold.
        raise StoreError(f"allocation accounts of SKU {sku!r} are unreadable: {exc}") from exc
    return SkuAccounts(sku, listings, parts)


def _load(conn: Connection, skus: list[str]) -> dict[str, SkuAccounts]:
    ab = t.allocation_book
    found: dict[str, SkuAccounts] = {}
    for batch in chunks(skus):
        for row in conn.execute(select(ab.c.sku, ab.c.data).where(ab.c.sku.in_(batch))):
            found[row.sku] = decode(row.sku, row.data)
    return found


def _save(conn: Connection, books: dict[str, SkuAccounts], before: dict[str, SkuAccounts]) -> None:
    ab = t.allocation_book
    rows = []
    for sku, book in sorted(books.items()):
        if before.get(sku) == book or (sku not in before and not book.listings and not book.parts):
            continue
        holding = sorted({p.channel for p in book.parts})
        rows.append(
            {
                "sku": sku,
                "data": encode(book),
                # Searched for: SKUs holding units on a channel (an order poll settles them), and
                # SKUs with a write on the wire (a restart marks them lost).
                "holding": "".join(f",{c}" for c in holding) + ("," if holding else ""),
                "writing": int(any(a.writes for a in book.listings.values())),
            }
        )
    for batch in chunks(rows):
        stmt = insert(conn, ab)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ab.c.sku],
            set_={"data": stmt.excluded.data, "holding": stmt.excluded.holding, "writing": stmt.excluded.writing},
        )
        conn.execute(stmt, batch)


class AccountTables(AccountStore):
    """The Store's side of the allocation accounts (mixed into ``Store``)."""

    _db: Database

    def change_accounts(self, skus: Iterable[str], change: Change[T]) -> T:
        wanted = sorted(set(skus))
        with self._db.transaction("change allocation accounts") as conn:
            before = _load(conn, wanted)
            current = {s: before.get(s) or SkuAccounts(s, {}) for s in wanted}
            result = change(current)
            _save(conn, current, before)
        return result

    def account_sales(
        self,
        conn: Connection,
        new: Sequence[OrderLine],
        cancelled: Sequence[OrderLine],
        first_seen_cancelled: Sequence[OrderLine],
    ) -> None:
        """Within an ingestion's transaction: new sales lower the levels after them and explain held
        units; cancellations put units back (the channel restocks); a line first seen cancelled
        was both sold and restocked. A kit's sale lowers the kit listing (``sales_of``)."""
        sales = sales_of([*new, *first_seen_cancelled])
        sales += sales_of([*cancelled, *first_seen_cancelled], sign=-1)
        if not sales:
            return
        skus = sorted({s.sku for s in sales})
        before = _load(conn, skus)
        current = {s: before.get(s) or SkuAccounts(s, {}) for s in skus}
        apply_sales(current, sales)
        _save(conn, current, before)

    def load_accounts(self, skus: Iterable[str]) -> dict[str, SkuAccounts]:
        with self._db.transaction("read allocation accounts", write=False) as conn:
            return _load(conn, sorted(set(skus)))

    def skus_holding(self, channel: str) -> set[str]:
        ab = t.allocation_book
        with self._db.transaction("read held units", write=False) as conn:
            query = select(ab.c.sku).where(ab.c.holding.contains(f",{channel},", autoescape=True))
            return set(conn.execute(query).scalars())

    def skus_writing(self) -> set[str]:
        ab = t.allocation_book
        with self._db.transaction("read writes on the wire", write=False) as conn:
            return set(conn.execute(select(ab.c.sku).where(ab.c.writing == 1)).scalars())
