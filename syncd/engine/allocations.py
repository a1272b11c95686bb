"""The engine's side of the allocation accounts: it feeds them every read, poll and write, and
asks them, as each write is sent, how much it may set (``syncd/allocation.py`` decides)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from syncd.accounts import Accounts, ComponentStock, KitShare, SendRequest
from syncd.allocation import Grant, ReadOutcome
from syncd.config import Config
from syncd.core import available_to_sell
from syncd.engine.demand import Demand
from syncd.engine.kits import KitListings
from syncd.store import Store

log = structlog.get_logger("syncd.engine")


@dataclass(frozen=True)
class Intended:
    """A write the sender means to make: ``quantity`` as planned (after the read), ``compare`` the
    compare-and-set value (None: absolute), ``racing`` the units of the race allowance it holds."""

    push_id: int
    sku: str
    quantity: int
    compare: int | None
    racing: int = 0
    shown: int | None = None  # what the read just before showed (a write to that is skipped)


class Allocations:
    def __init__(
        self,
        config: Config,
        store: Store,
        demand: Demand,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.accounts = Accounts(store, self.kits_of)
        self.demand = demand
        self.clock = clock
        # SKUs whose increase was granted less than planned: units were still exposed elsewhere
        # (a decrease not yet confirmed). They are planned again once a write of theirs is answered.
        self.short: set[str] = set()
        self.kits: KitListings | None = None  # wired by the Engine when the mapping has kits
        # Wired by the Engine: told what each read before a write showed of its listings, and what
        # the writes will set (the drift they show, and its correction).
        self.read_judged: Callable[[str, Mapping[str, ReadOutcome], Mapping[str, int]], None] | None = None

    def kits_of(self, sku: str) -> list[KitShare]:
        return [] if self.kits is None else self.kits.kits_of(sku)

    def restarted(self) -> None:
        """Writes that were on the wire when the daemon stopped get no answer: they stay exposed
        until a read shows the listing (called once at start)."""
        lost = self.accounts.restarted()
        if lost:
            log.warning("allocation.writes_lost_on_restart", writes=lost)

    def read(
        self, channel: str, shown: Mapping[str, int], read_from: datetime, read_to: datetime
    ) -> dict[str, ReadOutcome]:
        """Every read of listings goes through here: the accounts confirm levels and hold missing
        units; returns what each read told (the range it is judged against, for drift)."""
        if not shown:
            return {}
        outcomes = self.accounts.read(channel, shown, read_from, read_to)
        missing = {sku: o.missing for sku, o in outcomes.items() if o.missing}
        if missing:
            log.debug("allocation.missing", channel=channel, units=missing)
        return outcomes

    def polled(self, channel: str, started: datetime, since: datetime) -> None:
        self.accounts.polled(channel, started, since)

    def grant(
        self,
        channel: str,
        intended: Sequence[Intended],
        sent_at: datetime,
        read: tuple[Mapping[str, int], datetime, datetime] | None = None,
    ) -> dict[str, Grant]:
        """Record each write as sent (before it goes out) and return what it may set, in one
        transaction with the read the writes are based on. A write whose grant equals what the
        channel was just read to show is not recorded (it is not sent)."""
        kits = {i.sku: self.kits.components(channel, i.sku) if self.kits else None for i in intended}
        skus = sorted({i.sku for i in intended} | {c.sku for parts in kits.values() for c in parts or ()})
        stock = self.store.skus(skus)
        reserved = self.store.reserved_by_sku(skus)
        now = self.clock()
        latency = self.demand.latency()
        requests: list[SendRequest] = []
        kept: dict[str, Grant] = {}

        def figures(sku: str) -> tuple[int, int, int]:
            row = stock[sku]
            ats = available_to_sell(row.on_hand, reserved.get(sku, 0), self.config.stock.safety_for(sku))
            return ats, self.demand.threshold(sku, now, latency), self.demand.in_flight(sku, now)

        for write in intended:
            components = kits[write.sku]
            if components is not None and all(c.sku in stock for c in components):
                # A kit: each component's account decides how many kits its units allow.
                parts = tuple(ComponentStock(c.sku, c.quantity, *figures(c.sku)) for c in components)
                requests.append(
                    SendRequest(
                        write.push_id, write.sku, write.quantity, write.compare, 0, 0,
                        racing=write.racing, skip_if=write.shown, components=parts,
                    )
                )
                continue
            if write.sku not in stock:
                # Never planned (the planner leaves SKUs the ERP does not know alone): keep it.
                kept[write.sku] = Grant(write.quantity, 0, "SKU unknown to the ERP")
                continue
            requests.append(
                SendRequest(
                    write.push_id,
                    write.sku,
                    write.quantity,
                    write.compare,
                    *figures(write.sku),
                    racing=write.racing,
                    skip_if=write.shown,
                )
            )
        racing_since = read[1] if read is not None else sent_at
        told: dict[str, ReadOutcome] = {}
        grants = self.accounts.send_many(
            channel, requests, sent_at, racing_since=racing_since, read=read, read_outcomes=told
        )
        if told and self.read_judged is not None:
            try:
                self.read_judged(channel, told, {sku: g.quantity for sku, g in grants.items()})
            except Exception as exc:  # drift reporting never holds up a write
                log.error("drift.report_failed", channel=channel, error=f"{type(exc).__name__}: {exc}")
        self.short |= {r.sku for r in requests if grants[r.sku].quantity < r.target}
        return {**kept, **grants}

    def freed(self, skus: Iterable[str]) -> set[str]:
        """Of SKUs whose writes were just answered, those an earlier grant left short: to plan again
        (the answer may have freed the units the grant lacked)."""
        again = self.short & set(skus)
        self.short -= again
        return again

    def answered(
        self,
        channel: str,
        push_ids: Mapping[str, int],
        *,
        applied: Mapping[str, int],
        undone: Sequence[str],
        at: datetime,
        sent_at: datetime,
    ) -> None:
        """The channel answered a batch: applied writes are confirmed, stale or refused ones undone,
        the ones it said nothing of lost (they may have landed)."""
        done = {*applied, *undone}
        self.accounts.answered(
            channel,
            at,
            applied={push_ids[s]: (s, q) for s, q in applied.items() if s in push_ids},
            undone={push_ids[s]: s for s in undone if s in push_ids},
            lost={p: (s, sent_at) for s, p in push_ids.items() if s not in done},
        )

    def lost(self, channel: str, push_ids: Mapping[str, int], sent_at: datetime) -> None:
        """No answer (a time-out, a connection lost): the writes may have landed."""
        self.accounts.answered(channel, sent_at, lost={p: (s, sent_at) for s, p in push_ids.items()})
