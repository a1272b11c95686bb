"""Planning: the target of every listing and the pushes that reach it, from stock, reservations,
what syncd believes each channel shows, the pushes already queued and the active events.

``Planner.plan`` is the one place quantities are decided; it does no I/O (the events it reads were
loaded from the ledger beforehand) and returns the plan for the engine to queue.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from syncd.config import Config, EventSettings
from syncd.core import (
    ChannelPolicy,
    PlannedPush,
    SkuStock,
    available_to_sell,
    is_low_stock,
    keep_split,
    plan_pushes,
    policy_target,
    targets_with_reserve,
)
from syncd.engine.demand import Demand
from syncd.engine.kits import KitListings
from syncd.engine.reports import Key
from syncd.store import Store
from syncd.unseen import UnseenSales

log = structlog.get_logger("syncd.engine")

EVENTS_KEY = "api-events"


@dataclass(frozen=True)
class LowStock:
    sku: str
    ats: int
    threshold: int
    targets: dict[str, int]


@dataclass
class Plan:
    """The pushes of one plan, the SKUs it found in low-stock mode, the listings whose SKU the
    ERP does not know, and the low-stock SKUs whose free units it held back as likely sold."""

    pushes: list[PlannedPush]
    low_stock: list[LowStock] = field(default_factory=list)
    unmapped: list[Key] = field(default_factory=list)
    withheld: set[str] = field(default_factory=set)


class Planner:
    def __init__(
        self,
        config: Config,
        store: Store,
        channels: Mapping[str, bool],
        demand: Demand,
        unseen: UnseenSales,
        unavailable: Callable[[], frozenset[str]],
        clock: Callable[[], datetime],
    ) -> None:
        """``channels`` maps each channel to whether it supports compare-and-set."""
        self.config = config
        self.store = store
        self.exact = frozenset(name for name, cas in channels.items() if cas)
        self.demand = demand
        self.unseen = unseen
        self.unavailable = unavailable
        self.clock = clock
        self.policies = {
            c.name: ChannelPolicy(
                channel=c.name,
                share=c.policy.share,
                buffer=c.policy.buffer,
                cap=c.policy.cap,
                priority=c.policy.priority,
                weight=c.policy.weight,
            )
            for c in config.channels
            if c.name in channels
        }
        self.events = self._load_events()
        self.kits: KitListings | None = None  # wired by the Engine when the mapping has kits
        # Wired by the Engine: whether the ERP is in outage mode (outage.py).
        self.outage: Callable[[], bool] = lambda: False

    def plan(
        self,
        on_hand: Mapping[str, int],
        reserved: Mapping[str, int],
        believed: Mapping[Key, int | None],
        reason: str,
        pending: Mapping[Key, int] | None = None,
    ) -> Plan:
        """Targets for every listed (channel, sku) and the pushes that reach them.

        ``pending`` holds targets already queued: a listing about to be set to its target needs no
        new push, and one about to be set to something else needs one that supersedes it.
        """
        stock = self.config.stock
        pending = pending or {}
        unavailable = self.unavailable()
        now = self.clock()
        policies, reserve = self._policies_at(now)
        exact = self.exact
        # A kit listing is planned as a listing of each of its components (engine/kits.py).
        kits = self.kits.split(believed, pending) if self.kits else None
        listed, queued = (believed, pending) if kits is None else (kits.believed, kits.pending)
        if kits is not None:
            policies, exact = kits.policies(policies), kits.channels(exact)
            unavailable = kits.channels(unavailable)
        by_sku: dict[str, list[str]] = defaultdict(list)
        for channel, sku in listed:
            if channel in policies:
                by_sku[sku].append(channel)
        latency = self.demand.latency()
        targets: dict[Key, int] = {}
        result = Plan([])
        for sku, channels in by_sku.items():
            if sku not in on_hand:
                result.unmapped.extend((c, sku) for c in channels)
                continue
            threshold = self.demand.threshold(sku, now, latency)
            in_flight = self.demand.in_flight(sku, now)
            state = SkuStock(
                sku, on_hand[sku], reserved.get(sku, 0) + in_flight, stock.safety_for(sku), threshold
            )
            sku_policies = [policies[c] for c in sorted(channels)]
            if stock.split_by == "demand":
                # Parts in proportion to where the SKU sells, so that they run out together.
                sold = self.demand.sold_by_channel(sku, now)
                sku_policies = [replace(p, weight=p.weight * (1 + max(0, sold.get(p.channel, 0)))) for p in sku_policies]
            if not is_low_stock(state):
                per_channel = targets_with_reserve(state, sku_policies, reserve, unavailable)
            else:
                # The split itself is of the reported ats (still a split even if that is above the
                # threshold): units likely sold but not yet reported only keep free units from
                # being handed out (they never take units back, which would make channels flap as
                # the estimate moves).
                ats = available_to_sell(state.on_hand, reserved.get(sku, 0), state.safety_stock)
                split = replace(state, reserved=reserved.get(sku, 0), low_stock_threshold=max(threshold, ats))
                fresh = targets_with_reserve(split, sku_policies, reserve, unavailable)
                # Units sold as far as syncd's reads show, not reported yet: sales on their way, or
                # lost webhooks the next order poll will find.
                unreported = max(in_flight, self.unseen.held(sku))
                if unreported:
                    result.withheld.add(sku)
                # What each channel shows, or will once its queued decrease lands; a channel that is
                # down keeps showing what it showed (its queued push has not landed). A queued
                # increase is not the channel's yet: it was planned from free units that may have
                # gone since (sales reported meanwhile), so it is decided again here.
                shown = {c: shown_in_split(c, sku, listed, queued, unavailable) for c in channels}
                limits = {c: policy_target(ats, policies[c]) for c in channels}
                # A queued decrease has not landed: until it does, the channel may sell what it shows.
                lagging = {
                    c: shown_now
                    for c in channels
                    if (c, sku) in queued
                    and (shown_now := listed[(c, sku)]) is not None
                    and queued[(c, sku)] < shown_now
                }
                per_channel = keep_split(
                    ats,
                    fresh,
                    shown,
                    limits,
                    unavailable=unavailable,
                    exact=exact,
                    lagging=lagging,
                    unreported=unreported,
                )
                result.low_stock.append(LowStock(sku, ats, threshold, per_channel))
                self.demand.split_at(sku, ats, now)
                log.debug(
                    "plan.low_stock",
                    sku=sku,
                    ats=ats,
                    threshold=threshold,
                    in_flight=in_flight,
                    unreported=unreported,
                    shown=shown,
                    fresh=fresh,
                    lagging=lagging,
                    targets=per_channel,
                )
            for channel, target in per_channel.items():
                targets[(channel, sku)] = target
        if kits is not None:
            targets = kits.targets(targets, policies, result.unmapped)
        if self.outage():
            targets = outage_targets(targets, believed, {s.sku for s in result.low_stock})
        effective = {k: pending.get(k, believed[k]) for k in targets}
        result.pushes = [
            replace(p, compare=believed[(p.channel, p.sku)]) if (p.channel, p.sku) in pending else p
            for p in plan_pushes(targets, effective, reason)
        ]
        return result

    # ------------------------------------------------------------------ events
    def _policies_at(self, now: datetime) -> tuple[dict[str, ChannelPolicy], dict[str, int]]:
        """Channel policies with the active events applied, and the units events ring-fence."""
        policies = dict(self.policies)
        reserve: dict[str, int] = {}
        for event in self.active_events(now):
            if event.channel not in policies:
                continue
            policy = policies[event.channel]
            policies[event.channel] = replace(
                policy,
                share=policy.share if event.share is None else event.share,
                priority=policy.priority if event.priority is None else event.priority,
            )
            if event.reserve:
                reserve[event.channel] = reserve.get(event.channel, 0) + event.reserve
        return policies, reserve

    def active_events(self, now: datetime) -> list[EventSettings]:
        return [e for e in self.events if e.active(now)]

    def _load_events(self) -> list[EventSettings]:
        """Events from the config plus those added over the API (kept in the ledger)."""
        saved = self.store.get_cursor(EVENTS_KEY)
        extra: list[EventSettings] = []
        if saved:
            try:
                extra = [EventSettings.model_validate(e) for e in json.loads(saved)]
            except (ValueError, TypeError) as exc:
                log.error("events.unreadable", error=str(exc))
        names = {e.name for e in extra}
        return [e for e in self.config.events if e.name not in names] + extra

    def save_event(self, event: EventSettings) -> None:
        """Add or replace an API event (by name), drop expired ones, persist."""
        now = self.clock()
        self.events = [e for e in self.events if e.name != event.name and e.end > now] + [event]
        self._persist_events()
        log.info(
            "event.saved",
            name=event.name,
            channel=event.channel,
            start=event.start.isoformat(),
            end=event.end.isoformat(),
        )

    def delete_event(self, name: str) -> bool:
        before = len(self.events)
        self.events = [e for e in self.events if e.name != name]
        self._persist_events()
        return len(self.events) < before

    def _persist_events(self) -> None:
        config_names = {e.name for e in self.config.events}
        api_events = [e.model_dump(mode="json") for e in self.events if e.name not in config_names]
        self.store.set_cursor(EVENTS_KEY, json.dumps(api_events))


def shown_in_split(
    channel: str,
    sku: str,
    believed: Mapping[Key, int | None],
    pending: Mapping[Key, int],
    unavailable: frozenset[str],
) -> int | None:
    """What a listing counts as showing in the low-stock split: what syncd believes it shows,
    or a queued decrease (it will show that once the push lands). A channel that is down
    keeps what it shows; a queued increase is not given yet."""
    now = believed[(channel, sku)]
    queued = pending.get((channel, sku))
    if channel in unavailable or queued is None:
        return now
    return queued if now is None else min(now, queued)


def outage_targets(
    targets: Mapping[Key, int], believed: Mapping[Key, int | None], low_stock: set[str]
) -> dict[Key, int]:
    """ERP outage mode: low-stock SKUs at 0 everywhere, and nothing raised above what a listing
    shows as far as syncd knows (a listing it knows nothing of is left alone)."""
    out: dict[Key, int] = {}
    for key, target in targets.items():
        shown = believed.get(key)
        if key[1] in low_stock:
            out[key] = 0
        elif shown is not None:
            out[key] = min(target, shown)
    return out
