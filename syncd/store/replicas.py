"""The ledger's side of replicas: the syncer's lease, the claim each push takes before its write
(so no two replicas ever write the same push) and the hand-off of SKUs a standby took sales for.

A claim is taken just before a write and stays on the row afterwards; a failed attempt that will
be tried again gives it back. A pending push still claimed is therefore one whose write may be on
the wire: after a crash or a takeover it is never sent again but planned afresh (``abandon_claims``).
Unclaimed is NULL, or the empty text the model's default writes on insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, text, update

from syncd.store import models as t
from syncd.store.models import UtcDateTime
from syncd.store.queries import chunks, insert

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from syncd.store.database import Database


class ReplicaTables:
    """Mixed into the Store (which provides ``_db``)."""

    _db: Database
    # Set while this replica is a standby: the SKUs of the lines it records are handed off to the
    # syncer in the same transaction, so a sale taken here is planned even if this process dies.
    standby: bool = False

    # -- the lease --------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, now: datetime | None, ttl: timedelta) -> bool:
        """Take or renew the named lease for ``holder`` until ``now + ttl``; False while another
        holder's is unexpired. ``now=None`` reads the database's clock, so replicas whose clocks
        differ still agree on when a lease expires."""
        le = t.lease
        with self._db.transaction("acquire lease") as conn:
            if conn.dialect.name == "postgresql":
                # A quarter of the lease, in ms: a try never waits long on a row another replica
                # is renewing, and a holder frozen mid-renewal releases the row soon.
                quarter = max(100, int(ttl.total_seconds() * 250))
                conn.execute(text(f"SET LOCAL lock_timeout = {quarter}"))
                conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {quarter}"))
            at = _database_now(conn) if now is None else now
            stmt = insert(conn, le).values(name=name, holder=holder, expires_at=at + ttl)
            upsert = stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
                # Only one statement decides, so two replicas racing cannot both win.
                where=(le.c.holder == holder) | (le.c.expires_at <= at),
            )
            # A row comes back only when the insert or the guarded update happened.
            return conn.execute(upsert.returning(le.c.name)).first() is not None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop): a standby need not wait for it to expire."""
        le = t.lease
        with self._db.transaction("release lease") as conn:
            conn.execute(delete(le).where(le.c.name == name, le.c.holder == holder))

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        """Who holds the named lease and until when (None: nobody ever took it)."""
        le = t.lease
        with self._db.transaction("read lease", write=False) as conn:
            row = conn.execute(select(le.c.holder, le.c.expires_at).where(le.c.name == name)).first()
        return None if row is None else (row.holder, row.expires_at)

    # -- outbox claims ----------------------------------------------------------------------
    def claim_pushes(self, ids: Iterable[int], holder: str, now: datetime) -> set[int]:
        """Claim these pending pushes for ``holder``'s write; returns the ids it got. A push
        claimed by another holder, sent, or locked by a concurrent claim is not returned."""
        pu = t.push
        wanted = sorted(set(ids))
        got: set[int] = set()
        with self._db.transaction("claim pushes") as conn:
            for batch in chunks(wanted):
                free = (
                    select(pu.c.id)
                    .where(
                        pu.c.id.in_(batch),
                        pu.c.state == "pending",
                        pu.c.claimed_by.is_(None) | pu.c.claimed_by.in_(("", holder)),
                    )
                    # PostgreSQL: rows another replica is claiming right now are skipped, not
                    # waited for (SQLite ignores this and serialises writers instead).
                    .with_for_update(skip_locked=True)
                )
                mine = sorted(conn.execute(free).scalars())
                if mine:
                    conn.execute(
                        update(pu).where(pu.c.id.in_(mine)).values(claimed_by=holder, claimed_at=now)
                    )
                got.update(mine)
        return got

    def abandon_claims(self, now: datetime) -> set[tuple[str, str]]:
        """Withdraw every pending push still claimed: its write may have gone out from a replica
        (or an earlier run of this one) that stopped before the answer. Returns the (channel, SKU)
        of each, to be planned again. Called by a replica taking the lease, before it sends."""
        pu = t.push
        with self._db.transaction("abandon claimed pushes") as conn:
            rows = conn.execute(
                update(pu)
                .where(pu.c.state == "pending", pu.c.claimed_by.is_not(None), pu.c.claimed_by != "")
                .values(state="superseded", updated_at=now, last_error="its replica stopped mid-write")
                .returning(pu.c.channel, pu.c.sku)
            ).all()
        return {(row.channel, row.sku) for row in rows}

    @staticmethod
    def _unclaim(conn: Connection, ids: Sequence[int]) -> None:
        pu = t.push
        for batch in chunks(sorted(set(ids))):
            conn.execute(update(pu).where(pu.c.id.in_(batch)).values(claimed_by=None, claimed_at=None))

    # -- hand-off from standbys -------------------------------------------------------------
    def hand_off(self, skus: Iterable[str], now: datetime) -> None:
        """Ask the syncer to plan and push these SKUs (a standby's sales, its ERP webhooks)."""
        with self._db.transaction("hand SKUs off") as conn:
            self._hand_off(conn, skus, now)

    @staticmethod
    def _hand_off(conn: Connection, skus: Iterable[str], now: datetime) -> None:
        rows = [{"sku": sku, "at": now} for sku in sorted(set(skus))]
        if rows:
            conn.execute(insert(conn, t.handoff), rows)

    def take_handoffs(self) -> set[str]:
        """The SKUs handed off since the last call, removed from the ledger (the syncer's job)."""
        ho = t.handoff
        with self._db.transaction("take handed-off SKUs") as conn:
            return set(conn.execute(delete(ho).returning(ho.c.sku)).scalars())


def _database_now(conn: Connection) -> datetime:
    value: datetime | None = conn.execute(select(func.now(type_=UtcDateTime))).scalar_one()
    assert value is not None  # now() is never NULL
    return value
