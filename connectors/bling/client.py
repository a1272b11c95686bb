"""The ErpConnector for Bling API v3: balances by product id, sales recorded exactly once without
an idempotency key, webhooks as hints, all within syncd's share of the account's request budget.

On-hand is Bling's virtual balance (physical minus what Bling's own open orders reserve): units a
marketplace order in Bling already holds are not offered again. Each call goes through
``HttpClient`` with the BlingBudget as its rate limiter; sales are recorded inside
``urgent_calls()`` so they pass before stock reads and may use the reserve reads leave them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors.base import (
    ErpConnector,
    ErpRecordStore,
    ErpWebhookEvent,
    MemoryErpRecordStore,
    MemoryTokenStore,
    Movement,
    StockPage,
    StockRecord,
    TokenStore,
)
from connectors.bling import payloads
from connectors.bling.auth import BlingAuth
from connectors.bling.budget import BRASILIA, BlingBudget, DailyExhausted
from connectors.bling.recording import Recorder
from connectors.bling.settings import BlingSettings
from connectors.bling.webhooks import WebhookState, parse, verify
from connectors.http import HttpClient, RetryPolicy, urgent_calls
from syncd.errors import AuthError, ConnectorError, ProtocolError, RejectedError, TransientError

log = structlog.get_logger(__name__)

PAGE = 100  # Bling's largest page
MAX_PAGES = 5_000
CHANGE_OVERLAP = timedelta(minutes=2)  # products edited while the last listing ran
HANDLED = (400, 401, 403, 404, 409, 422, 429)


class Throttled(TransientError):
    """Bling answered 429: the request was not applied."""


class BlingConnector(ErpConnector):
    uses_tokens = True
    uses_records = True

    def __init__(
        self,
        settings: BlingSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        tokens: TokenStore | None = None,
        records: ErpRecordStore | None = None,
        sleep: Callable[[float], Any] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.name = settings.name
        self.now = now
        budget_args: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.budget = BlingBudget(
            settings.requests_per_second,
            settings.requests_per_day,
            settings.movement_reserve,
            now=now,
            **budget_args,
        )
        headers = {"Accept": "application/json"}
        if settings.jwt:
            headers["enable-jwt"] = "1"
        self._http = HttpClient(
            settings.name,
            settings.base_url,
            headers=headers,
            timeout=settings.timeout.total_seconds(),
            rate_limiter=self.budget,
            retry=RetryPolicy(attempts=settings.retry_attempts),
            transport=transport,
            sleep=sleep,
        )
        self.auth = BlingAuth(
            settings, tokens if tokens is not None else MemoryTokenStore(), transport=transport, now=now
        )
        self._ids: dict[str, int] = {}  # SKU -> Bling product id
        self._codes: dict[int, str] = {}
        self._pending: set[int] = set()  # named by webhooks, read at the next stock_changes
        self._offset = 0  # round-robin position of stock_changes over the catalogue
        self._webhooks = WebhookState()
        self._recording = asyncio.Lock()
        self._deposits_checked = False
        self._recorder = Recorder(self, records if records is not None else MemoryErpRecordStore())

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.auth.aclose()

    def budget_status(self) -> dict[str, object]:
        """The day's request count against syncd's share (for /status)."""
        return self.budget.status()

    def api_budget(self) -> dict[str, object]:
        return self.budget_status()

    # ------------------------------------------------------------------ the one call path
    async def call(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> httpx.Response:
        """One API call: budget, token, throttling and the error envelope. A write is tried once
        (a retry could post twice); reads retry transient failures. Returns 2xx and 400/404/409/422
        answers (the caller decides what a refusal means); raises otherwise."""
        try:
            self.budget.check()
        except DailyExhausted as exc:
            raise TransientError(str(exc), connector=self.name, retry_after=exc.retry_after) from None
        used = ""

        async def attempt() -> httpx.Response:
            nonlocal used
            used = await self.auth.access_token()
            response = await self._http.request(
                method,
                path,
                retry=False,
                accept=HANDLED,
                headers={"Authorization": f"Bearer {used}"},
                **kwargs,
            )
            if response.status_code == 429:
                fail = payloads.failure(response)
                if fail.period == "day":
                    return response
                self.budget.pause(1.0)
                raise Throttled(f"{method} {path}: {fail}", connector=self.name, retry_after=1.0)
            return response

        for refreshed in (False, True):
            response = await (attempt() if write else self._http.call_with_retries(attempt))
            if response.status_code != 401:
                break
            if refreshed:
                raise AuthError(
                    f"{method} {path}: the access token was refused after a refresh", connector=self.name
                )
            await self.auth.refused(used)
        status = response.status_code
        if status == 429:
            self.budget.exhausted()
            wait = self.budget.seconds_to_new_day()
            log.warning("bling.daily_limit_reached", erp=self.name, resumes_in=round(wait))
            raise Throttled(
                f"{method} {path}: the account's daily limit is reached",
                connector=self.name,
                retry_after=wait,
            )
        if status == 403:
            raise AuthError(
                f"{method} {path}: {payloads.failure(response)} (a scope not granted?)", connector=self.name
            )
        return response

    def refusal(self, response: httpx.Response, sku: str | None = None) -> ConnectorError:
        fail = payloads.failure(response)
        where = f"{response.request.method} {response.request.url.path}"
        if sku is not None:
            return RejectedError(f"{where} refused {sku}: {fail}", connector=self.name)
        return ConnectorError(f"{where} answered {response.status_code}: {fail}", connector=self.name)

    # ------------------------------------------------------------------ catalogue
    async def _products(self, **filters: Any) -> list[payloads.Product]:
        found: list[payloads.Product] = []
        first_ids: set[int] = set()
        for page in range(1, MAX_PAGES + 1):
            params: list[tuple[str, Any]] = [("pagina", page), ("limite", PAGE)]
            for name, value in filters.items():
                params += value if isinstance(value, list) else [(name, value)]
            response = await self.call("GET", "/produtos", params=params)
            if response.status_code >= 300:
                raise self.refusal(response)
            items, skipped = payloads.products(response, self.name)
            for reason in skipped:
                log.warning("bling.product_skipped", erp=self.name, reason=reason)
            if items and items[0].id in first_ids:
                raise ProtocolError(f"GET /produtos page {page} repeats an earlier page", connector=self.name)
            if items:
                first_ids.add(items[0].id)
            found += items
            for product in items:
                self._learn(product.code, product.id)
            if len(items) + len(skipped) < PAGE:
                return found
        raise ProtocolError(f"GET /produtos gave more than {MAX_PAGES} pages", connector=self.name)

    def _learn(self, code: str, product_id: int) -> None:
        known = self._ids.get(code)
        if known is not None and known != product_id:
            log.warning("bling.duplicate_code", erp=self.name, sku=code, ids=[known, product_id])
            return
        self._ids[code] = product_id
        self._codes[product_id] = code

    async def product_id(self, sku: str) -> int | None:
        if sku not in self._ids:
            await self._products(codes=payloads.id_params("codigos[]", [sku]))
        return self._ids.get(sku)

    # ------------------------------------------------------------------ balances
    async def _balances(self, ids: Sequence[int]) -> list[StockRecord]:
        records: dict[str, StockRecord] = {}
        unique = list(dict.fromkeys(ids))
        size = self.settings.balance_batch
        for start in range(0, len(unique), size):
            batch = unique[start : start + size]
            response = await self.call(
                "GET", "/estoques/saldos", params=payloads.id_params("idsProdutos[]", batch)
            )
            if response.status_code >= 300:
                raise self.refusal(response)
            found, skipped = payloads.balances(response, self.name)
            for reason in skipped.values():
                log.warning("bling.balance_skipped", erp=self.name, reason=reason)
            answered = {pid for pid in skipped if pid is not None}
            for balance in found:
                if balance.product_id not in batch:
                    continue  # not asked for: its code may be unknown, and it is read in its turn
                answered.add(balance.product_id)
                record = self._record(balance)
                if record is not None:
                    records[record.sku] = record
            for pid in batch:
                code = self._codes.get(pid)
                # Bling leaves out products with no stock entry: they hold nothing.
                if pid not in answered and code is not None and code not in records:
                    records[code] = StockRecord(code, 0)
        return list(records.values())

    def _record(self, balance: payloads.Balance) -> StockRecord | None:
        code = self._codes.get(balance.product_id) or balance.code
        if code is None:
            return None
        if self.settings.deposits:
            value = sum(balance.deposits.get(d, 0.0) for d in self.settings.deposits)
        else:
            value = balance.virtual_total
        units = payloads.whole_units(value)
        if units is None:
            log.warning("bling.fractional_balance", erp=self.name, sku=code, balance=value)
            return None
        return StockRecord(code, units)

    async def _check_deposits(self) -> None:
        """Once: the configured deposits exist in the account (a wrong id would read as 0 units)."""
        wanted = set(self.settings.deposits) | {d for d in [self.settings.sale_deposit] if d is not None}
        if self._deposits_checked or not wanted:
            return
        response = await self.call("GET", "/depositos", params=[("limite", PAGE)])
        if response.status_code >= 300:
            raise self.refusal(response)
        known = {
            item["id"]: str(item.get("descricao", ""))
            for item in payloads.data_of(response, list, self.name)
            if isinstance(item, dict) and isinstance(item.get("id"), int)
        }
        missing = sorted(wanted - set(known))
        if missing:
            listed = ", ".join(f"{i} ({name})" for i, name in sorted(known.items())) or "none"
            raise ConnectorError(
                f"deposits {missing} of the settings are not in the Bling account; its deposits: {listed}",
                connector=self.name,
            )
        self._deposits_checked = True

    async def read_stock(self) -> list[StockRecord]:
        await self._check_deposits()
        products = await self._products()
        return await self._balances([p.id for p in products])

    async def stock_changes(self, cursor: str | None) -> StockPage:
        started = self.now()
        since = _parse_cursor(cursor)
        if since is None or not self._ids:
            records = await self.read_stock()
            self._pending.clear()
            return StockPage(records, _cursor(started))
        # No "stock changed since" feed: edited products, webhook-named ones, and a slice of the
        # catalogue in turn, so every balance is read again within a bounded number of polls.
        local = (since - CHANGE_OVERLAP).astimezone(BRASILIA).strftime("%Y-%m-%d %H:%M:%S")
        changed = await self._products(dataAlteracaoInicial=local)
        known = sorted(self._codes)
        size = self.settings.balance_batch
        if self._offset >= len(known):
            self._offset = 0
        turn = known[self._offset : self._offset + size]
        self._offset += size
        pending, self._pending = self._pending, set()
        ids = [p.id for p in changed] + sorted(pending) + turn
        try:
            records = await self._balances(ids)
        except ConnectorError:
            self._pending |= pending
            raise
        return StockPage(records, _cursor(started))

    async def read_skus(self, skus: Sequence[str]) -> list[StockRecord]:
        ids = [pid for sku in dict.fromkeys(skus) if (pid := await self.product_id(sku)) is not None]
        return await self._balances(ids)

    async def event_stock(self, events: Sequence[ErpWebhookEvent]) -> list[StockRecord]:
        ids = [int(ref) for event in events for ref in event.refs if ref.isdigit()]
        skus = [sku for event in events for sku in event.skus]
        ids += [pid for sku in dict.fromkeys(skus) if (pid := await self.product_id(sku)) is not None]
        unknown = [pid for pid in ids if pid not in self._codes]
        if unknown:
            await self._products(ids=payloads.id_params("idsProdutos[]", unknown))
        return await self._balances(ids)

    # ------------------------------------------------------------------ sales
    async def record_movements(self, movements: Sequence[Movement]) -> list[str]:
        acknowledged: list[str] = []
        # One batch at a time: two batches carrying one key (an order poll and an ERP poll at
        # once) would both look, find nothing, and create two orders.
        async with self._recording:
            with urgent_calls():
                if movements:
                    await self._recorder.look_up(movements)
                for movement in movements:
                    try:
                        if await self._recorder.record(movement):
                            acknowledged.append(movement.key)
                    except TransientError:
                        if not acknowledged:
                            raise
                        # Keep what was recorded; the rest is offered again by the caller.
                        log.warning(
                            "bling.movements_interrupted",
                            erp=self.name,
                            left=len(movements) - len(acknowledged),
                        )
                        break
        return acknowledged

    # ------------------------------------------------------------------ webhooks
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ErpWebhookEvent:
        verify(self.settings.client_secret.get_secret_value(), headers, body, self.name)
        delivery = parse(body, self.name)
        event = ErpWebhookEvent(dedupe_key=f"bling:{delivery.event_id}", topic=delivery.event, at=delivery.at)
        if self._webhooks.duplicate(delivery.event_id):
            return ErpWebhookEvent(event.dedupe_key, topic=event.topic, at=event.at, duplicate=True)
        pid = delivery.product_id
        counted = not self.settings.deposits or delivery.deposit_id in (None, *self.settings.deposits)
        if pid is None or not counted or not delivery.event.startswith(("stock", "virtual_stock", "product")):
            return event
        if self._webhooks.stale(pid, delivery.at):
            return ErpWebhookEvent(event.dedupe_key, topic=event.topic, at=event.at, stale=True)
        self._pending.add(pid)
        code = self._codes.get(pid)
        if code is not None:
            return ErpWebhookEvent(event.dedupe_key, skus=[code], topic=event.topic, at=event.at)
        return ErpWebhookEvent(event.dedupe_key, refs=[str(pid)], topic=event.topic, at=event.at)


def _cursor(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _parse_cursor(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        at = datetime.fromisoformat(cursor)
    except ValueError:
        log.warning("bling.cursor_unreadable", cursor=cursor[:40])
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
