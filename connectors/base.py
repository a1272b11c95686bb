"""The two contracts every connector implements: the ERP (source of truth) and a sales channel.

The engine depends only on these classes. Implementations live in one package per system and
carry no repeated docstrings: the contract is written here, once.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# ---------------------------------------------------------------------------- values


@dataclass(frozen=True)
class StockRecord:
    """On-hand units of one SKU as the ERP reports them (summed over the warehouses read)."""

    sku: str
    on_hand: int


@dataclass(frozen=True)
class Quarantined:
    """Something read from outside that syncd refused to act on, kept for a person to look at.

    A page (OrderPage, StockPage) leaves such an item out of its lines or records and lists it
    here instead, so that one malformed or implausible item never stalls the rest: the page's
    cursor still moves past it. ``kind`` is ``order`` or ``stock``; ``ref`` is the order id or SKU
    when it could be read (else None); ``reason`` names the field, the value and the bound;
    ``excerpt`` is a short excerpt of the raw item with credentials and buyer details left out.
    """

    connector: str
    kind: Literal["order", "stock"]
    ref: str | None
    reason: str
    excerpt: str


@dataclass(frozen=True)
class StockPage:
    """A batch of stock records and the cursor to pass next time to get only later changes.

    ``quarantined``: records left out (see Quarantined); their SKUs keep their last on-hand.
    """

    records: list[StockRecord]
    cursor: str | None
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass(frozen=True)
class Movement:
    """A stock movement to record in the ERP. ``key`` makes it idempotent (``channel:order:line``).

    ``delta`` is negative for a sale and positive for a compensation (a cancelled settled sale).
    """

    key: str
    sku: str
    delta: int
    reason: str
    reference: str = ""


@dataclass(frozen=True)
class Listing:
    """One SKU as a channel lists it.

    ``ref`` is the channel's own address of the stock-bearing item (opaque to the engine, stable),
    ``quantity`` what the channel shows now (None when it does not track stock for it).
    """

    sku: str
    ref: str
    quantity: int | None
    managed: bool = True


@dataclass(frozen=True)
class QuantityUpdate:
    """Set ``sku`` (at ``ref``) to ``quantity``.

    ``compare`` is the quantity syncd expects the channel to show now; connectors whose API has
    compare-and-set use it and report a mismatch as stale. ``key`` is stable across retries of the
    same push, for APIs with idempotency keys.
    """

    sku: str
    ref: str
    quantity: int
    compare: int | None = None
    key: str = ""


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of a batch of quantity updates, per SKU.

    ``applied`` maps each SKU the channel accepted to the quantity it now shows; ``rejected`` maps
    refused SKUs to the channel's reason; ``stale`` lists SKUs whose compare value did not match;
    ``read_back`` holds applied SKUs read again right after the write, with what the channel showed
    then (sales that landed since the write already taken off).
    """

    applied: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    read_back: dict[str, int] = field(default_factory=dict)


OrderLineStatus = Literal["open", "cancelled"]


@dataclass(frozen=True)
class OrderLine:
    """One line of a channel order, reduced to what stock needs.

    ``(channel, order_id, line_key)`` identifies the line for good, whichever way it arrives
    (webhook, poll, retry). ``status`` is ``cancelled`` for cancelled, refunded or failed orders.
    """

    channel: str
    order_id: str
    line_key: str
    sku: str
    quantity: int
    status: OrderLineStatus
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.order_id}:{self.line_key}"


@dataclass(frozen=True)
class OrderPage:
    """Order lines changed in a window, and the latest change time seen (the next cursor).

    ``quarantined``: orders that could not be understood (see Quarantined); none of their lines
    is in ``lines``, and ``latest`` counts their change time when it could be read.
    """

    lines: list[OrderLine]
    latest: datetime | None
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook delivery.

    ``dedupe_key`` identifies the delivery for deduplication (None when the channel gives none);
    ``ping`` is true for a subscription check that carries no data. ``quarantined``: an order of
    the delivery that cannot be understood or whose quantities are out of bounds (see
    Quarantined); none of its lines is in ``lines``.
    """

    dedupe_key: str | None
    lines: list[OrderLine]
    ping: bool = False
    topic: str = ""
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass(frozen=True)
class ErpWebhookEvent:
    """A verified ERP webhook delivery: a hint of which SKUs to read again, never a quantity.

    ``skus`` are the SKUs it names; ``refs`` the ERP's own product ids it names that the connector
    cannot turn into SKUs yet (``event_stock`` resolves them). ``dedupe_key`` identifies the
    delivery (None when the ERP gives none); ``stale`` is true for a delivery older than one the
    connector has already taken for the same products (out of order: it names nothing to read).
    """

    dedupe_key: str | None
    skus: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    topic: str = ""
    at: datetime | None = None
    stale: bool = False
    duplicate: bool = False


# ---------------------------------------------------------------------------- contracts


CircuitStateName = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class CircuitState:
    """A connector's circuit breaker as the status page shows it.

    ``closed``: calls go out. ``open``: after ``failures`` transient failures in a row, calls are
    refused at once (CircuitOpenError) until ``next_trial_at``. ``half_open``: one trial call is
    out; its success closes the circuit, its failure opens it again for longer. Times are
    wall-clock datetimes (None when not open).
    """

    state: CircuitStateName
    failures: int
    opened_at: datetime | None
    next_trial_at: datetime | None


class Connector(abc.ABC):
    """What every connector has: a name from the config, and resources to release."""

    name: str

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release network resources. Safe to call twice."""

    @property
    def circuit(self) -> CircuitState | None:
        """The circuit breaker in front of this connector's API; None for connectors without one."""
        return None

    def api_budget(self) -> Mapping[str, object] | None:
        """The connector's share of an API budget counted per day (requests used, allowed, when the
        count resets), for the status page; None where the API has none."""
        return None


class ErpConnector(Connector):
    """The seller's ERP: the single source of truth for on-hand stock.

    Every method may raise TransientError (retry later), AuthError (needs a human) or
    ProtocolError (malformed answer); nothing is half-applied on the caller's side when they do.

    Deposits (warehouses): which of the ERP's deposits count toward on-hand is the connector's
    configuration; ``StockRecord.on_hand`` is the sum over those deposits, and a SKU absent from
    all of them reads as 0.
    """

    # True: the constructor takes ``tokens: TokenStore`` to keep the tokens it refreshes.
    uses_tokens: bool = False
    # True: the constructor takes ``records: ErpRecordStore`` to keep what it posted (exactly once
    # without idempotency keys, see record_movements).
    uses_records: bool = False

    @abc.abstractmethod
    async def read_stock(self) -> list[StockRecord]:
        """Read the on-hand stock of every SKU the ERP knows."""

    @abc.abstractmethod
    async def stock_changes(self, cursor: str | None) -> StockPage:
        """Read stock records changed since ``cursor`` (all records when None)."""

    @abc.abstractmethod
    async def record_movements(self, movements: Sequence[Movement]) -> list[str]:
        """Record stock movements; return the keys the ERP has acknowledged.

        Exactly once by ``Movement.key``: a key already recorded is acknowledged again and not
        applied twice. A movement the ERP refuses (unknown SKU, not enough stock) is logged and left
        out of the result, so the others in the batch still count; the caller retries it later.

        An ERP without idempotency keys (Bling, Tiny) gets the same guarantee from the connector
        (``uses_records``): it looks the movement up in the ERP before creating it (by the channel's
        order number it carries), keeps an ErpRecord of what it posted and the ERP's id (state
        ``sending`` before the call, ``posted`` once confirmed), and after a time-out or a crash
        (a record left ``sending``) looks in the ERP again before posting a second time.
        A positive ``delta`` whose key names a posted record reverses it (state ``reversed``).
        """

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ErpWebhookEvent:
        """Verify an ERP webhook request on the raw body and say what it names (``POST
        /webhooks/erp``). Raises SignatureError when the signature is missing or wrong,
        PayloadError when the body cannot be understood. ERPs without webhooks do not override it."""
        raise NotImplementedError(f"{type(self).__name__} takes no webhooks")

    async def read_skus(self, skus: Sequence[str]) -> list[StockRecord]:
        """Read the on-hand of the given SKUs only (a webhook named them); SKUs the ERP does not
        know are left out. The default reads everything and keeps those."""
        wanted = set(skus)
        return [record for record in await self.read_stock() if record.sku in wanted]

    async def event_stock(self, events: Sequence[ErpWebhookEvent]) -> list[StockRecord]:
        """Read the on-hand of what verified webhook events name (SKUs and ERP refs), in as few
        calls as the API allows. Only for ERPs with webhooks (see ``parse_webhook``)."""
        return await self.read_skus([sku for event in events for sku in event.skus])

    async def imported_orders(self, order_refs: Sequence[str]) -> set[str]:
        """Of ``order_refs`` (``channel:order``), those the ERP has imported by itself.

        Only for ERPs that import channel orders on their own; the default says none.
        """
        return set()


class ChannelConnector(Connector):
    """A sales channel that shows a quantity per SKU and sells against it on its own.

    Errors as for ErpConnector; per-SKU refusals are reported in UpdateResult, not raised.
    ``urgent=True`` on a call asks for its requests to go first at the channel's rate limits (a
    push for a SKU about to sell out, the reads it depends on); calls made while one is urgent
    stay urgent.
    """

    supports_compare_and_set: bool = False
    max_batch: int = 100
    # Updates sent before the sender looks at the outbox again, so that an urgent push queued
    # meanwhile (a hot SKU selling out) goes ahead of the rest; None: a whole batch. Channels that
    # take one call per item keep it near what they allow per second.
    push_slice: int | None = None
    # True for channels that take one write call per item (TikTok Shop: per product), sent side by
    # side. The read before a slice's writes takes the rate limiter's tokens for the writes too, so
    # they all follow it at once: a sale landing between the read and a write (overwritten without
    # compare-and-set) has the shortest window possible.
    writes_per_item: bool = False
    # For channels whose webhooks only name orders: fetch the named orders at most this often
    # (seconds), unless ``event_fetch_batch`` of them are waiting, so that fetches made in a burst
    # are full batches and leave the rate limit to the pushes.
    event_fetch_interval: float = 0.0
    event_fetch_batch: int = 50
    uses_tokens: bool = False  # True: the constructor takes ``tokens: TokenStore`` to keep refreshed tokens

    @abc.abstractmethod
    async def list_listings(self) -> list[Listing]:
        """Every stock-bearing item with a SKU, with the quantity it shows now."""

    def paired(self, calls: int) -> AbstractContextManager[None]:
        """Within this block the next ``calls`` requests to the channel take their rate-limit
        turns together, so a read and the writes it decides go out back to back (the sales that
        land between them are the ones a write without compare-and-set forgets). The default,
        for a channel without a rate limiter, does nothing."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    async def read_quantities(self, listings: Sequence[Listing], *, urgent: bool = False) -> dict[str, int]:
        """Read back the shown quantity of the given listings, keyed by SKU."""

    @abc.abstractmethod
    async def set_quantities(self, updates: Sequence[QuantityUpdate], *, urgent: bool = False) -> UpdateResult:
        """Set shown quantities, batching as the API allows (any number of updates)."""

    @abc.abstractmethod
    async def orders_since(self, since: datetime, *, urgent: bool = False) -> OrderPage:
        """Order lines of every order created or changed at or after ``since`` (all pages)."""

    @abc.abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify a webhook request's signature on the raw body and parse its order lines.

        Raises SignatureError when the signature is missing or wrong, PayloadError when the
        body cannot be understood. Header names are matched case-insensitively.
        """

    @property
    def webhooks_carry_lines(self) -> bool:
        """False for channels whose webhooks name an order without its lines (see event_lines)."""
        return True

    @property
    def event_fetch_retry_waits(self) -> tuple[float, ...]:
        """For channels whose webhooks name orders: the waits (seconds) before each new try of a
        fetch by ``event_lines`` that failed; once they are spent the events are left to the
        order poll. Empty by default: one try."""
        return ()

    async def event_lines(self, events: Sequence[WebhookEvent], *, urgent: bool = False) -> list[OrderLine]:
        """The order lines of verified webhook events, fetching (in as few calls as the API
        allows) those the events only name."""
        return [line for event in events for line in event.lines]


@dataclass(frozen=True)
class StoredToken:
    """An access token a connector obtained (and may refresh) at run time."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None


class TokenStore(abc.ABC):
    """Where connectors keep tokens they refresh themselves, so a restart does not lose them.

    The daemon passes its ledger-backed implementation; tests may pass an in-memory one.
    """

    @abc.abstractmethod
    def load_token(self, name: str) -> StoredToken | None:
        """The token saved under ``name``, or None."""

    @abc.abstractmethod
    def save_token(self, name: str, token: StoredToken) -> None:
        """Save (replace) the token under ``name``."""


class MemoryTokenStore(TokenStore):
    def __init__(self) -> None:
        self._tokens: dict[str, StoredToken] = {}

    def load_token(self, name: str) -> StoredToken | None:
        return self._tokens.get(name)

    def save_token(self, name: str, token: StoredToken) -> None:
        self._tokens[name] = token


ErpRecordState = Literal["sending", "posted", "reversed", "failed"]


@dataclass(frozen=True)
class ErpRecord:
    """What a connector posted to an ERP for one movement key.

    ``state``: ``sending`` = posted but not confirmed (a time-out or crash left it so: look in the
    ERP before posting again), ``posted`` = confirmed with the ERP's id ``erp_id``, ``reversed`` =
    undone (a cancellation), ``failed`` = refused or never received (nothing to look for: post
    again). ``at`` is when the state was set.
    """

    key: str
    erp_id: str | None
    state: str
    at: datetime


class ErpRecordStore(abc.ABC):
    """Where ERP connectors keep their records of posted movements, so a restart does not post twice.

    The daemon passes its ledger; tests may pass MemoryErpRecordStore. ``erp`` is the connector's
    name: several ERPs never share keys.
    """

    @abc.abstractmethod
    def load_erp_record(self, erp: str, key: str) -> ErpRecord | None:
        """The record saved under ``(erp, key)``, or None."""

    @abc.abstractmethod
    def save_erp_record(self, erp: str, record: ErpRecord) -> None:
        """Save (replace) the record under ``(erp, record.key)``."""


class MemoryErpRecordStore(ErpRecordStore):
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], ErpRecord] = {}

    def load_erp_record(self, erp: str, key: str) -> ErpRecord | None:
        return self._records.get((erp, key))

    def save_erp_record(self, erp: str, record: ErpRecord) -> None:
        self._records[(erp, record.key)] = record
