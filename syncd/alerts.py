"""Alerts: conditions a person must act on, posted to webhooks once when they open and once when
they clear, whatever restarts happen between.

The pure part: ``conditions`` reads a ``Snapshot`` (ledger figures and the connectors' public
health) into active conditions; ``evaluate`` compares them with the alerts on record and returns
the transitions, given ``now``; ``apply`` turns those into the rows to keep. ``hours_of_cover``
is the stock-depth figure the status page shows too. The I/O part: ``take_snapshot`` reads the
ledger, ``Notifier`` posts with retries, ``Alerter.check`` does one round of it all.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from syncd.config import AlertSettings, AlertWebhookSettings
from syncd.store import ListingRow, Store
from syncd.store.faults import QuarantineRow
from syncd.store.store import AlertRow

log = structlog.get_logger("syncd.alerts")

Action = Literal["open", "resolved"]


@dataclass(frozen=True)
class Condition:
    """One thing wrong now. ``key`` names it for good (``stock_depth:tiktok:MUG-1``); ``text`` is the
    sentence a person reads (never a secret)."""

    key: str
    kind: str
    text: str


@dataclass(frozen=True)
class Transition:
    key: str
    kind: str
    text: str
    action: Action
    at: datetime


@dataclass(frozen=True)
class ConnectorView:
    """A connector as ``/api/status`` shows it."""

    name: str
    kind: str  # "erp" | "channel"
    healthy: bool
    needs_human: bool
    last_success: datetime | None
    last_error: str | None

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> ConnectorView:
        last = entry.get("last_success")
        return cls(
            name=str(entry["name"]),
            kind=str(entry["kind"]),
            healthy=bool(entry["healthy"]),
            needs_human=bool(entry["needs_human"]),
            last_success=datetime.fromisoformat(last) if last else None,
            last_error=entry.get("last_error"),
        )


@dataclass(frozen=True)
class Unposted:
    """A sale still waiting for the ERP to take it (an order line in state ``reserved``)."""

    key: str
    sku: str
    quantity: int
    recorded_at: datetime


@dataclass(frozen=True)
class Cover:
    """How long what ``where`` (a channel, or ``erp``) holds of ``sku`` lasts at its sales rate."""

    sku: str
    where: str
    units: int
    per_hour: float
    hours: float


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    started_at: datetime  # the daemon's start: a connector that never answered is down since then
    connectors: tuple[ConnectorView, ...] = ()
    unposted: tuple[Unposted, ...] = ()
    drift: Mapping[tuple[str, str], int] | None = None  # drifts per (channel, sku) in the window
    reconcile: tuple[datetime, datetime | None] | None = None  # the latest reconcile: started, finished
    reconcile_interval: timedelta = timedelta(minutes=5)
    covers: tuple[Cover, ...] = ()
    quarantined: tuple[QuarantineRow, ...] = ()  # open quarantined orders and stock records


# ---------------------------------------------------------------------------- pure part


def hours_of_cover(
    sold: Mapping[tuple[str, str], int],
    shown: Mapping[tuple[str, str], int],
    stock: Mapping[str, int],
    window: timedelta,
    hot_rate: float,
) -> list[Cover]:
    """Hours of cover of every hot SKU, scarcest first: per channel, its shown units over its own
    rate; for the ERP, the units left (on-hand less reservations) over the rate of all channels.

    ``sold`` is units per (channel, sku) over ``window``; a SKU is hot at ``hot_rate`` units an hour.
    """
    hours = window.total_seconds() / 3600
    covers: list[Cover] = []
    total: dict[str, float] = defaultdict(float)
    for (channel, sku), units in sold.items():
        rate = units / hours
        total[sku] += rate
        if rate >= hot_rate and (channel, sku) in shown:
            left = max(0, shown[(channel, sku)])
            covers.append(Cover(sku, channel, left, rate, left / rate))
    for sku, rate in total.items():
        if rate >= hot_rate and sku in stock:
            left = max(0, stock[sku])
            covers.append(Cover(sku, "erp", left, rate, left / rate))
    return sorted(covers, key=lambda c: (c.hours, c.sku, c.where))


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def conditions(snapshot: Snapshot, settings: AlertSettings) -> list[Condition]:
    """Every condition active in ``snapshot``, in a stable order."""
    now = snapshot.now
    found: list[Condition] = []
    for c in snapshot.connectors:
        if c.needs_human:
            found.append(
                Condition(
                    f"needs_human:{c.name}",
                    "needs_human",
                    f"{c.name}: credentials refused, a person must fix them ({c.last_error})",
                )
            )
        elif not c.healthy and c.last_error is not None:
            down_since = c.last_success or snapshot.started_at
            if now - down_since >= settings.channel_down_after:
                found.append(
                    Condition(
                        f"down:{c.name}",
                        "connector_down",
                        f"{c.name} has been failing for {_ago(now - down_since)}: {c.last_error}",
                    )
                )
    erp = next((c for c in snapshot.connectors if c.kind == "erp"), None)
    refused: dict[str, list[Unposted]] = defaultdict(list)
    for sale in snapshot.unposted:
        due = sale.recorded_at + settings.refused_after
        # Still not taken although the ERP has answered since it was due: refused, not just late.
        if erp is not None and erp.healthy and erp.last_success is not None and erp.last_success >= due:
            refused[sale.sku].append(sale)
    for sku, sales in sorted(refused.items()):
        units = sum(s.quantity for s in sales)
        found.append(
            Condition(
                f"sale_refused:{sku}",
                "sale_refused",
                f"The ERP refused {units} sold unit(s) of {sku} ({len(sales)} order line(s), first "
                f"{sales[0].key}): the units were already gone, an oversell to resolve by hand",
            )
        )
    for (channel, sku), n in sorted((snapshot.drift or {}).items()):
        if n >= settings.drift_repeats:
            found.append(
                Condition(
                    f"drift:{channel}:{sku}",
                    "repeated_drift",
                    f"{sku} on {channel} drifted {n} times in {_ago(settings.drift_window)}: something "
                    "else keeps changing this listing",
                )
            )
    if snapshot.reconcile is not None:
        started, finished = snapshot.reconcile
        took = (finished or now) - started
        if took >= snapshot.reconcile_interval:
            state = "has been running" if finished is None else "took"
            found.append(
                Condition(
                    "reconcile_overrun",
                    "reconcile_overrun",
                    f"The reconcile {state} {_ago(took)}, longer than its interval of "
                    f"{_ago(snapshot.reconcile_interval)}",
                )
            )
    for item in snapshot.quarantined:
        what = "order" if item.kind == "order" else "stock record of"
        found.append(
            Condition(
                f"quarantine:{item.key}",
                "quarantined",
                f"{item.connector}: {what} {item.ref or '(unreadable)'} quarantined, not acted on: {item.reason}",
            )
        )
    limit = settings.min_cover.total_seconds() / 3600
    for cover in snapshot.covers:
        if cover.hours < limit:
            where = (
                "in the ERP (on-hand less reservations)"
                if cover.where == "erp"
                else f"shown on {cover.where}"
            )
            outlook = (
                "sold out; restock"
                if cover.units == 0
                else f"about {cover.hours:.1f} h of cover left; restock before it runs out"
            )
            found.append(
                Condition(
                    f"stock_depth:{cover.where}:{cover.sku}",
                    "stock_depth",
                    f"{cover.sku}: {cover.units} unit(s) {where}, selling {cover.per_hour:.1f} an hour: {outlook}",
                )
            )
    return found


def evaluate(
    active: Iterable[Condition], alerts: Mapping[str, AlertRow], now: datetime, cooldown: timedelta
) -> list[Transition]:
    """What changed: an active condition without an open alert opens (unless it cleared less than
    ``cooldown`` ago, or its resolved message is still owed); an open alert whose condition is gone
    resolves. Anything else says nothing: one open, then one resolved, per episode."""
    current = {c.key: c for c in active}
    changes: list[Transition] = []
    for key, condition in sorted(current.items()):
        row = alerts.get(key)
        if row is not None and (
            row.resolved_at is None or row.unsent == "resolved" or now - row.resolved_at < cooldown
        ):
            continue
        changes.append(Transition(key, condition.kind, condition.text, "open", now))
    for key, row in sorted(alerts.items()):
        if row.resolved_at is None and key not in current:
            changes.append(Transition(key, row.kind, row.text, "resolved", now))
    return changes


def apply(
    alerts: Mapping[str, AlertRow], changes: Iterable[Transition], now: datetime, cooldown: timedelta
) -> tuple[list[AlertRow], list[str]]:
    """The rows to write and the keys to drop after ``changes``. A resolved alert is kept for its
    cooldown (so a flapping condition does not reopen at once), then dropped."""
    rows = dict(alerts)
    changed: dict[str, AlertRow] = {}
    for t in changes:
        row = rows.get(t.key)
        if t.action == "open":
            new = AlertRow(t.key, t.kind, t.text, t.at, None, "open", 0)
        elif row is None:
            continue
        elif row.unsent == "open":
            # It cleared before anyone could be told: there is nothing left to act on or resolve.
            new = replace(row, resolved_at=t.at, unsent="", attempts=0)
        else:
            new = replace(row, resolved_at=t.at, unsent="resolved", attempts=0)
        rows[t.key] = changed[t.key] = new
    drop = [
        key
        for key, row in rows.items()
        if row.resolved_at is not None
        and not row.unsent
        and now - row.resolved_at >= cooldown
        and key not in changed
    ]
    return list(changed.values()), sorted(drop)


def payload(row: AlertRow, message: str, style: Literal["slack", "json"]) -> dict[str, Any]:
    """The body posted for one owed message (``open`` or ``resolved``) of an alert."""
    if style == "slack":
        prefix = "[syncd] ALERT" if message == "open" else "[syncd] RESOLVED"
        return {"text": f"{prefix}: {row.text}"}
    return {
        "source": "syncd",
        "status": message,
        "kind": row.kind,
        "key": row.key,
        "text": row.text,
        "opened_at": row.opened_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
    }


def summary_payload(owed: Sequence[tuple[AlertRow, str]], style: Literal["slack", "json"]) -> dict[str, Any]:
    """One body for the messages past the per-check limit, so a storm arrives as one post."""
    if style == "slack":
        lines = [f"[syncd] {len(owed)} more alert change(s):"]
        lines += [f"- {'ALERT' if m == 'open' else 'RESOLVED'}: {row.text}" for row, m in owed]
        return {"text": "\n".join(lines)}
    return {"source": "syncd", "status": "summary", "alerts": [payload(row, m, "json") for row, m in owed]}


def mask_url(url: str) -> str:
    """A webhook URL fit for a log line: scheme and host only (Slack's path is the secret)."""
    match = re.match(r"^(https?://)([^/@]*@)?([^/?#]+)", url)
    return f"{match.group(1)}{match.group(3)}/***" if match else "***"


# ---------------------------------------------------------------------------- I/O part


def _shown(row: ListingRow) -> int | None:
    # The same belief the engine plans from: its last level less the sales seen since.
    if row.last_pushed is None:
        return row.observed
    return max(0, row.last_pushed - row.sold_since_push)


def cover_report(store: Store, settings: AlertSettings, now: datetime) -> list[Cover]:
    """Hours of cover per hot SKU from the ledger, scarcest first (for the status page)."""
    sold = store.sold_since(now - settings.sales_window)
    skus = sorted({sku for _, sku in sold})
    if not skus:
        return []
    shown = {(r.channel, r.sku): v for r in store.listings(skus=skus) if (v := _shown(r)) is not None}
    reserved = store.reserved_by_sku(skus)
    stock = {sku: row.on_hand - reserved.get(sku, 0) for sku, row in store.skus(skus).items()}
    return hours_of_cover(sold, shown, stock, settings.sales_window, settings.hot_rate)


def take_snapshot(
    store: Store,
    connectors: Iterable[Mapping[str, Any]],
    settings: AlertSettings,
    *,
    now: datetime,
    started_at: datetime,
    reconcile_interval: timedelta,
) -> Snapshot:
    """Everything ``conditions`` needs, read from the ledger and ``/api/status``'s connectors list."""
    latest = store.latest_run("reconcile")
    return Snapshot(
        now=now,
        started_at=started_at,
        connectors=tuple(ConnectorView.from_status(c) for c in connectors),
        unposted=tuple(
            Unposted(line.key, line.sku, line.quantity, line.created_at)
            for line in store.lines_in_state("reserved")
        ),
        drift=store.drift_counts_since(now - settings.drift_window),
        reconcile=(latest.started_at, latest.finished_at) if latest is not None else None,
        reconcile_interval=reconcile_interval,
        covers=tuple(cover_report(store, settings, now)),
        quarantined=tuple(store.quarantined(open_only=True)),
    )


class DeliveryError(Exception):
    """A receiver did not take a message; ``transient`` ones are retried."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__(reason)


class Notifier:
    """Posts alert bodies to the configured webhooks, retrying transient failures with backoff.

    URLs never reach a log line or an error: receivers are named by ``mask_url``.
    """

    def __init__(self, settings: AlertSettings, *, backoff: float = 1.0) -> None:
        self.settings = settings
        self.backoff = backoff

    def client(self) -> httpx.AsyncClient:
        # One client per delivery round: nothing stays open between checks a minute apart.
        return httpx.AsyncClient(timeout=self.settings.timeout.total_seconds(), follow_redirects=False)

    async def post(self, client: httpx.AsyncClient, hook: AlertWebhookSettings, body: dict[str, Any]) -> None:
        """Post ``body`` to one receiver; DeliveryError once the retries are spent."""
        receiver = mask_url(hook.url.get_secret_value())

        def retrying(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("alert.retry", receiver=receiver, attempt=state.attempt_number, error=str(error))

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30 * self.backoff)
            + wait_random(0, self.backoff),
            before_sleep=retrying,
            reraise=True,
        ):
            with attempt:
                await self._post_once(client, hook, body)

    @staticmethod
    async def _post_once(client: httpx.AsyncClient, hook: AlertWebhookSettings, body: dict[str, Any]) -> None:
        try:
            response = await client.post(hook.url.get_secret_value(), json=body)
        except httpx.TransportError as exc:
            # The exception's text may quote the URL: only its class goes on.
            raise DeliveryError(type(exc).__name__, transient=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(f"HTTP {response.status_code}", transient=True)
        if response.status_code >= 300:
            raise DeliveryError(f"HTTP {response.status_code}", transient=False)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.transient


def utcnow() -> datetime:
    return datetime.now(UTC)


class Alerter:
    """One alert round per ``check``: snapshot, conditions, transitions saved, owed messages sent.

    ``connectors`` returns ``/api/status``'s connector list (the engine's public health), so the
    alerter needs nothing of the engine's insides.
    """

    def __init__(
        self,
        settings: AlertSettings,
        store: Store,
        connectors: Callable[[], Iterable[Mapping[str, Any]]],
        *,
        reconcile_interval: timedelta,
        started_at: datetime | None = None,
        secrets: Sequence[str] = (),
        clock: Callable[[], datetime] = utcnow,
        backoff: float = 1.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.connectors = connectors
        self.reconcile_interval = reconcile_interval
        self.clock = clock
        self.started_at = started_at or clock()
        self.secrets = [s for s in secrets if s]
        self.notifier = Notifier(settings, backoff=backoff)

    def _clean(self, text: str) -> str:
        # Connector errors should hold no secret already; an alert leaves the building, so make sure.
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    async def check(self) -> list[Transition]:
        """Evaluate once and deliver what is owed; returns the transitions of this round."""
        connectors = list(self.connectors())  # read here: the engine's health lives in this loop
        # The ledger reads and the evaluation run in a worker thread, so a large catalogue never
        # holds up the fast path sharing this event loop.
        changes, owed = await asyncio.to_thread(self._evaluate, connectors)
        for t in changes:
            log.info("alert.opened" if t.action == "open" else "alert.resolved", key=t.key, kind=t.kind)
        if self.settings.webhooks and owed:
            await self.deliver(owed)
        return changes

    def _evaluate(self, connectors: Iterable[Mapping[str, Any]]) -> tuple[list[Transition], list[AlertRow]]:
        now = self.clock()
        snapshot = take_snapshot(
            self.store,
            connectors,
            self.settings,
            now=now,
            started_at=self.started_at,
            reconcile_interval=self.reconcile_interval,
        )
        active = [replace(c, text=self._clean(c.text)) for c in conditions(snapshot, self.settings)]
        alerts = {row.key: row for row in self.store.alerts()}
        changes = evaluate(active, alerts, now, self.settings.cooldown)
        rows, drop = apply(alerts, changes, now, self.settings.cooldown)
        self.store.save_alerts(rows, drop)
        current = alerts | {row.key: row for row in rows}
        return changes, [row for key, row in current.items() if row.unsent and key not in drop]

    async def run(self) -> None:
        """``check`` for the scheduler: a failed round is logged and the next one tries again."""
        try:
            await self.check()
        except Exception:
            log.exception("alert.check_failed")

    async def deliver(self, rows: Iterable[AlertRow]) -> None:
        """Send the messages ``rows`` owe: the first ``max_messages - 1`` one by one, the rest in one post."""
        owed = sorted(
            ((row, row.unsent) for row in rows if row.unsent),
            key=lambda item: (item[0].resolved_at or item[0].opened_at, item[0].key),
        )
        limit = self.settings.max_messages
        single, rest = (owed, []) if len(owed) <= limit else (owed[: limit - 1], owed[limit - 1 :])
        down: set[int] = set()  # receivers that failed this round are not tried again until the next
        async with self.notifier.client() as client:
            for row, message in single:
                bodies = {style: payload(row, message, style) for style in ("slack", "json")}
                delivered = await self._send(client, bodies, down)
                self.store.alert_sent(row.key, message, delivered=delivered)
            if rest:
                bodies = {style: summary_payload(rest, style) for style in ("slack", "json")}
                delivered = await self._send(client, bodies, down)
                for row, message in rest:
                    self.store.alert_sent(row.key, message, delivered=delivered)

    async def _send(
        self, client: httpx.AsyncClient, bodies: Mapping[str, dict[str, Any]], down: set[int]
    ) -> bool:
        """Post to every receiver; delivered once one of them took it (someone has been told)."""
        delivered = False
        for i, hook in enumerate(self.settings.webhooks):
            if i in down:
                continue
            try:
                await self.notifier.post(client, hook, bodies[hook.format])
            except DeliveryError as exc:
                if exc.transient:
                    down.add(i)
                log.warning(
                    "alert.send_failed", receiver=mask_url(hook.url.get_secret_value()), error=str(exc)
                )
            else:
                delivered = True
        return delivered
