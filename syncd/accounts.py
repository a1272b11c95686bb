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

from connectors.base import OrderLine
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

    def book(
        self, ats: int, threshold: int, in_flight: int = 0, kits: Iterable[tuple[KitShare, SkuAccounts]] = ()
    ) -> SkuBook:
        """The allocator's view of the SKU; ``kits``: the kit listings drawing on it, each with its
        kit's accounts, counted as listings of this SKU in its units (see ``KitShare``)."""
        listings = dict(self.listings)
        parts = list(self.parts)
        for share, kit in kits:
            account = kit.listings.get(share.channel)
            if account is not None:
                listings[share.key] = scaled(account, share.key, self.sku, share.per_kit)
            parts += [
                replace(p, channel=share.key, sku=self.sku, units=p.units * share.per_kit)
                for p in kit.parts
                if p.channel == share.channel
            ]
        return SkuBook(self.sku, ats, threshold, listings, tuple(parts), in_flight)


# ---------------------------------------------------------------------------- kits


@dataclass(frozen=True)
class KitShare:
    """A kit listing (``kit_sku`` on ``channel``) drawing ``per_kit`` units of a SKU per kit.

    The kit listing has one account, under the kit's code and in kits (its reads, writes and
    sales are of kits). Each component's allocator counts it as one more listing of the component
    (keyed ``key``), at ``per_kit`` units per kit: showing k kits exposes k x per_kit units of each."""

    channel: str
    kit_sku: str
    per_kit: int

    @property
    def key(self) -> str:
        return kit_key(self.channel, self.kit_sku)


def kit_key(channel: str, kit_sku: str) -> str:
    """How a kit listing is named among a component's listings: ``channel/kit code``."""
    return f"{channel}/{kit_sku}"


def scaled(account: ListingAccount, channel: str, sku: str, per_kit: int) -> ListingAccount:
    """A kit listing's account in units of one component: every level (and its sales) times
    ``per_kit``, so exposure, floor and belief are the component units the kits stand for."""

    def level(x: Level) -> Level:
        return Level(x.quantity * per_kit, x.at, x.sold * per_kit)

    return ListingAccount(
        channel,
        sku,
        None if account.confirmed is None else level(account.confirmed),
        tuple(replace(w, level=level(w.level)) for w in account.writes),
    )


@dataclass(frozen=True)
class KitLine(OrderLine):
    """The order line of one component of a kit sold on a channel: its units reserve the
    component; the kit listing ``kit_sku`` sold ``kits`` kits, counted on one component's line
    only (the others carry 0), so that a kit sale lowers its listing once."""

    kit_sku: str = ""
    kits: int = 0


def listing_sold(line: OrderLine) -> tuple[str, int] | None:
    """The listing a line was sold on and the units it lowers it by: the line's own SKU, or for a
    kit's component the kit listing (None on the components that do not carry the kit's count)."""
    if isinstance(line, KitLine):
        return (line.kit_sku, line.kits) if line.kits else None
    return line.sku, line.quantity


def sales_of(lines: Iterable[OrderLine], sign: int = 1) -> list[Sale]:
    """The listing sales order lines stand for (``sign`` -1: their cancellations)."""
    out = []
    for line in lines:
        sold = listing_sold(line)
        if sold is not None:
            out.append(Sale(line.channel, sold[0], sign * sold[1], line.updated_at))
    return out


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
    # A kit's write (``sku`` the kit's code, ``target`` in kits): what each component has.
    components: tuple[ComponentStock, ...] = ()


@dataclass(frozen=True)
class ComponentStock:
    """One component of a kit being written: ``per_kit`` units of ``sku`` in each kit, and the
    figures its allocator needs."""

    sku: str
    per_kit: int
    ats: int
    threshold: int
    in_flight: int = 0


def no_kits(sku: str) -> Sequence[KitShare]:
    return ()


class Accounts:
    """The engine's handle on the allocation accounts: intent-named changes, each one transaction.

    ``kits_of(sku)`` names the kit listings drawing on a SKU: every decision about the SKU counts
    them too, at their kits' units of it."""

    def __init__(self, store: AccountStore, kits_of: Callable[[str], Sequence[KitShare]] = no_kits) -> None:
        self.store = store
        self.kits_of = kits_of

    def _kits_in(self, books: Mapping[str, SkuAccounts], sku: str) -> list[tuple[KitShare, SkuAccounts]]:
        return [(share, books[share.kit_sku]) for share in self.kits_of(sku) if share.kit_sku in books]

    def _book(self, books: Mapping[str, SkuAccounts], sku: str, ats: int, threshold: int, in_flight: int) -> SkuBook:
        return books[sku].book(ats, threshold, in_flight, self._kits_in(books, sku))

    def _kit_grant(self, books: Mapping[str, SkuAccounts], channel: str, r: SendRequest) -> Grant:
        """A kit's write may set as many kits as its scarcest component's grant holds."""
        key = kit_key(channel, r.sku)
        quantity = r.target if r.limit is None else min(r.target, r.limit)
        hold = 0
        for c in r.components:
            book = self._book(books, c.sku, c.ats, c.threshold, c.in_flight)
            decided = grant(book, key, r.target * c.per_kit, racing=r.racing * c.per_kit)
            quantity = min(quantity, decided.quantity // c.per_kit)
            hold = max(hold, -(-decided.hold // c.per_kit))
        return Grant(max(0, quantity), hold, "kit: the scarcest component's grant")

    def _skus_for(self, skus: Iterable[str], requests: Sequence[SendRequest] = ()) -> set[str]:
        """The SKUs a decision about ``skus`` reads: theirs, a kit's components, and the kits
        drawing on any of them."""
        wanted = set(skus) | {c.sku for r in requests for c in r.components}
        return wanted | {share.kit_sku for sku in list(wanted) for share in self.kits_of(sku)}

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
        read_outcomes: dict[str, ReadOutcome] | None = None,
    ) -> dict[str, Grant]:
        """Decide what each write may set now and record it as sent, before it goes on the wire,
        in one transaction with the read the writes are based on (``read``: the levels shown, and
        when the read started and was answered), if any; what the read told of each listing goes
        into ``read_outcomes`` when given (the drift it shows).

        Units a request's ``racing`` names (sales a write without compare-and-set may overwrite,
        made since ``racing_since``) are held as forgotten until reported or polled. When the
        decision is the request's ``skip_if`` (what the channel was just read to show) nothing is
        recorded: no write is due."""
        grants: dict[str, Grant] = {}

        def change(books: dict[str, SkuAccounts]) -> None:
            if read is not None:
                told = _apply_read(books, channel, *read)
                if read_outcomes is not None:
                    read_outcomes.clear()
                    read_outcomes.update(told)
            for r in requests:
                book = books[r.sku]
                if r.components:
                    decided = self._kit_grant(books, channel, r)
                else:
                    decided = grant(
                        self._book(books, r.sku, r.ats, r.threshold, r.in_flight),
                        channel,
                        r.target,
                        limit=r.limit,
                        racing=r.racing,
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
        self.store.change_accounts(self._skus_for(skus, requests), change)
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
