"""The allocation accounts in the ledger: levels, writes on the wire and held units, per SKU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from connectors.base import OrderLine
from syncd.accounts import AccountStore, Change, Sale, SkuAccounts, T, apply_sales
from syncd.allocation import Level, ListingAccount, Part, PartKind, Write, WriteState
from syncd.store import models as t
from syncd.store.queries import chunks

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from syncd.store.database import Database


def _load(conn: Connection, skus: list[str]) -> dict[str, SkuAccounts]:
    lv, wr, pa = t.allocation_level, t.allocation_write, t.allocation_part
    levels: dict[tuple[str, str], Level] = {}
    writes: dict[tuple[str, str], list[Write]] = {}
    parts: dict[str, list[Part]] = {}
    for batch in chunks(skus):
        for row in conn.execute(select(lv).where(lv.c.sku.in_(batch))):
            levels[(row.channel, row.sku)] = Level(row.quantity, row.at, row.sold)
        for row in conn.execute(select(wr).where(wr.c.sku.in_(batch)).order_by(wr.c.at, wr.c.push_id)):
            write = Write(row.push_id, Level(row.quantity, row.at, row.sold), row.compare, WriteState(row.state))
            writes.setdefault((row.channel, row.sku), []).append(write)
        for row in conn.execute(select(pa).where(pa.c.sku.in_(batch)).order_by(pa.c.id)):
            part = Part(row.channel, row.sku, PartKind(row.kind), row.units, row.since, row.until, row.push_id)
            parts.setdefault(row.sku, []).append(part)
    found: dict[str, SkuAccounts] = {}
    for channel, sku in sorted({*levels, *writes}):
        book = found.get(sku) or SkuAccounts(sku, {})
        account = ListingAccount(channel, sku, levels.get((channel, sku)), tuple(writes.get((channel, sku), ())))
        found[sku] = book.with_listing(account)
    for sku, held in parts.items():
        book = found.get(sku) or SkuAccounts(sku, {})
        found[sku] = SkuAccounts(sku, book.listings, tuple(held))
    return found


def _save(conn: Connection, books: dict[str, SkuAccounts]) -> None:
    lv, wr, pa = t.allocation_level, t.allocation_write, t.allocation_part
    skus = sorted(books)
    for batch in chunks(skus):
        for table in (lv, wr, pa):
            conn.execute(delete(table).where(table.c.sku.in_(batch)))
    level_rows: list[dict[str, Any]] = []
    write_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    for sku in skus:
        book = books[sku]
        for account in book.listings.values():
            if account.confirmed is not None:
                c = account.confirmed
                level_rows.append(
                    {"channel": account.channel, "sku": sku, "quantity": c.quantity, "at": c.at, "sold": c.sold}
                )
            for w in account.writes:
                write_rows.append(
                    {
                        "push_id": w.push_id,
                        "channel": account.channel,
                        "sku": sku,
                        "quantity": w.level.quantity,
                        "at": w.level.at,
                        "sold": w.level.sold,
                        "compare": w.compare,
                        "state": w.state.value,
                    }
                )
        for p in book.parts:
            part_rows.append(
                {
                    "channel": p.channel,
                    "sku": sku,
                    "kind": p.kind.value,
                    "units": p.units,
                    "since": p.since,
                    "until": p.until,
                    "push_id": p.push_id,
                }
            )
    for table, rows in ((lv, level_rows), (wr, write_rows), (pa, part_rows)):
        for batch_rows in chunks(rows):
            conn.execute(table.insert(), batch_rows)


class AccountTables(AccountStore):
    """The Store's side of the allocation accounts (mixed into ``Store``)."""

    _db: Database

    def change_accounts(self, skus: Iterable[str], change: Change[T]) -> T:
        wanted = sorted(set(skus))
        with self._db.transaction("change allocation accounts") as conn:
            books = _load(conn, wanted)
            current = {s: books.get(s) or SkuAccounts(s, {}) for s in wanted}
            result = change(current)
            _save(conn, current)
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
        was both sold and restocked."""
        sales = [Sale(x.channel, x.sku, x.quantity, x.updated_at) for x in (*new, *first_seen_cancelled)]
        sales += [Sale(x.channel, x.sku, -x.quantity, x.updated_at) for x in (*cancelled, *first_seen_cancelled)]
        if not sales:
            return
        skus = sorted({s.sku for s in sales})
        books = _load(conn, skus)
        current = {s: books.get(s) or SkuAccounts(s, {}) for s in skus}
        apply_sales(current, sales)
        _save(conn, current)

    def load_accounts(self, skus: Iterable[str]) -> dict[str, SkuAccounts]:
        with self._db.transaction("read allocation accounts", write=False) as conn:
            return _load(conn, sorted(set(skus)))

    def skus_holding(self, channel: str) -> set[str]:
        pa = t.allocation_part
        with self._db.transaction("read held units", write=False) as conn:
            return set(conn.execute(select(pa.c.sku).where(pa.c.channel == channel).distinct()).scalars())

    def skus_writing(self) -> set[str]:
        wr = t.allocation_write
        with self._db.transaction("read writes on the wire", write=False) as conn:
            return set(conn.execute(select(wr.c.sku).distinct()).scalars())
