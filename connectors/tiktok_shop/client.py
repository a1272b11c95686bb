"""The TikTok Shop channel: signed Open API 202309 calls for products, inventory and orders.

Every answer is the envelope ``{code, message, request_id, data}``; a non-zero code is an error
even with HTTP 200. The access token is refreshed before it expires (and once on code 105002) and
saved in the TokenStore so that a restart keeps the refreshed one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors.base import (
    ChannelConnector,
    CircuitState,
    Listing,
    MemoryTokenStore,
    OrderLine,
    OrderPage,
    QuantityUpdate,
    Quarantined,
    StoredToken,
    TokenStore,
    UpdateResult,
    WebhookEvent,
)
from connectors.circuit import CircuitBreaker
from connectors.http import (
    HttpClient,
    RateLimiter,
    RetryPolicy,
    paired_calls,
    parse_retry_after,
    urgent_calls,
)
from connectors.limits import plausible_level, quarantine
from connectors.locations import split_total
from connectors.tiktok_shop.payloads import (
    Invalid,
    OrderView,
    SkuStock,
    from_unix,
    read_inventory,
    read_order,
    read_products,
    read_update_errors,
)
from connectors.tiktok_shop.settings import TikTokShopSettings
from connectors.tiktok_shop.signing import RequestSigner
from connectors.tiktok_shop.webhooks import parse_delivery
from syncd.errors import AuthError, ConnectorError, ProtocolError, StoreError, TransientError

log = structlog.get_logger("syncd.connectors.tiktok_shop")

PRODUCTS_SEARCH = "/product/202309/products/search"
INVENTORY_SEARCH = "/product/202309/inventory/search"
ORDERS_SEARCH = "/order/202309/orders/search"
ORDER_DETAIL = "/order/202309/orders"
TOKEN_REFRESH = "/api/v2/token/refresh"
WAREHOUSES = "/logistics/202309/warehouses"

LIVE = "ACTIVATE"
THROTTLED = 36009002
INTERNAL_ERROR = 36009003
TOKEN_EXPIRED = 105002
BAD_SIGN = 106001
# Missing sign, bad timestamp, bad token or app_key, shop_cipher refused (told apart by message).
BAD_REQUEST_AUTH = 36009004
# Far beyond any real catalogue: only a server that never ends paging gets here.
MAX_PAGES = 10_000
INVENTORY_SEARCH_SKUS = 100
ORDER_DETAIL_IDS = 50
# Every error status is read here from the envelope; our attempt loop does the retrying.
ALL_ERRORS = tuple(range(300, 600))
# Expiry fields above this are Unix times, below it lifetimes in seconds (TikTok documents neither).
_EPOCH_THRESHOLD = 1_000_000_000


class TikTokApiError(ConnectorError):
    """A non-zero envelope code that is neither throttling nor an authentication problem."""

    def __init__(self, message: str, *, connector: str, code: int, remote: str):
        self.code = code
        self.remote = remote
        super().__init__(message, connector=connector)


class _TokenExpired(AuthError):
    """Code 105002: refresh the token and try once more. ``token`` is the one that was refused."""

    def __init__(self, message: str, *, connector: str, token: str):
        self.token = token
        super().__init__(message, connector=connector)


class TikTokShopConnector(ChannelConnector):
    uses_tokens = True
    """TikTok Shop has no compare-and-set: a write replaces the shown quantity outright.

    A sale landing between syncd's plan and its write is overwritten (the channel then shows one
    unit too many) until the order arrives and the next push corrects it. For quantities at or
    below ``reread_below`` the SKU is read back right after the write and ``read_back`` reports what
    TikTok shows then: a sale that landed in the window shows up as a lower value at once, instead
    of at the next reconcile. The window still spans one write round trip; low-stock
    partitioning (targets summing to at most ats) is what bounds the oversell in it.
    """

    supports_compare_and_set = False
    max_batch = 100
    writes_per_item = True
    event_fetch_interval = 1.0
    event_fetch_batch = ORDER_DETAIL_IDS

    def __init__(
        self,
        settings: TikTokShopSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        tokens: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        circuit: CircuitBreaker | None = None,
    ):
        self.name = settings.name
        self.settings = settings
        self._circuit = circuit or CircuitBreaker.for_settings(settings.name, settings, clock=clock)
        self._clock = clock
        self._tokens = tokens if tokens is not None else MemoryTokenStore()
        self._token_name = f"tiktok_shop:{settings.name}"
        stored = self._tokens.load_token(self._token_name)
        self._access = stored.access_token if stored else settings.access_token.get_secret_value()
        self._refresh = stored.refresh_token if stored else settings.refresh_token.get_secret_value()
        self._expires_at: datetime | None = stored.access_expires_at if stored else None
        self._refresh_expires_at: datetime | None = stored.refresh_expires_at if stored else None
        self._refresh_lock = asyncio.Lock()
        self._refresh_deferred = False  # a refresh ahead of expiry failed: logged once until one works
        common: dict[str, Any] = {
            "timeout": settings.timeout.total_seconds(),
            "retry": RetryPolicy(attempts=settings.retry_attempts),
            "transport": transport,
            "sleep": sleep,
            "circuit": self._circuit,
        }
        signer = RequestSigner(
            settings.app_key,
            settings.app_secret.get_secret_value,
            settings.shop_cipher,
            lambda: self._access,
            clock,
        )
        # One write per product: slices of under half a second's calls, so that an urgent push
        # queued meanwhile waits little.
        self.push_slice = max(1, int(settings.rate_limit) // 2)
        self._http = HttpClient(
            settings.name,
            settings.base_url.rstrip("/"),
            headers={"content-type": "application/json"},
            auth=signer,
            rate_limiter=RateLimiter(settings.rate_limit, settings.burst),
            **common,
        )
        # The auth host takes the app secret as a query parameter and no signature. It is another
        # service, with a circuit of its own: its outage must not stop calls with a working token.
        auth_circuit = CircuitBreaker.for_settings(f"{settings.name} (auth host)", settings, clock=clock)
        self._auth_http = HttpClient(
            settings.name, settings.auth_base_url.rstrip("/"), **(common | {"circuit": auth_circuit})
        )
        # sku_id -> warehouse ids, learnt from reads, so that a write needs no read first.
        self._warehouses: dict[str, tuple[str, ...]] = {}
        # With warehouse_ids: sku_id -> units in each named warehouse it is stocked in, in the
        # configured order, as last read (the read before a push is the one a write splits over).
        self._named: dict[str, tuple[tuple[str, int], ...]] = {}
        self._warehouses_checked = settings.warehouse_ids is None

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._auth_http.aclose()

    @property
    def circuit(self) -> CircuitState | None:
        return self._circuit.snapshot()

    # ------------------------------------------------------------------ the call

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``data`` of one API call, retried (re-signed) while throttled or failing transiently."""
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None

        async def attempt() -> dict[str, Any]:
            response = await self._http.request(
                method, path, params=params or {}, content=content, accept=ALL_ERRORS, retry=False
            )
            return self._envelope(response, f"{method} {path}")

        refreshed = False
        while True:
            await self._refresh_if_expiring()
            try:
                result: dict[str, Any] = await self._http.call_with_retries(attempt)
                return result
            except _TokenExpired as exc:
                if refreshed:
                    raise AuthError(
                        f"{method} {path}: token refused right after a refresh", connector=self.name
                    ) from exc
                await self._refresh_token(exc.token)
                refreshed = True

    def _envelope(self, response: httpx.Response, where: str) -> dict[str, Any]:
        status = response.status_code
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            self._raise_for_status(response, where, "")
            raise ProtocolError(
                f"{where} answered a body that is not JSON ({len(response.content)} bytes)",
                connector=self.name,
            ) from exc
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            self._raise_for_status(response, where, "")
            raise ProtocolError(f"{where} answered no envelope with an integer 'code'", connector=self.name)
        assert isinstance(body, dict)
        remote = str(body.get("message", ""))[:200]
        if code == 0:
            self._raise_for_status(response, where, remote)
            data = body.get("data")
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise ProtocolError(f"{where} answered 'data' that is not an object", connector=self.name)
            return data
        detail = f"{where} answered code {code}: {remote} (request_id {body.get('request_id', '?')})"
        if code == THROTTLED or status == 429:
            wait = parse_retry_after(response.headers.get("retry-after"))
            wait = self.settings.throttle_wait.total_seconds() if wait is None else wait
            if self._http.rate_limiter is not None:
                self._http.rate_limiter.pause(wait)
            raise TransientError(detail, connector=self.name, retry_after=wait)
        if code == INTERNAL_ERROR or status >= 500:
            raise TransientError(detail, connector=self.name)
        if code == TOKEN_EXPIRED:
            used = response.request.headers.get("x-tts-access-token", "")
            raise _TokenExpired(detail, connector=self.name, token=used)
        if code in (BAD_SIGN, BAD_REQUEST_AUTH) or 105000 <= code < 106000 or status in (401, 403):
            raise AuthError(detail, connector=self.name)
        raise TikTokApiError(detail, connector=self.name, code=code, remote=remote)

    def _raise_for_status(self, response: httpx.Response, where: str, remote: str) -> None:
        """Map an error status whose body says nothing more (no envelope, or code 0)."""
        status = response.status_code
        if status < 300:
            return
        detail = f"{where} answered {status}" + (f": {remote}" if remote else "")
        if status == 429 or status >= 500:
            raise TransientError(
                detail,
                connector=self.name,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status in (401, 403):
            raise AuthError(detail, connector=self.name)
        raise ConnectorError(detail, connector=self.name)

    # ------------------------------------------------------------------ tokens

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _refresh_if_expiring(self) -> None:
        expires = self._expires_at
        if expires is None or expires - self._now() > self.settings.token_refresh_margin:
            return
        try:
            await self._refresh_token(self._access)
        except TransientError as exc:
            # A refresh ahead of expiry that fails (the auth host down or slow) must not fail a
            # call the current token can still make: a webhook's order fetch would be lost with
            # it. The next call tries the refresh again.
            if expires <= self._now():
                raise
            if not self._refresh_deferred:
                log.warning(
                    "tiktok_shop.token_refresh_deferred",
                    channel=self.name,
                    expires_at=expires,
                    error=str(exc),
                )
            self._refresh_deferred = True
        else:
            self._refresh_deferred = False

    async def _refresh_token(self, refused: str) -> None:
        """Refresh the access token unless another call already replaced ``refused``."""
        async with self._refresh_lock:
            if self._access != refused:
                return
            params = {
                "app_key": self.settings.app_key,
                "app_secret": self.settings.app_secret.get_secret_value(),
                "refresh_token": self._refresh,
                "grant_type": "refresh_token",
            }

            async def attempt() -> dict[str, Any]:
                response = await self._auth_http.request(
                    "GET", TOKEN_REFRESH, params=params, accept=ALL_ERRORS, retry=False
                )
                return self._envelope(response, f"GET {TOKEN_REFRESH}")

            data: dict[str, Any] = await self._auth_http.call_with_retries(attempt)
            now = self._now()
            access, refresh = data.get("access_token"), data.get("refresh_token")
            if not isinstance(access, str) or not access:
                raise ProtocolError(f"GET {TOKEN_REFRESH} answered no access_token", connector=self.name)
            self._access = access
            if isinstance(refresh, str) and refresh:
                self._refresh = refresh
            self._expires_at = _expiry(data.get("access_token_expire_in"), now)
            self._refresh_expires_at = _expiry(data.get("refresh_token_expire_in"), now)
            log.info("tiktok_shop.token_refreshed", channel=self.name, expires_at=self._expires_at)
            token = StoredToken(
                access_token=self._access,
                refresh_token=self._refresh,
                # Unknown lifetime: check again in a day; a 105002 before then refreshes anyway.
                access_expires_at=self._expires_at or now + timedelta(days=1),
                refresh_expires_at=self._refresh_expires_at,
            )
            if self._expires_at is None:
                self._expires_at = token.access_expires_at
            try:
                self._tokens.save_token(self._token_name, token)
            except StoreError as exc:
                # The new token works in memory; only a restart before the next refresh loses it.
                log.error("tiktok_shop.token_not_saved", channel=self.name, error=type(exc).__name__)

    # ------------------------------------------------------------------ reading

    def _protocol(self, where: str, exc: Invalid) -> ProtocolError:
        return ProtocolError(f"{where}: {exc}", connector=self.name)

    async def _pages(
        self, path: str, body: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``data`` of every page of a search, following ``next_page_token`` until it is empty."""
        pages: list[dict[str, Any]] = []
        seen: set[str] = set()
        token = ""
        while True:
            params: dict[str, Any] = {"page_size": self.settings.page_size, **(extra or {})}
            if token:
                params["page_token"] = token
            data = await self._call("POST", path, params=params, body=body)
            pages.append(data)
            following = data.get("next_page_token") or ""
            if not isinstance(following, str):
                raise ProtocolError(
                    f"POST {path} answered a next_page_token that is not a string", connector=self.name
                )
            if not following:
                return pages
            if following in seen:
                raise ProtocolError(
                    f"POST {path} returned page token {following[:40]!r} twice", connector=self.name
                )
            if len(pages) >= MAX_PAGES:
                raise ProtocolError(f"POST {path} has more than {MAX_PAGES} pages", connector=self.name)
            seen.add(following)
            token = following

    async def list_listings(self) -> list[Listing]:
        await self._check_warehouses()
        listings: dict[str, Listing] = {}
        for data in await self._pages(PRODUCTS_SEARCH, {"status": LIVE}):
            try:
                stocks = read_products(data, f"POST {PRODUCTS_SEARCH}")
            except Invalid as exc:
                raise self._protocol(f"POST {PRODUCTS_SEARCH}", exc) from exc
            for stock in stocks:
                self._learn(stock)
                if not stock.seller_sku:
                    continue
                if stock.seller_sku in listings:
                    log.warning("tiktok_shop.duplicate_sku", channel=self.name, sku=stock.seller_sku)
                    continue
                ref = f"{stock.product_id}:{stock.sku_id}"
                quantity = self._level(stock)
                # In none of the named warehouses: not syncd's to count or write.
                managed = self.settings.warehouse_ids is None or bool(self._named[stock.sku_id])
                listings[stock.seller_sku] = Listing(
                    sku=stock.seller_sku, ref=ref, quantity=quantity if managed else None, managed=managed
                )
        return list(listings.values())

    def _learn(self, stock: SkuStock) -> None:
        self._warehouses[stock.sku_id] = stock.warehouse_ids
        named = self.settings.warehouse_ids
        if named is not None:
            levels = dict(stock.warehouses)
            self._named[stock.sku_id] = tuple((w, levels[w]) for w in named if w in levels)

    async def _check_warehouses(self) -> None:
        """Once, with warehouse_ids: every named warehouse exists in the shop (a wrong id would
        read as not stocked anywhere)."""
        if self._warehouses_checked:
            return
        data = await self._call("GET", WAREHOUSES)
        listed = data.get("warehouses")
        if not isinstance(listed, list):
            raise ProtocolError(f"GET {WAREHOUSES} answered no warehouses list", connector=self.name)
        known = {
            str(w.get("id")): str(w.get("name") or "")
            for w in listed
            if isinstance(w, dict) and isinstance(w.get("id"), str | int) and not isinstance(w.get("id"), bool)
        }
        missing = [w for w in self.settings.warehouse_ids or () if w not in known]
        if missing:
            shown = ", ".join(f"{ident} ({name})" if name else ident for ident, name in known.items()) or "none"
            raise ConnectorError(
                f"warehouse_ids: {', '.join(missing)} not in the shop; its warehouses: {shown}",
                connector=self.name,
            )
        self._warehouses_checked = True

    async def _inventory(self, sku_ids: Sequence[str]) -> dict[str, SkuStock]:
        """Current stock of the given SKU ids (absent from the result: unknown to TikTok)."""
        await self._check_warehouses()
        found: dict[str, SkuStock] = {}
        unique = list(dict.fromkeys(sku_ids))
        for start in range(0, len(unique), INVENTORY_SEARCH_SKUS):
            chunk = unique[start : start + INVENTORY_SEARCH_SKUS]
            data = await self._call("POST", INVENTORY_SEARCH, body={"sku_ids": chunk})
            try:
                stocks = read_inventory(data, f"POST {INVENTORY_SEARCH}")
            except Invalid as exc:
                raise self._protocol(f"POST {INVENTORY_SEARCH}", exc) from exc
            for stock in stocks:
                self._learn(stock)
                found[stock.sku_id] = stock
        return found

    def paired(self, calls: int) -> AbstractContextManager[None]:
        return paired_calls(calls)

    async def read_quantities(self, listings: Sequence[Listing], *, urgent: bool = False) -> dict[str, int]:
        with urgent_calls(urgent):
            return await self._read_quantities(listings)

    async def _read_quantities(self, listings: Sequence[Listing]) -> dict[str, int]:
        by_sku_id: dict[str, str] = {}
        for listing in listings:
            target = _parse_ref(listing.ref)
            if target is not None:
                by_sku_id[target[1]] = listing.sku
        stocks = await self._inventory(list(by_sku_id))
        levels = {
            by_sku_id[s]: self._level(stock, by_sku_id[s]) for s, stock in stocks.items() if s in by_sku_id
        }
        return {sku: level for sku, level in levels.items() if level is not None}

    def _level(self, stock: SkuStock, sku: str | None = None) -> int | None:
        if self.settings.warehouse_ids is None:
            value: int | None = stock.total
        else:
            named = self._named.get(stock.sku_id, ())
            value = sum(units for _, units in named) if named else None
        return plausible_level(
            self.name, sku or stock.seller_sku or stock.sku_id, value, self.settings.max_quantity
        )

    async def orders_since(self, since: datetime, *, urgent: bool = False) -> OrderPage:
        with urgent_calls(urgent):
            return await self._orders_since(since)

    async def _orders_since(self, since: datetime) -> OrderPage:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        # TikTok times are whole seconds; update_time_ge includes the bound.
        floor = since.replace(microsecond=0)
        body = {"update_time_ge": int(floor.timestamp())}
        extra = {"sort_field": "update_time", "sort_order": "ASC"}
        orders: list[OrderView] = []
        quarantined: list[Quarantined] = []
        latest: datetime | None = None
        for data in await self._pages(ORDERS_SEARCH, body, extra):
            good, bad = self._orders(data, f"POST {ORDERS_SEARCH}")
            orders.extend(good)
            for raw, reason in bad:
                # One order syncd cannot read must not hold back the others, nor the cursor.
                changed = _updated_of(raw)
                if changed is None or changed >= floor:
                    ref = raw.get("id") if isinstance(raw, dict) else None
                    quarantined.append(quarantine(self.name, "order", ref, reason, raw))
                    if changed is not None:
                        latest = changed if latest is None else max(latest, changed)
        lines: dict[str, OrderLine] = {}
        for order in orders:
            if order.updated_at < floor:
                continue
            latest = order.updated_at if latest is None else max(latest, order.updated_at)
            for line in order.lines:
                # An order changed while we page may show up twice; its newest state wins.
                known = lines.get(line.key)
                if known is None or known.updated_at <= line.updated_at:
                    lines[line.key] = line
        return OrderPage(lines=list(lines.values()), latest=latest, quarantined=quarantined)

    @property
    def webhooks_carry_lines(self) -> bool:
        return False

    @property
    def event_fetch_retry_waits(self) -> tuple[float, ...]:
        first = self.settings.webhook_fetch_backoff.total_seconds()
        return tuple(min(first * 2**n, 300.0) for n in range(self.settings.webhook_fetch_attempts - 1))

    async def event_lines(self, events: Sequence[WebhookEvent], *, urgent: bool = False) -> list[OrderLine]:
        with urgent_calls(urgent):
            return await self._event_lines(events)

    async def _event_lines(self, events: Sequence[WebhookEvent]) -> list[OrderLine]:
        # Order notifications carry the order id and status only: fetch the orders' lines, all
        # the events of a burst in one call per 50 orders.
        ids = list(
            dict.fromkeys(e.topic.removeprefix("order:") for e in events if e.topic.startswith("order:"))
        )
        lines = [line for event in events for line in event.lines]
        return lines + (await self.lines_for_orders(ids) if ids else [])

    async def lines_for_orders(self, order_ids: list[str]) -> list[OrderLine]:
        """The current lines of the given orders (order detail), for webhooks that carry only an id.

        Orders TikTok does not return are left out; the order poll picks them up later if they exist.
        So are orders that cannot be read (logged): the order poll quarantines them.
        """
        lines: list[OrderLine] = []
        unique = list(dict.fromkeys(order_ids))
        for start in range(0, len(unique), ORDER_DETAIL_IDS):
            chunk = unique[start : start + ORDER_DETAIL_IDS]
            data = await self._call("GET", ORDER_DETAIL, params={"ids": ",".join(chunk)})
            good, bad = self._orders(data, f"GET {ORDER_DETAIL}")
            for order in good:
                lines.extend(order.lines)
            for raw, reason in bad:
                ref = raw.get("id") if isinstance(raw, dict) else None
                log.warning("order.unreadable", connector=self.name, ref=str(ref)[:40], reason=reason)
        return lines

    def _orders(self, data: dict[str, Any], where: str) -> tuple[list[OrderView], list[tuple[Any, str]]]:
        """The orders of an answer that can be read, and the others with the reason."""
        raw_orders = data.get("orders") or []
        if not isinstance(raw_orders, list):
            raise self._protocol(where, Invalid("data.orders must be a list"))
        good: list[OrderView] = []
        bad: list[tuple[Any, str]] = []
        for index, raw in enumerate(raw_orders):
            try:
                good.append(
                    read_order(
                        raw, self.name, f"{where}.orders[{index}]", max_quantity=self.settings.max_quantity
                    )
                )
            except Invalid as exc:
                bad.append((raw, str(exc)))
        return good, bad

    # ------------------------------------------------------------------ writing

    async def set_quantities(self, updates: Sequence[QuantityUpdate], *, urgent: bool = False) -> UpdateResult:
        with urgent_calls(urgent):
            return await self._set_quantities(updates)

    async def _set_quantities(self, updates: Sequence[QuantityUpdate]) -> UpdateResult:
        result = UpdateResult()
        # product id -> sku id -> update (a later update of the same SKU wins).
        groups: dict[str, dict[str, QuantityUpdate]] = {}
        for update in updates:
            target = _parse_ref(update.ref)
            if target is None:
                result.rejected[update.sku] = f"unrecognised TikTok Shop ref {update.ref!r}"
                continue
            groups.setdefault(target[0], {})[target[1]] = update
        known = self._warehouses if self.settings.warehouse_ids is None else self._named
        unknown = {sku_id for group in groups.values() for sku_id in group if sku_id not in known}
        if unknown:
            found = await self._inventory(sorted(unknown))
            for product_id, group in groups.items():
                for sku_id in [s for s in group if s in unknown]:
                    stock = found.get(sku_id)
                    if stock is None or stock.product_id != product_id:
                        result.rejected[group.pop(sku_id).sku] = (
                            f"TikTok Shop has no SKU {sku_id} in product {product_id}"
                        )
        if self.settings.warehouse_ids is not None:
            for group in groups.values():
                for sku_id in [s for s in group if not self._named.get(s)]:
                    result.rejected[group.pop(sku_id).sku] = (
                        f"SKU {sku_id} is in none of the warehouses warehouse_ids names"
                    )
        await self._update_products({p: g for p, g in groups.items() if g}, result)
        await self._reread_low(groups, result)
        return result

    async def _update_products(
        self, groups: dict[str, dict[str, QuantityUpdate]], result: UpdateResult
    ) -> None:
        """One call per product, up to ``push_slice`` of them in flight at once: a slice's writes
        land about one round trip after its read rather than one round trip per product later
        (the rate limiter still spaces them). If a call fails for good, the others still finish
        before the first failure is raised, so no write is left running unseen."""
        gate = asyncio.Semaphore(self.push_slice or 1)

        async def update(product_id: str, group: dict[str, QuantityUpdate]) -> None:
            async with gate:
                await self._update_product(product_id, group, result)

        outcomes = await asyncio.gather(
            *(update(product_id, group) for product_id, group in groups.items()), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _update_product(
        self, product_id: str, group: dict[str, QuantityUpdate], result: UpdateResult
    ) -> None:
        path = f"/product/202309/products/{product_id}/inventory/update"
        body = {
            "skus": [
                {"id": sku_id, "inventory": self._distribute(sku_id, update.quantity)}
                for sku_id, update in group.items()
            ]
        }
        try:
            data = await self._call("POST", path, body=body)
        except TikTokApiError as exc:
            for update in group.values():
                result.rejected[update.sku] = f"{exc.code}: {exc.remote}"
            return
        try:
            refused, general = read_update_errors(data, f"POST {path}")
        except Invalid as exc:
            raise self._protocol(f"POST {path}", exc) from exc
        for sku_id, update in group.items():
            reason = refused.get(sku_id) or ("; ".join(general) if general else None)
            if reason:
                result.rejected[update.sku] = reason
                # Its warehouses may have changed in Seller Center: look them up afresh next time.
                self._warehouses.pop(sku_id, None)
                self._named.pop(sku_id, None)
            else:
                result.applied[update.sku] = update.quantity
                if sku_id in self._named:
                    self._named[sku_id] = tuple(split_total(self._named[sku_id], update.quantity).items())

    def _distribute(self, sku_id: str, quantity: int) -> list[dict[str, Any]]:
        """With warehouse_ids: every named warehouse of the SKU, by the rule in
        ``connectors/locations.py`` over the levels last read (warehouses not named are left out,
        and keep theirs). Else the whole quantity to one warehouse and 0 to the SKU's others.

        The one is ``settings.warehouse_id`` when the SKU has it, else the SKU's first warehouse
        as TikTok lists it. Zeroing the others makes the shown total equal the target exactly.
        """
        if self.settings.warehouse_ids is not None:
            # Every named warehouse of the SKU is written, so that the named ones add up to the
            # total exactly even when a sale or an edit since the last read moved units.
            split = split_total(self._named[sku_id], quantity)
            return [{"warehouse_id": w, "quantity": q} for w, q in split.items()]
        warehouses = self._warehouses.get(sku_id, ())
        if not warehouses:
            # A SKU with a single default warehouse may omit it.
            return [{"quantity": quantity}]
        chosen = self.settings.warehouse_id if self.settings.warehouse_id in warehouses else warehouses[0]
        return [{"warehouse_id": w, "quantity": quantity if w == chosen else 0} for w in warehouses]

    async def _reread_low(self, groups: dict[str, dict[str, QuantityUpdate]], result: UpdateResult) -> None:
        limit = self.settings.reread_below
        if limit is None:
            return
        low = {
            sku_id: update.sku
            for group in groups.values()
            for sku_id, update in group.items()
            if update.sku in result.applied and update.quantity <= limit
        }
        if not low:
            return
        try:
            stocks = await self._inventory(list(low))
        except ConnectorError as exc:
            # The writes happened; report what was written and let reconcile read it later.
            log.warning("tiktok_shop.reread_failed", channel=self.name, error=str(exc))
            return
        for sku_id, sku in low.items():
            level = self._level(stocks[sku_id], sku) if sku_id in stocks else None
            if level is not None:
                result.read_back[sku] = level

    # ------------------------------------------------------------------ webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        return parse_delivery(
            self.name, self.settings.app_key, self.settings.app_secret.get_secret_value(), headers, body
        )


def _updated_of(raw: Any) -> datetime | None:
    """The change time of an order that could not be read, if that part of it can be."""
    if not isinstance(raw, dict):
        return None
    seconds = raw.get("update_time")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        return None
    try:
        return from_unix(seconds)
    except Invalid:
        return None


def _parse_ref(ref: str) -> tuple[str, str] | None:
    """``<product_id>:<sku_id>``, both non-empty."""
    product_id, sep, sku_id = ref.partition(":")
    if not sep or not product_id or not sku_id or ":" in sku_id:
        return None
    return product_id, sku_id


def _expiry(value: Any, now: datetime) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    if value >= _EPOCH_THRESHOLD:
        return datetime.fromtimestamp(value, UTC)
    return now + timedelta(seconds=value)
