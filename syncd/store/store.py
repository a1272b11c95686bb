"""The Store: every read and write of the ledger, each method one transaction.

Rows handed out are frozen dataclasses, never live ORM objects, so callers cannot change the
ledger by accident. Every database failure surfaces as StoreError (chained to the driver's error).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, case, cast, delete, func, or_, select, tuple_, update

from connectors.base import (
    ErpRecord,
    ErpRecordStore,
    Listing,
    OrderLine,
    Quarantined,
    StoredToken,
    TokenStore,
)
from syncd.accounts import listing_sold
from syncd.core import Drift, PlannedPush
from syncd.errors import StoreError
from syncd.store import models as t
from syncd.store.accounts import AccountTables
from syncd.store.database import Database
from syncd.store.faults import FaultTables, run_owner
from syncd.store.models import UtcDateTime
from syncd.store.queries import (
    COUNTED_STATES,
    LINE_STATES,
    chunks,
    ingest_line,
    insert,
    line_states,
    split_line_key,
    split_order_ref,
)
from syncd.store.replicas import ReplicaTables
from syncd.store.sealing import TokenSeal

_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class SkuRow:
    sku: str
    on_hand: int
    read_at: datetime


@dataclass(frozen=True)
class ListingRow:
    channel: str
    sku: str
    ref: str
    last_pushed: int | None
    pushed_at: datetime | None
    sold_since_push: int
    observed: int | None
    observed_at: datetime | None
    status: str  # "ok" | "rejected" | "unmapped"
    detail: str


@dataclass(frozen=True)
class LineRow:
    channel: str
    order_id: str
    line_key: str
    sku: str
    quantity: int
    state: str  # "reserved" | "posted" | "settled" | "released" | "compensate"
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.order_id}:{self.line_key}"


@dataclass(frozen=True)
class IngestResult:
    new: list[OrderLine] = field(default_factory=list)  # lines reserved for the first time
    released: list[OrderLine] = field(default_factory=list)  # reserved lines now cancelled
    to_compensate: list[OrderLine] = field(default_factory=list)  # posted/settled lines now cancelled
    duplicates: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)  # items quarantined for the first time

    @property
    def touched_skus(self) -> set[str]:
        return {line.sku for line in [*self.new, *self.released, *self.to_compensate]}


@dataclass(frozen=True)
class PushRow:
    id: int
    channel: str
    sku: str
    target: int
    compare: int | None
    reason: str
    state: str  # "pending" | "sent" | "failed" | "superseded"
    attempts: int
    created_at: datetime
    last_error: str


@dataclass(frozen=True)
class DriftRow:
    at: datetime
    channel: str
    sku: str
    expected: int | None
    observed: int
    cause: str
    correction: int | None


@dataclass(frozen=True)
class RunRow:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None


@dataclass(frozen=True)
class HistoryEvent:
    """One event in a SKU's history (see ``models.HistoryTable``); ``detail`` is JSON-ready."""

    at: datetime
    sku: str
    channel: str
    kind: str
    quantity: int | None = None
    outcome: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Store(TokenStore, ErpRecordStore, AccountTables, ReplicaTables, FaultTables):
    """The ledger. ``url`` is an SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``."""

    def __init__(self, url: str, *, seal: TokenSeal | None = None) -> None:
        self._db = Database(url)
        # Tokens are sealed with SYNCD_SECRET_KEY unless the caller brings its own seal.
        self._seal = seal if seal is not None else TokenSeal.from_env()

    def __repr__(self) -> str:
        return f"Store({self._db.name!r})"

    def migrate(self) -> None:
        """Bring the schema to the newest version (Alembic ``upgrade head``)."""
        self._db.migrate()

    def probe_write(self, now: datetime) -> None:
        """Raise StoreError unless the ledger takes a write (a full disk, a read-only file or a
        lost database fail here, where a SELECT would still answer)."""
        with self._db.transaction("write probe") as conn:
            self._save_cursor(conn, "ready:probe", now.isoformat())

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""
        with self._db.transaction("ping", write=False) as conn:
            conn.execute(select(1))

    def close(self) -> None:
        self._db.close()

    # -- stock ------------------------------------------------------------------------------
    def apply_stock(self, records: Sequence[tuple[str, int]], read_started: datetime, now: datetime) -> int:
        """Store ERP on-hand figures read by a request that started at ``read_started``.

        In the same transaction, every ``posted`` order line of those SKUs whose movement was
        acknowledged before ``read_started`` becomes ``settled`` (the ERP figure now includes it).
        Returns the number of lines settled.
        """
        latest = dict(records)
        if not latest:
            return 0
        sk, ol = t.sku, t.order_line
        settled = 0
        with self._db.transaction("apply stock") as conn:
            stmt = insert(conn, sk)
            upsert = stmt.on_conflict_do_update(
                index_elements=[sk.c.sku],
                set_={"on_hand": stmt.excluded.on_hand, "read_at": stmt.excluded.read_at},
            )
            conn.execute(
                upsert, [{"sku": s, "on_hand": q, "read_at": now} for s, q in sorted(latest.items())]
            )
            for batch in chunks(sorted(latest)):
                settle = (
                    update(ol)
                    .where(ol.c.state == "posted", ol.c.acked_at <= read_started, ol.c.sku.in_(batch))
                    .values(state="settled", updated_at=now)
                )
                settled += conn.execute(settle).rowcount
        return settled

    def settle_orders(self, order_refs: Iterable[str], now: datetime) -> int:
        """Settle the reserved or posted lines of orders (``channel:order_id``) the ERP imported."""
        orders = sorted({split_order_ref(ref) for ref in order_refs})
        ol = t.order_line
        settled = 0
        with self._db.transaction("settle orders") as conn:
            for batch in chunks(orders):
                settle = (
                    update(ol)
                    .where(tuple_(ol.c.channel, ol.c.order_id).in_(batch), ol.c.state.in_(COUNTED_STATES))
                    .values(state="settled", updated_at=now)
                )
                settled += conn.execute(settle).rowcount
        return settled

    def skus(self, skus: Iterable[str] | None = None) -> dict[str, SkuRow]:
        sk = t.sku
        with self._db.transaction("read SKUs", write=False) as conn:
            rows = _select_some(conn, select(sk.c.sku, sk.c.on_hand, sk.c.read_at), sk.c.sku, skus)
        return {row.sku: SkuRow(row.sku, row.on_hand, row.read_at) for row in rows}

    def reserved_by_sku(self, skus: Iterable[str] | None = None) -> dict[str, int]:
        """Units in ``reserved`` or ``posted`` lines, per SKU (SKUs with none are absent)."""
        ol = t.order_line
        query = (
            select(ol.c.sku, func.sum(ol.c.quantity).label("units"))
            .where(ol.c.state.in_(COUNTED_STATES))
            .group_by(ol.c.sku)
        )
        with self._db.transaction("read reservations", write=False) as conn:
            rows = _select_some(conn, query, ol.c.sku, skus)
        return {row.sku: int(row.units) for row in rows if row.units}

    # -- listings ---------------------------------------------------------------------------
    def sync_listings(self, channel: str, listings: Sequence[Listing], observed_at: datetime) -> None:
        """Upsert the channel's listings (ref, observed quantity); ones no longer listed are dropped."""
        by_sku = {listing.sku: listing for listing in listings}
        li = t.listing
        rows = [
            {
                "channel": channel,
                "sku": sku,
                "ref": listing.ref,
                "last_pushed": None,
                "pushed_at": None,
                "sold_since_push": 0,
                "observed": listing.quantity,
                "observed_at": observed_at if listing.quantity is not None else None,
                "status": "ok",
                "detail": "",
            }
            for sku, listing in sorted(by_sku.items())
        ]
        with self._db.transaction("sync listings") as conn:
            if rows:
                stmt = insert(conn, li)
                upsert = stmt.on_conflict_do_update(
                    index_elements=[li.c.channel, li.c.sku],
                    set_={
                        "ref": stmt.excluded.ref,
                        "observed": stmt.excluded.observed,
                        "observed_at": stmt.excluded.observed_at,
                    },
                )
                conn.execute(upsert, rows)
            stored = conn.execute(select(li.c.sku).where(li.c.channel == channel)).scalars()
            gone = sorted(set(stored) - by_sku.keys())
            for batch in chunks(gone):
                conn.execute(delete(li).where(li.c.channel == channel, li.c.sku.in_(batch)))

    def record_observed(self, channel: str, observed: dict[str, int], at: datetime) -> None:
        li = t.listing
        stmt = (
            update(li)
            .where(li.c.channel == channel, li.c.sku == bindparam("b_sku"))
            .values(observed=bindparam("b_quantity"), observed_at=bindparam("b_at", type_=UtcDateTime))
        )
        params = [{"b_sku": s, "b_quantity": q, "b_at": at} for s, q in sorted(observed.items())]
        with self._db.transaction("record observed quantities") as conn:
            if params:
                conn.execute(stmt, params)

    def record_pushed(self, channel: str, applied: dict[str, int], at: datetime) -> None:
        """After a successful push: last_pushed = quantity, sold_since_push = 0, status ok.

        ``at`` is when the value was known to hold: the read before the write, or the write's start.
        """
        li = t.listing
        stmt = (
            update(li)
            .where(li.c.channel == channel, li.c.sku == bindparam("b_sku"))
            .values(
                last_pushed=bindparam("b_quantity"),
                pushed_at=bindparam("b_at", type_=UtcDateTime),
                sold_since_push=0,
                status="ok",
                detail="",
            )
        )
        params = [{"b_sku": s, "b_quantity": q, "b_at": at} for s, q in sorted(applied.items())]
        with self._db.transaction("record pushed quantities") as conn:
            if params:
                conn.execute(stmt, params)

    def rebase_listings(
        self, channel: str, skus: Iterable[str] | None = None, *, read_from: datetime | None = None
    ) -> None:
        """Make the last read-back the listings' baseline: last_pushed = observed as of observed_at,
        nothing sold since. Call it after drift has been judged against the old baseline. With
        ``read_from`` (when the read began), a listing written since keeps its write as baseline:
        the read may show it before the write."""
        li = t.listing
        where = [li.c.channel == channel, li.c.observed.is_not(None)]
        if read_from is not None:
            where.append(or_(li.c.pushed_at.is_(None), li.c.pushed_at <= read_from))
        if skus is not None:
            where.append(li.c.sku.in_(sorted(set(skus))))
        stmt = (
            update(li)
            .where(*where)
            .values(last_pushed=li.c.observed, pushed_at=li.c.observed_at, sold_since_push=0)
        )
        with self._db.transaction("rebase listings") as conn:
            conn.execute(stmt)

    def set_listing_status(self, channel: str, sku: str, status: str, detail: str = "") -> None:
        li = t.listing
        stmt = update(li).where(li.c.channel == channel, li.c.sku == sku).values(status=status, detail=detail)
        with self._db.transaction("set listing status") as conn:
            conn.execute(stmt)

    def listings(self, channel: str | None = None, skus: Iterable[str] | None = None) -> list[ListingRow]:
        li = t.listing
        query = select(li)
        if channel is not None:
            query = query.where(li.c.channel == channel)
        with self._db.transaction("read listings", write=False) as conn:
            rows = _select_some(conn, query, li.c.sku, skus)
        found = [ListingRow(**row._asdict()) for row in rows]
        return sorted(found, key=lambda row: (row.channel, row.sku))

    # -- order lines ------------------------------------------------------------------------
    def ingest_lines(self, lines: Sequence[OrderLine], now: datetime) -> IngestResult:
        """Idempotently record order lines (unique on channel, order id, line key).

        A new open line is ``reserved`` and adds its quantity to the listing's sold_since_push if the
        channel sold it after the listing's last push (``updated_at`` > ``pushed_at``).
        A new line already cancelled is stored as ``released`` and touches nothing else.
        A known reserved line now cancelled becomes ``released``; a known posted or settled line
        now cancelled becomes ``compensate``; either way, if it was sold after the listing's last
        push, it is taken out of sold_since_push again (the channel restocks a cancelled order).
        Anything else already known is a duplicate.
        """
        with self._db.transaction("ingest order lines") as conn:
            return self._ingest(conn, lines, now)

    def ingest_delivery(
        self,
        lines: Sequence[OrderLine],
        keys: Sequence[str],
        now: datetime,
        ttl: timedelta,
        quarantined: Sequence[Quarantined] = (),
    ) -> IngestResult | None:
        """Record a webhook delivery's lines (as ``ingest_lines``) and quarantined orders (as
        ``record_quarantined``) and mark its delivery keys seen (as ``mark_webhook_seen``), in one
        transaction. Returns None, recording nothing, when every key was seen already (a
        duplicate). A failure records none of it, so a redelivery counts."""
        with self._db.transaction("ingest webhook delivery") as conn:
            fresh = [key for key in keys if not self._mark_seen(conn, key, now, ttl)]
            if keys and not fresh:
                return None
            return self._ingest_with(conn, lines, quarantined, now)

    def ingest_polled(
        self,
        lines: Sequence[OrderLine],
        cursors: Mapping[str, str],
        now: datetime,
        quarantined: Sequence[Quarantined] = (),
    ) -> IngestResult:
        """Record polled lines (as ``ingest_lines``) and quarantined orders, and save the cursors
        that poll reached, in one transaction: a failure leaves every cursor where it was, so the
        next poll reads them again (a cursor never passes an order that is neither)."""
        with self._db.transaction("ingest polled order lines") as conn:
            for name, value in cursors.items():
                self._save_cursor(conn, name, value)
            return self._ingest_with(conn, lines, quarantined, now)

    def _ingest_with(
        self, conn: Connection, lines: Sequence[OrderLine], quarantined: Sequence[Quarantined], now: datetime
    ) -> IngestResult:
        result = self._ingest(conn, lines, now)
        if quarantined:
            result.quarantined.extend(self._record_quarantined(conn, quarantined, now))
        return result

    def _ingest(self, conn: Connection, lines: Sequence[OrderLine], now: datetime) -> IngestResult:
        new: list[OrderLine] = []
        released: list[OrderLine] = []
        to_compensate: list[OrderLine] = []
        first_seen_cancelled: list[OrderLine] = []
        duplicates = 0
        li = t.listing
        states = line_states(conn, [(line.channel, line.order_id, line.line_key) for line in lines])
        for line in lines:
            ident = (line.channel, line.order_id, line.line_key)
            outcome, states[ident] = ingest_line(conn, line, states.get(ident), now)
            if outcome == "new":
                new.append(line)
            elif outcome == "released":
                released.append(line)
            elif outcome == "compensate":
                to_compensate.append(line)
            elif outcome == "duplicate":
                duplicates += 1
            elif outcome == "stored":
                first_seen_cancelled.append(line)
        # The allocation accounts move with the lines, in the same transaction (see accounts.py).
        self.account_sales(conn, new, [*released, *to_compensate], first_seen_cancelled)
        if new:
            # A sale the channel made before syncd's last write was overwritten by that write:
            # only later sales lower what the channel shows now.
            bump = (
                update(li)
                .where(
                    li.c.channel == bindparam("b_channel"),
                    li.c.sku == bindparam("b_sku"),
                    li.c.pushed_at.is_(None) | (li.c.pushed_at < bindparam("b_at", type_=UtcDateTime)),
                )
                .values(sold_since_push=li.c.sold_since_push + bindparam("b_units"))
            )
            params = [
                {
                    "b_channel": line.channel,
                    "b_sku": sold[0],  # a kit's component lowers the kit listing (listing_sold)
                    "b_units": sold[1],
                    # Strictly after: channels stamp orders in whole seconds, and a sale in the
                    # push's own second is taken as overwritten. If it came after the write,
                    # syncd believes the channel shows more than it does and pushes again
                    # (at worst a unit held back briefly); the other way round would let the
                    # channel show a unit already sold.
                    "b_at": line.updated_at,
                }
                for line in new
                if (sold := listing_sold(line)) is not None
            ]
            if params:
                conn.execute(bump, params)
        cancelled = [*released, *to_compensate]
        if cancelled:
            self._unsell(conn, cancelled)
        if self.standby:
            self._hand_off(conn, {line.sku for line in [*new, *cancelled]}, now)
        return IngestResult(new=new, released=released, to_compensate=to_compensate, duplicates=duplicates)

    @staticmethod
    def _unsell(conn: Connection, cancelled: Sequence[OrderLine]) -> None:
        """Channels put a cancelled order's units back on sale by themselves: a cancelled line that
        was counted in its listing's sold_since_push (sold after the last push) stops counting."""
        ol, li = t.order_line, t.listing
        for line in cancelled:
            sold = listing_sold(line)
            if sold is None:
                continue
            created = conn.execute(
                select(ol.c.created_at).where(
                    ol.c.channel == line.channel,
                    ol.c.order_id == line.order_id,
                    ol.c.line_key == line.line_key,
                )
            ).scalar()
            conn.execute(
                update(li)
                .where(
                    li.c.channel == line.channel,
                    li.c.sku == sold[0],
                    (li.c.pushed_at.is_(None)) | (li.c.pushed_at <= created),
                )
                .values(
                    sold_since_push=case(
                        (li.c.sold_since_push > sold[1], li.c.sold_since_push - sold[1]), else_=0
                    )
                )
            )

    def lines_in_state(self, state: str, limit: int = 1000) -> list[LineRow]:
        ol = t.order_line
        query = (
            select(
                ol.c.channel,
                ol.c.order_id,
                ol.c.line_key,
                ol.c.sku,
                ol.c.quantity,
                ol.c.state,
                ol.c.created_at,
                ol.c.updated_at,
            )
            .where(ol.c.state == state)
            .order_by(ol.c.id)
            .limit(limit)
        )
        with self._db.transaction("read order lines", write=False) as conn:
            return [LineRow(**row._asdict()) for row in conn.execute(query)]

    def mark_lines(self, keys: Iterable[str], state: str, now: datetime) -> None:
        """Move lines (by ``channel:order:line`` key) to ``state``; ``posted`` also stamps acked time."""
        if state not in LINE_STATES:
            raise ValueError(f"unknown order line state {state!r}; expected one of {sorted(LINE_STATES)}")
        idents = sorted({split_line_key(key) for key in keys})
        ol = t.order_line
        with self._db.transaction("mark order lines") as conn:
            for batch in chunks(idents):
                match = tuple_(ol.c.channel, ol.c.order_id, ol.c.line_key).in_(batch)
                if state != "posted":
                    conn.execute(update(ol).where(match).values(state=state, updated_at=now))
                    continue
                # A line cancelled while its sale was being recorded in the ERP still had its
                # sale recorded: it now needs a compensating movement, not to count as sold.
                conn.execute(
                    update(ol)
                    .where(match, ol.c.state == "released")
                    .values(state="compensate", acked_at=now, updated_at=now)
                )
                conn.execute(
                    update(ol)
                    .where(match, ol.c.state.not_in(("released", "compensate")))
                    .values(state="posted", acked_at=now, updated_at=now)
                )

    # -- outbox -----------------------------------------------------------------------------
    def enqueue_pushes(self, pushes: Sequence[PlannedPush], now: datetime) -> None:
        """Queue pushes; a pending push for the same (channel, sku) is superseded by the new one."""
        if not pushes:
            return
        last = {(p.channel, p.sku): i for i, p in enumerate(pushes)}
        rows = [
            {
                "channel": p.channel,
                "sku": p.sku,
                "target": p.target,
                "compare": p.compare,
                "reason": p.reason,
                # Within one batch too, only the last push for a (channel, sku) stays pending.
                "state": "pending" if last[(p.channel, p.sku)] == i else "superseded",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "last_error": "",
            }
            for i, p in enumerate(pushes)
        ]
        pu = t.push
        supersede = (
            update(pu)
            .where(
                pu.c.channel == bindparam("b_channel"),
                pu.c.sku == bindparam("b_sku"),
                pu.c.state == "pending",
            )
            .values(state="superseded", updated_at=now)
        )
        with self._db.transaction("enqueue pushes") as conn:
            conn.execute(supersede, [{"b_channel": c, "b_sku": s} for c, s in sorted(last)])
            conn.execute(insert(conn, pu), rows)

    def pending_pushes(
        self, channel: str | None = None, limit: int = 10_000, skus: Iterable[str] | None = None
    ) -> list[PushRow]:
        """Pending pushes (of one channel, of some SKUs), oldest first. Looked up by SKU through
        its index, planning a few SKUs costs the same whatever the outbox holds."""
        pu = t.push
        query = select(*(pu.c[name] for name in _PUSH_FIELDS)).where(pu.c.state == "pending")
        if channel is not None:
            query = query.where(pu.c.channel == channel)
        if skus is not None:
            with self._db.transaction("read pending pushes", write=False) as conn:
                found = _select_some(conn, query, pu.c.sku, sorted(set(skus)))
            return sorted((PushRow(**row._asdict()) for row in found), key=lambda p: p.id)[:limit]
        with self._db.transaction("read pending pushes", write=False) as conn:
            rows = conn.execute(query.order_by(pu.c.id).limit(limit))
            return [PushRow(**row._asdict()) for row in rows]

    def pending_for(self, channel: str, skus: Iterable[str]) -> dict[str, PushRow]:
        """The channel's pending push for each of these SKUs that has one (at most one each)."""
        pu = t.push
        found: dict[str, PushRow] = {}
        fields = [pu.c[name] for name in _PUSH_FIELDS]
        with self._db.transaction("read pending pushes", write=False) as conn:
            for batch in chunks(sorted(set(skus))):
                query = select(*fields).where(
                    pu.c.channel == channel, pu.c.sku.in_(batch), pu.c.state == "pending"
                )
                for row in conn.execute(query.order_by(pu.c.id)):
                    found[row.sku] = PushRow(**row._asdict())
        return found

    def complete_pushes(self, ids: Iterable[int], now: datetime) -> None:
        pu = t.push
        with self._db.transaction("complete pushes") as conn:
            for batch in chunks(sorted(set(ids))):
                conn.execute(update(pu).where(pu.c.id.in_(batch)).values(state="sent", updated_at=now))

    def supersede_pushes(self, ids: Iterable[int], now: datetime) -> None:
        """Withdraw pending pushes without sending them (a new plan decides those listings)."""
        pu = t.push
        with self._db.transaction("supersede pushes") as conn:
            for batch in chunks(sorted(set(ids))):
                conn.execute(
                    update(pu)
                    .where(pu.c.id.in_(batch), pu.c.state == "pending")
                    .values(state="superseded", updated_at=now)
                )

    def fail_push(self, push_id: int, error: str, now: datetime, *, give_up: bool) -> None:
        """Count a failed attempt; ``give_up`` marks it failed for good, else it stays pending (and
        its claim is given back: the attempt is over)."""
        pu = t.push
        stmt = (
            update(pu)
            .where(pu.c.id == push_id)
            .values(
                attempts=pu.c.attempts + 1,
                last_error=error[:_MAX_ERROR_CHARS],
                updated_at=now,
                state="failed" if give_up else pu.c.state,
            )
        )
        with self._db.transaction("record failed push") as conn:
            conn.execute(stmt)
            if not give_up:
                self._unclaim(conn, [push_id])

    # -- drift, runs, cursors ---------------------------------------------------------------
    def record_drift(
        self, drifts: Sequence[Drift], corrections: dict[tuple[str, str], int], now: datetime
    ) -> None:
        rows = [
            {
                "at": now,
                "channel": d.channel,
                "sku": d.sku,
                "expected": d.expected,
                "observed": d.observed,
                "cause": str(d.cause),
                "correction": corrections.get((d.channel, d.sku)),
            }
            for d in drifts
        ]
        with self._db.transaction("record drift") as conn:
            if rows:
                conn.execute(insert(conn, t.drift), rows)

    def recent_drift(self, limit: int = 50) -> list[DriftRow]:
        dr = t.drift
        query = (
            select(dr.c.at, dr.c.channel, dr.c.sku, dr.c.expected, dr.c.observed, dr.c.cause, dr.c.correction)
            .order_by(dr.c.at.desc(), dr.c.id.desc())
            .limit(limit)
        )
        with self._db.transaction("read drift", write=False) as conn:
            return [DriftRow(**row._asdict()) for row in conn.execute(query)]

    def start_run(self, kind: str, now: datetime) -> int:
        stmt = t.run.insert().values(
            kind=kind, started_at=now, finished_at=None, counts="{}", error=None, owner=run_owner()
        )
        with self._db.transaction("start run") as conn:
            key = conn.execute(stmt).inserted_primary_key
        assert key is not None  # an INSERT always yields its key
        return int(key[0])

    def finish_run(
        self, run_id: int, now: datetime, counts: dict[str, int], error: str | None = None
    ) -> None:
        ru = t.run
        stmt = (
            update(ru)
            .where(ru.c.id == run_id)
            .values(finished_at=now, counts=json.dumps(counts, sort_keys=True), error=error)
        )
        with self._db.transaction("finish run") as conn:
            conn.execute(stmt)

    def recent_runs(self, limit: int = 20) -> list[RunRow]:
        ru = t.run
        query = select(ru).order_by(ru.c.started_at.desc(), ru.c.id.desc()).limit(limit)
        with self._db.transaction("read runs", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            RunRow(row.id, row.kind, row.started_at, row.finished_at, json.loads(row.counts), row.error)
            for row in rows
        ]

    def get_cursor(self, name: str) -> str | None:
        cu = t.cursor
        with self._db.transaction("read cursor", write=False) as conn:
            value: str | None = conn.execute(select(cu.c.value).where(cu.c.name == name)).scalar()
        return value

    def set_cursor(self, name: str, value: str) -> None:
        with self._db.transaction("save cursor") as conn:
            self._save_cursor(conn, name, value)

    @staticmethod
    def _save_cursor(conn: Connection, name: str, value: str) -> None:
        stmt = insert(conn, t.cursor).values(name=name, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"value": value}))

    # -- operator's view: history, reports, retention ----------------------------------------
    def record_history(self, events: Sequence[HistoryEvent]) -> None:
        rows = [
            {
                "at": e.at,
                "sku": e.sku,
                "channel": e.channel,
                "kind": e.kind,
                "quantity": e.quantity,
                "outcome": e.outcome[:200],
                "detail": json.dumps(e.detail, sort_keys=True, default=str),
            }
            for e in events
        ]
        with self._db.transaction("record history") as conn:
            if rows:
                conn.execute(insert(conn, t.history), rows)

    def history(
        self,
        sku: str | None = None,
        since: datetime | None = None,
        kinds: Iterable[str] | None = None,
        limit: int = 2000,
    ) -> list[HistoryEvent]:
        """The newest ``limit`` events (of one SKU, since a time, of some kinds), oldest first."""
        hi = t.history
        query = select(hi)
        if sku is not None:
            query = query.where(hi.c.sku == sku)
        if since is not None:
            query = query.where(hi.c.at >= since)
        if kinds is not None:
            query = query.where(hi.c.kind.in_(sorted(set(kinds))))
        query = query.order_by(hi.c.at.desc(), hi.c.id.desc()).limit(limit)
        with self._db.transaction("read history", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            HistoryEvent(r.at, r.sku, r.channel, r.kind, r.quantity, r.outcome, json.loads(r.detail or "{}"))
            for r in reversed(rows)
        ]

    def history_times(self, since: datetime, kinds: Iterable[str]) -> list[tuple[str, datetime, int]]:
        """(kind, time, quantity) of every event of these kinds since ``since``: for charts."""
        hi = t.history
        query = (
            select(hi.c.kind, hi.c.at, hi.c.quantity)
            .where(hi.c.at >= since, hi.c.kind.in_(sorted(set(kinds))))
            .order_by(hi.c.at)
        )
        with self._db.transaction("read history times", write=False) as conn:
            return [(r.kind, r.at, r.quantity or 0) for r in conn.execute(query)]

    def history_totals(self, since: datetime, kinds: Iterable[str]) -> dict[tuple[str, str], int]:
        """Units per (SKU, kind) of the events of these kinds since ``since`` (summed in SQL)."""
        hi = t.history
        query = (
            select(hi.c.sku, hi.c.kind, func.sum(hi.c.quantity).label("units"))
            .where(hi.c.at >= since, hi.c.kind.in_(sorted(set(kinds))))
            .group_by(hi.c.sku, hi.c.kind)
        )
        with self._db.transaction("read history totals", write=False) as conn:
            return {(r.sku, r.kind): int(r.units or 0) for r in conn.execute(query)}

    def history_buckets(
        self, since: datetime, until: datetime, buckets: int, kinds: Iterable[str]
    ) -> tuple[datetime, float, dict[tuple[str, int], tuple[int, int]]]:
        """Events of these kinds from ``since`` (or their first, if later) to ``until`` in
        ``buckets`` equal slices, counted in SQL: (start, slice seconds, {(kind, slice): (events,
        units)}). Slices are at least a second long."""
        hi = t.history
        wanted = sorted(set(kinds))
        window = (hi.c.at >= since, hi.c.at <= until, hi.c.kind.in_(wanted))
        with self._db.transaction("read history buckets", write=False) as conn:
            first = conn.execute(select(func.min(hi.c.at)).where(*window)).scalar()
            start = max(since, _aware(first)) if first is not None else since
            size = max((until - start).total_seconds() / buckets, 1.0)
            offset: Any  # seconds from ``start``, per dialect
            if conn.dialect.name == "sqlite":
                # SQLite keeps naive UTC text (see UtcDateTime); julianday() reads it.
                base = start.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
                # Rounded to the millisecond: julianday's float arithmetic lands 300 s at 299.99999.
                offset = func.round((func.julianday(hi.c.at) - func.julianday(base)) * 86400.0, 3)
            else:
                offset = func.extract("epoch", hi.c.at - bindparam("b_start", start, type_=UtcDateTime))
            index = cast(func.floor(offset / size), Integer).label("slice")
            query = (
                select(hi.c.kind, index, func.count().label("events"), func.sum(hi.c.quantity).label("units"))
                .where(*window)
                .group_by(hi.c.kind, index)
            )
            counts: dict[tuple[str, int], tuple[int, int]] = {}
            for r in conn.execute(query):
                key = (r.kind, min(max(int(r.slice), 0), buckets - 1))
                events, units = counts.get(key, (0, 0))
                counts[key] = (events + int(r.events), units + int(r.units or 0))
        return start, size, counts

    def drift_since(self, since: datetime, sku: str | None = None, limit: int = 10_000) -> list[DriftRow]:
        """Drift recorded since ``since`` (of one SKU), newest first."""
        dr = t.drift
        query = select(
            dr.c.at, dr.c.channel, dr.c.sku, dr.c.expected, dr.c.observed, dr.c.cause, dr.c.correction
        ).where(dr.c.at >= since)
        if sku is not None:
            query = query.where(dr.c.sku == sku)
        query = query.order_by(dr.c.at.desc(), dr.c.id.desc()).limit(limit)
        with self._db.transaction("read drift", write=False) as conn:
            return [DriftRow(**row._asdict()) for row in conn.execute(query)]

    def recent_runs_by_kind(self, per_kind: int = 10) -> list[RunRow]:
        """The newest ``per_kind`` runs of every cycle kind, newest first (a frequent kind such as
        the order poll would otherwise push every reconcile out of a plain "last N")."""
        ru = t.run
        with self._db.transaction("read runs", write=False) as conn:
            kinds = sorted(conn.execute(select(ru.c.kind).distinct()).scalars())
            rows: list[Any] = []
            for kind in kinds:
                query = (
                    select(ru)
                    .where(ru.c.kind == kind)
                    .order_by(ru.c.started_at.desc(), ru.c.id.desc())
                    .limit(per_kind)
                )
                rows.extend(conn.execute(query).all())
        found = [
            RunRow(row.id, row.kind, row.started_at, row.finished_at, json.loads(row.counts), row.error)
            for row in rows
        ]
        return sorted(found, key=lambda r: (r.started_at, r.id), reverse=True)

    def pushes_in_states(self, states: Iterable[str], limit: int = 10_000) -> list[PushRow]:
        """Pushes in these states (``pending``, ``failed``...), oldest first."""
        pu = t.push
        query = (
            select(*(pu.c[name] for name in _PUSH_FIELDS))
            .where(pu.c.state.in_(sorted(set(states))))
            .order_by(pu.c.id)
            .limit(limit)
        )
        with self._db.transaction("read pushes", write=False) as conn:
            return [PushRow(**row._asdict()) for row in conn.execute(query)]

    def lines_of_sku(self, sku: str, limit: int = 200) -> list[LineRow]:
        """The SKU's newest order lines in any state, newest first."""
        ol = t.order_line
        fields = [ol.c[name] for name in ("channel", "order_id", "line_key", "sku", "quantity", "state")]
        query = (
            select(*fields, ol.c.created_at, ol.c.updated_at)
            .where(ol.c.sku == sku)
            .order_by(ol.c.id.desc())
            .limit(limit)
        )
        with self._db.transaction("read order lines", write=False) as conn:
            return [LineRow(**row._asdict()) for row in conn.execute(query)]

    def prune(self, before: datetime) -> dict[str, int]:
        """Delete history, drift and finished runs older than ``before``; the rows deleted per table.
        Runs still in progress are kept whatever their age."""
        hi, dr, ru = t.history, t.drift, t.run
        with self._db.transaction("prune old rows") as conn:
            return {
                "history": conn.execute(delete(hi).where(hi.c.at < before)).rowcount,
                "drift": conn.execute(delete(dr).where(dr.c.at < before)).rowcount,
                "run": conn.execute(
                    delete(ru).where(ru.c.finished_at.is_not(None), ru.c.started_at < before)
                ).rowcount,
            }

    # -- channel tokens (connectors.base.TokenStore) ------------------------------------------
    def load_token(self, name: str) -> StoredToken | None:
        tk = t.token
        with self._db.transaction("read token", write=False) as conn:
            value: str | None = conn.execute(select(tk.c.value).where(tk.c.name == name)).scalar()
        if value is None:
            return None
        value = self._seal.open(value, name)
        try:
            data = json.loads(value)
            return StoredToken(
                access_token=data["access_token"],
                refresh_token=data["refresh_token"],
                access_expires_at=datetime.fromisoformat(data["access_expires_at"]),
                refresh_expires_at=(
                    datetime.fromisoformat(data["refresh_expires_at"])
                    if data.get("refresh_expires_at")
                    else None
                ),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Never echo the row: it holds secrets.
            raise StoreError(f"the saved token {name!r} is unreadable ({type(exc).__name__})") from None

    @property
    def seals_tokens(self) -> bool:
        """Whether tokens are saved encrypted (a key is set)."""
        return self._seal.enabled

    def check_tokens(self) -> int:
        """Open every saved token, so a missing or wrong key stops a start with a clear StoreError
        rather than a refresh hours later; with a key, plain rows (saved before it was set) and
        rows of an older key are sealed under the current one. Returns how many were."""
        tk = t.token
        with self._db.transaction("check tokens") as conn:
            renewed = 0
            for row in conn.execute(select(tk.c.name, tk.c.value)).all():
                value = self._seal.renewed(row.value, row.name)
                if value is not None:
                    conn.execute(update(tk).where(tk.c.name == row.name).values(value=value))
                    renewed += 1
        return renewed

    def save_token(self, name: str, token: StoredToken) -> None:
        value = json.dumps(
            {
                "access_token": token.access_token,
                "refresh_token": token.refresh_token,
                "access_expires_at": token.access_expires_at.isoformat(),
                "refresh_expires_at": token.refresh_expires_at.isoformat()
                if token.refresh_expires_at
                else None,
            }
        )
        value = self._seal.seal(value)
        with self._db.transaction("save token") as conn:
            stmt = insert(conn, t.token).values(name=name, value=value, expires_at=token.access_expires_at)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"], set_={"value": value, "expires_at": token.access_expires_at}
                )
            )

    # -- ERP records (connectors.base.ErpRecordStore) -----------------------------------------
    def load_erp_record(self, erp: str, key: str) -> ErpRecord | None:
        er = t.erp_record
        with self._db.transaction("read ERP record", write=False) as conn:
            row = conn.execute(
                select(er.c.erp_id, er.c.state, er.c.at).where(er.c.erp == erp, er.c.key == key)
            ).first()
        return None if row is None else ErpRecord(key=key, erp_id=row.erp_id, state=row.state, at=row.at)

    def save_erp_record(self, erp: str, record: ErpRecord) -> None:
        values = {"erp_id": record.erp_id, "state": record.state, "at": record.at}
        with self._db.transaction("save ERP record") as conn:
            stmt = insert(conn, t.erp_record).values(erp=erp, key=record.key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["erp", "key"], set_=values))

    # -- webhooks ----------------------------------------------------------------------
    def mark_webhook_seen(self, key: str, now: datetime, ttl: timedelta) -> bool:
        """Record a delivery key; True if it was already seen and not expired (a duplicate)."""
        with self._db.transaction("record webhook delivery") as conn:
            return self._mark_seen(conn, key, now, ttl)

    @staticmethod
    def _mark_seen(conn: Connection, key: str, now: datetime, ttl: timedelta) -> bool:
        ws = t.webhook_seen
        # Pruning here keeps the table at one TTL's worth of deliveries without a cleanup job;
        # the expiry index makes it cost next to nothing when nothing has expired.
        conn.execute(delete(ws).where(ws.c.expires_at <= now))
        stmt = insert(conn, ws).values(key=key, seen_at=now, expires_at=now + ttl)
        fresh = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(ws.c.key)
        return conn.execute(fresh).first() is None

    def is_webhook_seen(self, key: str, now: datetime) -> bool:
        """True if the delivery key was recorded and has not expired (read only)."""
        ws = t.webhook_seen
        with self._db.transaction("read webhook delivery", write=False) as conn:
            found = conn.execute(select(ws.c.key).where(ws.c.key == key, ws.c.expires_at > now)).first()
        return found is not None

    # -- alerts -----------------------------------------------------------------------------
    def alerts(self) -> list[AlertRow]:
        """Every alert still open, or resolved and kept for its cooldown."""
        al = t.metadata.tables["alert"]
        with self._db.transaction("read alerts", write=False) as conn:
            rows = conn.execute(select(al).order_by(al.c.key)).all()
        return [AlertRow(**row._asdict()) for row in rows]

    def save_alerts(self, rows: Sequence[AlertRow], drop: Iterable[str] = ()) -> None:
        """Write alert rows as given (by key) and delete the ``drop`` keys, in one transaction."""
        al = t.metadata.tables["alert"]
        values = [vars(row) for row in rows]
        with self._db.transaction("save alerts") as conn:
            if values:
                stmt = insert(conn, al)
                columns = ("kind", "text", "opened_at", "resolved_at", "unsent", "attempts")
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[al.c.key], set_={c: stmt.excluded[c] for c in columns}
                    ),
                    values,
                )
            for batch in chunks(sorted(set(drop))):
                conn.execute(delete(al).where(al.c.key.in_(batch)))

    def alert_sent(self, key: str, message: str, *, delivered: bool) -> None:
        """The ``message`` owed for ``key`` was delivered (nothing more owed) or failed once more.

        Conditional on that message still being owed: a newer transition keeps its own."""
        al = t.metadata.tables["alert"]
        match = update(al).where(al.c.key == key, al.c.unsent == message)
        stmt = match.values(unsent="") if delivered else match.values(attempts=al.c.attempts + 1)
        with self._db.transaction("record alert delivery") as conn:
            conn.execute(stmt)

    def drift_counts_since(self, since: datetime) -> dict[tuple[str, str], int]:
        """Drift rows per (channel, sku) recorded at or after ``since``."""
        dr = t.drift
        query = select(dr.c.channel, dr.c.sku, func.count()).where(dr.c.at >= since).group_by(dr.c.channel, dr.c.sku)
        with self._db.transaction("count drift", write=False) as conn:
            return {(channel, sku): int(n) for channel, sku, n in conn.execute(query)}

    def sold_around(
        self, moments: Sequence[tuple[str, str, datetime]], slack: timedelta
    ) -> dict[tuple[str, str], int]:
        """Units per (channel, sku) of order lines first recorded within ``slack`` of the moment
        given for that listing, cancelled ones left out (the sales near a listing's baseline; the
        ledger keeps when it learnt of a sale, not the channel's whole-second stamp)."""
        ol = t.order_line
        out: dict[tuple[str, str], int] = {}
        with self._db.transaction("read sales near baselines", write=False) as conn:
            for channel, sku, moment in moments:
                query = select(func.sum(ol.c.quantity)).where(
                    ol.c.channel == channel,
                    ol.c.sku == sku,
                    ol.c.created_at >= moment - slack,
                    ol.c.created_at <= moment + slack,
                    ol.c.state.not_in(("released", "compensate")),
                )
                units = conn.execute(query).scalar()
                if units:
                    out[(channel, sku)] = out.get((channel, sku), 0) + int(units)
        return out

    def sold_since(self, since: datetime) -> dict[tuple[str, str], int]:
        """Units per (channel, sku) of order lines first recorded at or after ``since``, cancelled
        ones left out."""
        ol = t.order_line
        query = (
            select(ol.c.channel, ol.c.sku, func.sum(ol.c.quantity))
            .where(ol.c.created_at >= since, ol.c.state.not_in(("released", "compensate")))
            .group_by(ol.c.channel, ol.c.sku)
        )
        with self._db.transaction("read recent sales", write=False) as conn:
            return {(channel, sku): int(n) for channel, sku, n in conn.execute(query) if n}

    def latest_run(self, kind: str) -> RunRow | None:
        """The most recently started run of ``kind``, finished or not."""
        ru = t.run
        query = select(ru).where(ru.c.kind == kind).order_by(ru.c.started_at.desc(), ru.c.id.desc()).limit(1)
        with self._db.transaction("read latest run", write=False) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return RunRow(row.id, row.kind, row.started_at, row.finished_at, json.loads(row.counts), row.error)

    def counts(self) -> dict[str, int]:
        """Ledger sizes for metrics: skus, listings, lines per state, pending pushes, drift rows."""
        ol, pu = t.order_line, t.push
        with self._db.transaction("count ledger rows", write=False) as conn:
            result = {
                "skus": conn.execute(select(func.count()).select_from(t.sku)).scalar_one(),
                "listings": conn.execute(select(func.count()).select_from(t.listing)).scalar_one(),
            }
            per_state: dict[str, int] = {
                state: n for state, n in conn.execute(select(ol.c.state, func.count()).group_by(ol.c.state))
            }
            result |= {f"lines_{state}": per_state.get(state, 0) for state in sorted(LINE_STATES)}
            pending = select(func.count()).select_from(pu).where(pu.c.state == "pending")
            result["pushes_pending"] = conn.execute(pending).scalar_one()
            result["drift"] = conn.execute(select(func.count()).select_from(t.drift)).scalar_one()
        return {name: int(n) for name, n in result.items()}


_PUSH_FIELDS = (
    "id",
    "channel",
    "sku",
    "target",
    "compare",
    "reason",
    "state",
    "attempts",
    "created_at",
    "last_error",
)


def _select_some(conn: Connection, query: Any, column: Any, values: Iterable[str] | None) -> list[Any]:
    """Run ``query``, restricted to ``column IN values`` when values are given (in batches)."""
    if values is None:
        return list(conn.execute(query))
    rows: list[Any] = []
    for batch in chunks(sorted(set(values))):
        rows.extend(conn.execute(query.where(column.in_(batch))))
    return rows


@dataclass(frozen=True)
class AlertRow:
    key: str
    kind: str
    text: str
    opened_at: datetime
    resolved_at: datetime | None
    unsent: str  # the message still owed: "open" | "resolved" | ""
    attempts: int


def _aware(value: datetime) -> datetime:
    """An aggregate's time: SQLite hands back text or a naive value, both UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
