"""The allocation accounts kept in the ledger, and the one API the engine changes them through.

Every change is one transaction over the SKU's accounts: load, apply a pure transition of
``syncd.allocation``, save. A write is recorded as sent *before* it goes on the wire, so a crash
leaves it exposed (lost) instead of forgotten; a restart resumes with exactly the safety it had.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from syncd.allocation import (
    LOST_GRACE,
    Grant,
    Level,
    ListingAccount,
    Part,
    PartKind,
    ReadOutcome,
    SkuBook,
    Write,
    WriteState,
    explain,
    forgotten_until,
    grant,
    record_read,
    record_sale,
    settle,
    write_acknowledged,
    write_lost,
    write_sent,
    write_undone,
)

T = TypeVar("T")


@dataclass(frozen=True)
class SkuAccounts:
    """One SKU's accounts: a listing account per channel and the units held as unaccounted."""

    sku: str
    listings: Mapping[str, ListingAccount]
    parts: tuple[Part, ...] = ()

    def listing(self, channel: str) -> ListingAccount:
        return self.listings.get(channel) or ListingAccount(channel, self.sku)

    def with_listing(self, account: ListingAccount) -> SkuAccounts:
        return replace(self, listings={**self.listings, account.channel: account})

    def book(self, ats: int, threshold: int, in_flight: int = 0) -> SkuBook:
        return SkuBook(self.sku, ats, threshold, dict(self.listings), self.parts, in_flight)


Change = Callable[[dict[str, SkuAccounts]], T]


class AccountStore(abc.ABC):
    """Where the accounts live. ``change_accounts`` runs ``change`` on the accounts of ``skus``
    (missing ones empty) and saves what it leaves in the dict, all in one transaction; StoreError
    on failure, with nothing saved."""

    @abc.abstractmethod
    def change_accounts(self, skus: Iterable[str], change: Change[T]) -> T: ...

    @abc.abstractmethod
    def load_accounts(self, skus: Iterable[str]) -> dict[str, SkuAccounts]:
        """The accounts of ``skus`` that have any."""

    @abc.abstractmethod
    def skus_holding(self, channel: str) -> set[str]:
        """SKUs with units held as unaccounted on ``channel``."""

    @abc.abstractmethod
    def skus_writing(self) -> set[str]:
        """SKUs with a write on the wire (sent or lost)."""


class MemoryAccountStore(AccountStore):
    def __init__(self) -> None:
        self._accounts: dict[str, SkuAccounts] = {}

    def change_accounts(self, skus: Iterable[str], change: Change[T]) -> T:
        current = {s: self._accounts.get(s) or SkuAccounts(s, {}) for s in skus}
        result = change(current)
        self._accounts.update(current)
        return result

    def load_accounts(self, skus: Iterable[str]) -> dict[str, SkuAccounts]:
        return {s: self._accounts[s] for s in skus if s in self._accounts}

    def skus_holding(self, channel: str) -> set[str]:
        return {s for s, b in self._accounts.items() if any(p.channel == channel for p in b.parts)}

    def skus_writing(self) -> set[str]:
        return {s for s, b in self._accounts.items() if any(a.writes for a in b.listings.values())}


@dataclass(frozen=True)
class Sale:
    """A reported sale (or, with negative units, a cancellation the channel restocked)."""

    channel: str
    sku: str
    units: int
    sold_at: datetime


def apply_sales(books: dict[str, SkuAccounts], sales: Sequence[Sale]) -> dict[str, int]:
    """Apply reported sales to the books of their SKUs (all present in ``books``); returns the
    held units they explained, per SKU."""
    explained: dict[str, int] = {}
    for sale in sales:
        book = books[sale.sku]
        book = book.with_listing(record_sale(book.listing(sale.channel), sale.units, sale.sold_at))
        if sale.units > 0:
            parts, units = explain(book.parts, sale.channel, sale.units, sale.sold_at)
            book = replace(book, parts=tuple(parts))
            explained[sale.sku] = explained.get(sale.sku, 0) + units
        books[sale.sku] = book
    return explained


def _apply_read(
    books: dict[str, SkuAccounts], channel: str, shown: Mapping[str, int], read_from: datetime, read_to: datetime
) -> dict[str, ReadOutcome]:
    outcomes: dict[str, ReadOutcome] = {}
    for sku, quantity in shown.items():
        book = books[sku]
        before = book.listing(channel)
        outcome = record_read(before, quantity, read_from, read_to)
        book = book.with_listing(outcome.account)
        if outcome.missing:
            since = None if before.confirmed is None else before.confirmed.at
            part = Part(channel, sku, PartKind.MISSING, outcome.missing, since, read_to)
            book = replace(book, parts=(*book.parts, part))
        books[sku] = book
        outcomes[sku] = outcome
    return outcomes


@dataclass(frozen=True)
class SendRequest:
    """One write to decide: planned to ``target``, with what the allocator needs of its SKU."""

    push_id: int
    sku: str
    target: int
    compare: int | None
    ats: int
    threshold: int
    in_flight: int = 0
    limit: int | None = None
    racing: int = 0
    skip_if: int | None = None


class Accounts:
    """The engine's handle on the allocation accounts: intent-named changes, each one transaction."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def sales(self, sales: Sequence[Sale]) -> dict[str, int]:
        """Reported sales lower the levels that came before them and explain held units; returns
        the units explained per SKU. (The ledger's order intake does this itself, in the same
        transaction as the order lines.)"""
        return self.store.change_accounts({s.sku for s in sales}, lambda books: apply_sales(books, sales))

    def read(
        self, channel: str, shown: Mapping[str, int], read_from: datetime, read_to: datetime
    ) -> dict[str, ReadOutcome]:
        """Listings read: each becomes confirmed where no write is on the wire; units a read shows
        sold beyond the reported sales are held (missing) until their orders or a poll explain them."""
        return self.store.change_accounts(shown, lambda books: _apply_read(books, channel, shown, read_from, read_to))

    def send(
        self,
        channel: str,
        sku: str,
        push_id: int,
        *,
        target: int,
        compare: int | None,
        sent_at: datetime,
        ats: int,
        threshold: int,
        in_flight: int = 0,
        limit: int | None = None,
        racing: int = 0,
        racing_since: datetime | None = None,
        skip_if: int | None = None,
    ) -> Grant:
        """One write (see ``send_many``)."""
        request = SendRequest(push_id, sku, target, compare, ats, threshold, in_flight, limit, racing, skip_if)
        return self.send_many(channel, [request], sent_at, racing_since=racing_since)[sku]

    def send_many(
        self,
        channel: str,
        requests: Sequence[SendRequest],
        sent_at: datetime,
        *,
        racing_since: datetime | None = None,
        read: tuple[Mapping[str, int], datetime, datetime] | None = None,
    ) -> dict[str, Grant]:
        """Decide what each write may set now and record it as sent, before it goes on the wire,
        in one transaction with the read the writes are based on (``read``: the levels shown, and
        when the read started and was answered), if any.

        Units a request's ``racing`` names (sales a write without compare-and-set may overwrite,
        made since ``racing_since``) are held as forgotten until reported or polled. When the
        decision is the request's ``skip_if`` (what the channel was just read to show) nothing is
        recorded: no write is due."""
        grants: dict[str, Grant] = {}

        def change(books: dict[str, SkuAccounts]) -> None:
            if read is not None:
                _apply_read(books, channel, *read)
            for r in requests:
                book = books[r.sku]
                decided = grant(
                    book.book(r.ats, r.threshold, r.in_flight), channel, r.target, limit=r.limit, racing=r.racing
                )
                if r.skip_if is not None and decided.quantity == r.skip_if:
                    grants[r.sku] = replace(decided, hold=0, reason="already shown")
                    continue
                write = Write(r.push_id, Level(decided.quantity, sent_at), r.compare)
                book = book.with_listing(write_sent(book.listing(channel), write))
                if decided.hold:
                    part = Part(channel, r.sku, PartKind.FORGOTTEN, decided.hold, racing_since, sent_at, r.push_id)
                    book = replace(book, parts=(*book.parts, part))
                books[r.sku] = book
                grants[r.sku] = decided

        skus = {r.sku for r in requests} | (set(read[0]) if read is not None else set())
        self.store.change_accounts(skus, change)
        return grants

    def answered(
        self,
        channel: str,
        at: datetime | None = None,
        *,
        applied: Mapping[int, tuple[str, int]] | None = None,
        undone: Mapping[int, str] | None = None,
        lost: Mapping[int, tuple[str, datetime]] | None = None,
    ) -> None:
        """A batch of writes answered at ``at``, by push id: ``applied`` (sku, quantity shown) are
        confirmed and the race a write without compare-and-set holds for ends with the answer;
        ``undone`` surely did not land (stale, refused); ``lost`` (sku, sent at) got no answer and
        stay exposed until a read after the grace shows, holding what they may overwrite until
        they could no longer land. One transaction."""
        applied, undone, lost = applied or {}, undone or {}, lost or {}
        if applied and at is None:
            raise ValueError("applied writes need the time of their answer")

        def change(books: dict[str, SkuAccounts]) -> None:
            for push_id, (sku, quantity) in applied.items():
                book = books[sku]
                assert at is not None
                book = book.with_listing(write_acknowledged(book.listing(channel), push_id, quantity, at))
                books[sku] = replace(book, parts=tuple(forgotten_until(book.parts, push_id, at)))
            for push_id, sku in undone.items():
                books[sku] = books[sku].with_listing(write_undone(books[sku].listing(channel), push_id))
            for push_id, (sku, sent_at) in lost.items():
                book = books[sku].with_listing(write_lost(books[sku].listing(channel), push_id))
                until = sent_at + LOST_GRACE
                books[sku] = replace(book, parts=tuple(forgotten_until(book.parts, push_id, until)))

        skus = {s for s, _ in applied.values()} | set(undone.values()) | {s for s, _ in lost.values()}
        if skus:
            self.store.change_accounts(skus, change)

    def acknowledged(
        self, channel: str, sku: str, push_id: int, at: datetime, shown: int | None = None
    ) -> None:
        """The channel took the write (answered at ``at``): its level is the confirmed one."""
        level = shown if shown is not None else self.get(sku).listing(channel).belief or 0
        self.answered(channel, at, applied={push_id: (sku, level)})

    def undone(self, channel: str, sku: str, push_id: int) -> None:
        """The write surely did not land (stale, refused): it is exposed no more."""
        self.answered(channel, undone={push_id: sku})

    def lost(self, channel: str, sku: str, push_id: int, sent_at: datetime) -> None:
        """No answer for the write: it may have landed."""
        self.answered(channel, sent_at, lost={push_id: (sku, sent_at)})

    def polled(self, channel: str, started: datetime, since: datetime) -> None:
        """An order poll of ``channel`` from ``since``, started at ``started``, was ingested."""

        def change(books: dict[str, SkuAccounts]) -> None:
            for sku, book in books.items():
                books[sku] = replace(book, parts=tuple(settle(book.parts, channel, started, since)))

        skus = self.store.skus_holding(channel)
        if skus:
            self.store.change_accounts(skus, change)

    def restarted(self) -> int:
        """After a crash no answer comes for the writes that were on the wire: each is lost (still
        exposed until a read shows the listing). Returns how many."""
        pending = self.store.skus_writing()
        count = 0

        def change(found: dict[str, SkuAccounts]) -> None:
            nonlocal count
            for sku, book in found.items():
                for account in book.listings.values():
                    for write in account.writes:
                        if write.state is WriteState.SENT:
                            book = book.with_listing(write_lost(book.listing(account.channel), write.push_id))
                            until = write.level.at + LOST_GRACE
                            book = replace(book, parts=tuple(forgotten_until(book.parts, write.push_id, until)))
                            count += 1
                found[sku] = book

        if pending:
            self.store.change_accounts(pending, change)
        return count

    def get(self, sku: str) -> SkuAccounts:
        return self.store.load_accounts([sku]).get(sku) or SkuAccounts(sku, {})
