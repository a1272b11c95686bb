"""The ErpConnector for Tiny (Olist ERP) API v3.

On-hand is read per product (``GET /estoque/{id}``, one call each) after the SKU <-> id map is
built by paging ``GET /produtos``; the safety net asks for products changed since the cursor
(``dataAlteracao``). A sale becomes a sales order carrying the movement key as
``numeroPedidoEcommerce``; creating it reserves the units, which ``disponivel`` (syncd's on-hand)
shows at once. Tiny keeps no idempotency key and creates a second order for a repeated number, so
the order is looked up before every send and an ErpRecord says what was posted. A cancellation sets
the order's situation to cancelled (2). Every call shares one per-minute budget, sales first.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from connectors.base import (
    CircuitState,
    ErpConnector,
    ErpRecord,
    ErpRecordStore,
    ErpWebhookEvent,
    MemoryErpRecordStore,
    MemoryTokenStore,
    Movement,
    Quarantined,
    StockPage,
    StockRecord,
    TokenStore,
)
from connectors.circuit import CircuitBreaker
from connectors.http import HttpClient, RateLimiter, RetryPolicy, parse_retry_after, urgent_calls
from connectors.limits import quarantine
from connectors.tiny.auth import ALL_ERRORS, TinyTokens
from connectors.tiny.settings import TinySettings
from connectors.tiny.webhooks import StockHint, parse_stock_webhook
from connectors.tiny.wire import (
    CANCELLED,
    Balance,
    Product,
    created_id,
    format_time,
    orders_page,
    parse_time,
    products_page,
    remote_message,
)
from connectors.tiny.wire import balance as read_balance
from syncd.errors import AuthError, ConnectorError, ProtocolError, RejectedError, TransientError

log = structlog.get_logger(__name__)

CANCEL_SUFFIX = ":cancel"
MAX_PAGES = 1000
READS_IN_FLIGHT = 4


def _server_time(response: httpx.Response) -> str | None:
    """The answer's Date header as a Tiny time, None when absent or unreadable."""
    dates = response.headers.get_list("date")  # a proxy may add a second one: the first is the origin's
    try:
        return format_time(parsedate_to_datetime(dates[0]))
    except (IndexError, TypeError, ValueError):
        return None


class TinyApiError(ConnectorError):
    """Tiny refused a request (4xx other than auth and throttling); ``status`` says which."""

    def __init__(self, message: str, *, connector: str, status: int):
        self.status = status
        super().__init__(message, connector=connector)


class _TokenRefused(AuthError):
    def __init__(self, message: str, *, connector: str, token: str):
        self.token = token
        super().__init__(message, connector=connector)


class TinyConnector(ErpConnector):
    uses_tokens = True
    uses_records = True

    def __init__(
        self,
        settings: TinySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        tokens: TokenStore | None = None,
        records: ErpRecordStore | None = None,
        clock: Callable[[], float] = time.time,
        circuit: CircuitBreaker | None = None,
    ):
        self.name = settings.name
        self.settings = settings
        self._circuit = circuit or CircuitBreaker.for_settings(settings.name, settings)
        self._records = records if records is not None else MemoryErpRecordStore()
        common: dict[str, Any] = {
            "timeout": settings.timeout.total_seconds(),
            "retry": RetryPolicy(attempts=settings.retry_attempts),
            "transport": transport,
            "sleep": sleep,
            "circuit": self._circuit,
        }
        # One bucket for every API call: reads and sales share the account's minute (sales are
        # sent inside urgent_calls(), so they go first). The token endpoint is another host.
        self.limiter = RateLimiter(
            settings.requests_per_second,
            settings.burst,
            # A clock given in (tests, simulations) drives the limiter too, with its sleep.
            clock=time.monotonic if clock is time.time else clock,
            sleep=sleep or asyncio.sleep,
        )
        self._http = HttpClient(
            settings.name,
            settings.base_url.rstrip("/"),
            headers={"Accept": "application/json"},
            rate_limiter=self.limiter,
            **common,
        )
        self._auth_http = HttpClient(settings.name, settings.auth_url.rstrip("/"), **common)
        self.tokens = TinyTokens(
            settings, tokens if tokens is not None else MemoryTokenStore(), self._auth_http, clock
        )
        self._recording = asyncio.Lock()
        self._ids: dict[str, int] = {}  # SKU -> product id
        self._map_built = False

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._auth_http.aclose()

    @property
    def circuit(self) -> CircuitState | None:
        return self._circuit.snapshot()

    @property
    def calls(self) -> int:
        """API calls made so far (the token endpoint not counted)."""
        return self._http.calls

    # ------------------------------------------------------------------ the call

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        retry: bool = True,
    ) -> httpx.Response:
        """One API call (2xx answer), retried while it fails transiently unless ``retry`` is False;
        a refused access token is refreshed once."""

        async def attempt() -> httpx.Response:
            token = await self.tokens.access_token()
            response = await self._http.request(
                method,
                path,
                params=params,
                json=body,
                accept=ALL_ERRORS,
                retry=False,
                headers={"Authorization": f"Bearer {token}"},
            )
            return self._check(response, f"{method} {path}", token)

        refreshed = False
        while True:
            try:
                if retry:
                    result: httpx.Response = await self._http.call_with_retries(attempt)
                    return result
                return await attempt()
            except _TokenRefused as exc:
                if refreshed:
                    raise AuthError(f"{exc}: refused right after a refresh", connector=self.name) from exc
                await self.tokens.refresh(exc.token)
                refreshed = True

    def _check(self, response: httpx.Response, where: str, token: str) -> httpx.Response:
        status = response.status_code
        if status < 300:
            return response
        detail = f"{where} answered {status}: {remote_message(response)}"
        if status == 401:
            raise _TokenRefused(detail, connector=self.name, token=token)
        if status == 403:
            raise AuthError(f"{detail} (grant the app this module's permission in Tiny)", connector=self.name)
        if status == 429:
            wait = self._throttle_wait(response)
            self.limiter.pause(wait)
            raise TransientError(detail, connector=self.name, retry_after=wait)
        if status >= 500:
            raise TransientError(detail, connector=self.name)
        raise TinyApiError(detail, connector=self.name, status=status)

    def _throttle_wait(self, response: httpx.Response) -> float:
        """Seconds until the account's minute has room again: Retry-After, else X-RateLimit-Reset
        (seconds left in the window), else the configured pause."""
        wait = parse_retry_after(response.headers.get("retry-after"))
        if wait is None:
            wait = parse_retry_after(response.headers.get("x-ratelimit-reset"))
        if wait is None or wait > 120:
            wait = self.settings.throttle_wait.total_seconds()
        return wait

    # ------------------------------------------------------------------ products

    async def _products(self, changed_since: str | None = None) -> tuple[list[Product], str | None]:
        """Every active product (or those changed since a Tiny time), following the offsets, and
        Tiny's time when the listing began (its Date header), if it says."""
        size = self.settings.page_size
        found: list[Product] = []
        offset = 0
        began: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"situacao": "A", "limit": size, "offset": offset}
            if changed_since is not None:
                params["dataAlteracao"] = changed_since
            response = await self._call("GET", "/produtos", params=params)
            if offset == 0:
                began = _server_time(response)
            page, total = products_page(response, self.name)
            found.extend(page)
            offset += len(page)
            if not page or offset >= total:
                return found, began
        raise ProtocolError(f"GET /produtos has more than {MAX_PAGES} pages", connector=self.name)

    def _learn(self, products: Sequence[Product]) -> list[Product]:
        """Record SKU -> id for products that hold stock; those, in order."""
        kept = []
        for p in products:
            if p.parent or not p.sku:
                continue  # a parent's stock lives in its variations; no SKU, nothing to sync
            known = self._ids.get(p.sku)
            if known is not None and known != p.id:
                log.warning("tiny.duplicate_sku", erp=self.name, sku=p.sku, ids=[known, p.id])
                continue
            self._ids[p.sku] = p.id
            kept.append(p)
        return kept

    async def _product_id(self, sku: str, *, look_up: bool = True) -> int | None:
        """Tiny's id of ``sku``; ``look_up`` asks Tiny about a SKU the map does not hold."""
        if sku not in self._ids and not self._map_built:
            self._learn((await self._products())[0])
            self._map_built = True
        if sku not in self._ids and look_up:
            # A product added since the map was built.
            page, _ = products_page(
                await self._call("GET", "/produtos", params={"codigo": sku, "situacao": "A"}), self.name
            )
            self._learn([p for p in page if p.sku == sku])
        return self._ids.get(sku)

    # ------------------------------------------------------------------ stock

    def on_hand(self, b: Balance) -> int:
        """``disponivel`` (saldo minus what Tiny's open orders reserve) over the counted deposits."""
        wanted = self.settings.deposits
        if wanted is None:
            figure = b.disponivel
        else:
            figure = sum(d[2] for i, d in b.deposits.items() if i in wanted)
        # Fractions of a unit cannot be sold; a negative balance offers nothing.
        return max(0, math.floor(figure + 1e-9))

    def _check_deposits(self, b: Balance) -> None:
        """The configured deposits are among those a stock answer lists (Tiny lists every deposit
        of the account there): a wrong id would read as 0 units, so it stops the read instead."""
        missing = sorted(set(self.settings.deposits or ()) - set(b.deposits))
        if missing:
            listed = ", ".join(f"{i} ({name})" if name else str(i) for i, name in sorted(b.deposit_names.items()))
            raise ConnectorError(
                f"deposits {missing} of the settings are not in the Tiny account; its deposits: {listed or 'none'}",
                connector=self.name,
            )

    async def _read(self, products: Sequence[Product]) -> tuple[list[StockRecord], list[Quarantined]]:
        """On-hand of each product. One that Tiny refuses to give is logged and left out; one whose
        answer is malformed or implausible is quarantined: the others are read all the same."""
        gate = asyncio.Semaphore(READS_IN_FLIGHT)
        quarantined: list[Quarantined] = []

        async def one(p: Product) -> StockRecord | None:
            where = f"GET /estoque/{p.id}"
            async with gate:
                try:
                    response = await self._call("GET", f"/estoque/{p.id}")
                except TinyApiError as exc:
                    log.warning("tiny.stock_unreadable", erp=self.name, sku=p.sku, error=str(exc))
                    return None
            raw = response.content[:500].decode("utf-8", "replace")
            try:
                b = read_balance(response, self.name)
                if b.product_id != p.id:
                    raise ProtocolError(
                        f"{where} answered the stock of product {b.product_id}", connector=self.name
                    )
            except ProtocolError as exc:
                quarantined.append(quarantine(self.name, "stock", p.sku, str(exc), raw))
                return None
            self._check_deposits(b)
            units = self.on_hand(b)
            if units > self.settings.max_quantity:
                reason = (
                    f"{where}: on-hand must be an integer from 0 to {self.settings.max_quantity}, got {units}"
                )
                quarantined.append(quarantine(self.name, "stock", p.sku, reason, raw))
                return None
            return StockRecord(sku=p.sku, on_hand=units)

        results = await asyncio.gather(*(one(p) for p in products))
        return [r for r in results if r is not None], quarantined

    async def read_stock(self) -> list[StockRecord]:
        return (await self.stock_changes(None)).records

    async def stock_changes(self, cursor: str | None) -> StockPage:
        since = None
        if cursor is not None:
            try:
                since = format_time(parse_time(cursor) - self.settings.change_overlap)
            except ValueError:
                log.warning("tiny.bad_cursor", erp=self.name, cursor=cursor[:40])
        products, began = await self._products(since)
        if since is None:
            self._ids.clear()
            self._map_built = True
        kept = self._learn(products)
        # The next cursor: Tiny's own time when this listing began (nothing changed after it is
        # missed), else the latest change seen; never earlier than the cursor given.
        stamps = [began] if began else [p.changed for p in products if p.changed]
        if since is not None and cursor is not None:
            stamps.append(cursor)
        latest = max(stamps, key=parse_time) if stamps else None
        records, quarantined = await self._read(kept)
        return StockPage(records=records, cursor=latest, quarantined=quarantined)

    def stock_hint(self, body: bytes) -> StockHint:
        """The SKUs an (unsigned) stock webhook names, to read now; never a quantity to trust."""
        return parse_stock_webhook(body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ErpWebhookEvent:
        # Tiny signs nothing and gives no delivery id: there is no signature to check, and the
        # event only names products to read (through the authenticated API) again.
        hint = parse_stock_webhook(body)
        return ErpWebhookEvent(
            dedupe_key=None,
            skus=sorted(hint.skus),
            refs=sorted(str(i) for i in hint.product_ids),
            topic=hint.kind,
        )

    async def event_stock(self, events: Sequence[ErpWebhookEvent]) -> list[StockRecord]:
        skus = {sku for e in events for sku in e.skus}
        refs = {int(r) for e in events if not e.skus for r in e.refs if r.isdigit()}
        found: dict[str, StockRecord] = {}
        for product_id in refs:
            found.update(
                (r.sku, r) for r in await self.read_hint(StockHint(product_ids=frozenset([product_id])))
            )
        found.update((r.sku, r) for r in await self.read_skus(sorted(skus - set(found))))
        return list(found.values())

    async def read_hint(self, hint: StockHint) -> list[StockRecord]:
        """On-hand now of what a stock webhook names (SKUs, or product ids when it gives no SKU).
        Products the SKU map does not hold are left out: they arrive by the change feed."""
        if not self._map_built:
            self._learn((await self._products())[0])
            self._map_built = True
        by_id = {v: k for k, v in self._ids.items()}
        skus = set(hint.skus) | {by_id[i] for i in hint.product_ids if i in by_id}
        return await self.read_skus(sorted(skus))

    async def read_skus(self, skus: Sequence[str]) -> list[StockRecord]:
        """On-hand of these SKUs now (after a stock webhook, say); unknown SKUs are left out."""
        products = []
        for sku in dict.fromkeys(skus):
            # No look-up per unknown SKU: an unsigned webhook naming made-up SKUs must not spend
            # the budget. A product created since the map was built arrives by the change feed.
            product_id = await self._product_id(sku, look_up=False)
            if product_id is None:
                log.info("tiny.unknown_sku", erp=self.name, sku=sku)
            else:
                products.append(Product(product_id, sku, None, False))
        return (await self._read(products))[0]

    # ------------------------------------------------------------------ sales

    async def record_movements(self, movements: Sequence[Movement]) -> list[str]:
        acknowledged: list[str] = []
        # One batch at a time: two polls offering the same sale at once would both find no order
        # and both create one. The second batch waits, then finds the first one's records.
        async with self._recording:
            with urgent_calls():
                for m in movements:
                    try:
                        done = await (self._reverse(m) if m.delta > 0 else self._sell(m))
                    except (RejectedError, TinyApiError) as exc:
                        log.warning(
                            "erp.movement_rejected",
                            connector=self.name,
                            key=m.key,
                            sku=m.sku,
                            reason=str(exc),
                        )
                        continue
                    if done:
                        acknowledged.append(m.key)
        return acknowledged

    def _save(self, key: str, erp_id: int | None, state: str) -> None:
        self._records.save_erp_record(
            self.name, ErpRecord(key, str(erp_id) if erp_id is not None else None, state, datetime.now(UTC))
        )

    async def _find_order(self, number: str, *, retry: bool = True) -> int | None:
        """The id of the order carrying ``number`` as numeroPedidoEcommerce, if Tiny has one."""
        response = await self._call(
            "GET", "/pedidos", params={"numeroPedidoEcommerce": number, "limit": 100}, retry=retry
        )
        orders, _ = orders_page(response, self.name)
        # Only an exact match counts, whatever Tiny's search does with similar numbers.
        matches = [o for o in orders if o.ecommerce_number == number]
        if not matches:
            return None
        live = [o for o in matches if o.situacao != CANCELLED]
        return min(o.id for o in (live or matches))

    async def _sell(self, m: Movement) -> bool:
        record = self._records.load_erp_record(self.name, m.key)
        if record is not None and record.state in ("posted", "reversed"):
            return True
        if m.delta == 0:
            return True
        product_id = await self._product_id(m.sku)
        if product_id is None:
            raise RejectedError(
                f"no active product with SKU {m.sku!r} in Tiny", connector=self.name, sku=m.sku
            )
        if record is None or record.state == "failed":
            self._save(m.key, None, "sending")

        async def look_then_send() -> int:
            # Before every send: a previous attempt (this one's, or one cut short by a time-out or a
            # crash) may have created the order; Tiny would create a second one for the same number.
            found = await self._find_order(m.key, retry=False)
            if found is not None:
                return found
            response = await self._call("POST", "/pedidos", body=self._order(m, product_id), retry=False)
            try:
                return created_id(response, self.name)
            except ProtocolError as exc:
                # The order may exist: look it up again rather than trust or resend.
                raise TransientError(f"{exc}; looking the order up again", connector=self.name) from exc

        try:
            order_id: int = await self._http.call_with_retries(look_then_send)
        except TinyApiError as exc:
            # Refused (a 4xx answer): no order was created, the next attempt simply sends again.
            self._save(m.key, None, "failed")
            raise RejectedError(str(exc), connector=self.name, sku=m.sku) from exc
        self._save(m.key, order_id, "posted")
        log.info("tiny.sale_recorded", erp=self.name, key=m.key, sku=m.sku, order=order_id)
        return True

    def _order(self, m: Movement, product_id: int) -> dict[str, Any]:
        s = self.settings
        ecommerce: dict[str, Any] = {"numeroPedidoEcommerce": m.key}
        if s.ecommerce_id is not None:
            ecommerce["id"] = s.ecommerce_id
        order: dict[str, Any] = {
            "idContato": s.contact_id,
            "data": format_time(datetime.now(UTC))[:10],
            "ecommerce": ecommerce,
            "itens": [{"produto": {"id": product_id}, "quantidade": -m.delta, "valorUnitario": 0}],
            "observacoes": f"syncd: {m.reason} {m.reference}".strip(),
        }
        if s.order_deposit is not None:
            order["deposito"] = {"id": s.order_deposit}
        return order

    async def _reverse(self, m: Movement) -> bool:
        """A cancellation (key ``<sale key>:cancel``): the sale's order set to cancelled."""
        record = self._records.load_erp_record(self.name, m.key)
        if record is not None and record.state in ("posted", "reversed"):
            return True
        sale = m.key.removesuffix(CANCEL_SUFFIX)
        sold = self._records.load_erp_record(self.name, sale)
        if sold is not None and sold.state == "reversed":
            self._save(m.key, int(sold.erp_id) if sold.erp_id else None, "posted")
            return True
        order_id = int(sold.erp_id) if sold is not None and sold.erp_id and sold.state == "posted" else None
        if order_id is None:
            order_id = await self._find_order(sale)
        if order_id is None:
            # No order was ever created for the sale: nothing stands to be undone.
            log.info("tiny.nothing_to_reverse", erp=self.name, key=m.key)
            self._save(m.key, None, "posted")
            return True
        # Setting the situation is idempotent: sent again after a time-out it changes nothing.
        await self._call("PUT", f"/pedidos/{order_id}/situacao", body={"situacao": CANCELLED})
        self._save(sale, order_id, "reversed")
        self._save(m.key, order_id, "posted")
        log.info("tiny.sale_reversed", erp=self.name, key=m.key, sku=m.sku, order=order_id)
        return True
