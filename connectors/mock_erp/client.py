"""The ErpConnector for the mock ERP's REST API (see ``connectors/mock_erp/sandbox.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
import structlog

from connectors.base import CircuitState, ErpConnector, Movement, Quarantined, StockPage, StockRecord
from connectors.circuit import CircuitBreaker
from connectors.http import HttpClient, RateLimiter, RetryPolicy
from connectors.mock_erp.settings import MockErpSettings
from connectors.mock_erp.wire import imported_answer, movements_answer, stock_answer, warehouses_answer
from syncd.errors import ConnectorError, ProtocolError

log = structlog.get_logger(__name__)

MOVEMENTS_PER_REQUEST = 500
# Keeps the query string of GET /imported-orders well under common URL length limits.
REFS_PER_REQUEST = 100


class MockErpConnector(ErpConnector):
    def __init__(
        self,
        settings: MockErpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        circuit: CircuitBreaker | None = None,
    ):
        self.settings = settings
        self.name = settings.name
        self._circuit = circuit or CircuitBreaker.for_settings(settings.name, settings)
        self._http = HttpClient(
            settings.name,
            settings.base_url,
            headers={
                "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
                "Accept": "application/json",
            },
            timeout=settings.timeout.total_seconds(),
            rate_limiter=RateLimiter(settings.rate_limit, settings.burst),
            retry=RetryPolicy(attempts=settings.retry_attempts),
            transport=transport,
            sleep=sleep,
            circuit=self._circuit,
        )
        self._warehouses_checked = settings.warehouses is None

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def circuit(self) -> CircuitState | None:
        return self._circuit.snapshot()

    async def read_stock(self) -> list[StockRecord]:
        return (await self._read_pages(None)).records

    async def stock_changes(self, cursor: str | None) -> StockPage:
        return await self._read_pages(cursor)

    async def _check_warehouses(self) -> None:
        """Once: every configured warehouse exists (a wrong name would read as 0 units)."""
        if self._warehouses_checked:
            return
        response = await self._http.request("GET", "/api/v1/warehouses")
        known = warehouses_answer(response, self.name)
        unknown = [w for w in self.settings.warehouses or () if w not in known]
        if unknown:
            raise ConnectorError(
                f"warehouses {unknown} of the settings are not in the ERP; its warehouses: {', '.join(known)}",
                connector=self.name,
            )
        self._warehouses_checked = True

    async def _read_pages(self, since: str | None) -> StockPage:
        await self._check_warehouses()
        params: dict[str, str | int] = {"limit": self.settings.page_size}
        if since is not None:
            params["since"] = since
        # A SKU changed while paging comes again on a later page; keep its last (newest) record.
        latest: dict[str, StockRecord] = {}
        quarantined: list[Quarantined] = []
        tokens: set[str] = set()
        while True:
            response = await self._http.request("GET", "/api/v1/stock", params=params)
            answer = stock_answer(
                response,
                self.name,
                max_quantity=self.settings.max_quantity,
                warehouses=self.settings.warehouses,
            )
            for record in answer.records:
                latest.pop(record.sku, None)
                latest[record.sku] = record
            for item in answer.quarantined:
                # Its newest record is refused: an older one from an earlier page is no better.
                if item.ref is not None:
                    latest.pop(item.ref, None)
            quarantined.extend(answer.quarantined)
            token = answer.next_page_token
            if token is None:
                return StockPage(records=list(latest.values()), cursor=answer.cursor, quarantined=quarantined)
            if token in tokens:
                raise ProtocolError(
                    f"GET /api/v1/stock answered a page token it gave before ({token[:40]!r})",
                    connector=self.name,
                )
            tokens.add(token)
            params = {"limit": self.settings.page_size, "page_token": token}

    async def record_movements(self, movements: Sequence[Movement]) -> list[str]:
        await self._check_warehouses()
        # Taken from the warehouses that count, so the units a sale takes are the units syncd counted.
        where = {"warehouses": list(self.settings.warehouses)} if self.settings.warehouses else {}
        acknowledged: list[str] = []
        for start in range(0, len(movements), MOVEMENTS_PER_REQUEST):
            chunk = movements[start : start + MOVEMENTS_PER_REQUEST]
            payload = {
                "movements": [
                    {
                        "key": m.key,
                        "sku": m.sku,
                        "delta": m.delta,
                        "reason": m.reason,
                        "reference": m.reference,
                    }
                    | where
                    for m in chunk
                ]
            }
            response = await self._http.request("POST", "/api/v1/movements", json=payload)
            answer = movements_answer(response, self.name, sent={m.key for m in chunk})
            acknowledged.extend(answer.acknowledged)
            sku_of = {m.key: m.sku for m in chunk}
            for key, reason in answer.rejected:
                log.warning(
                    "erp.movement_rejected", connector=self.name, key=key, sku=sku_of[key], reason=reason
                )
        return acknowledged

    async def imported_orders(self, order_refs: Sequence[str]) -> set[str]:
        # The API takes a comma-separated list, so a reference holding a comma cannot be asked about
        # (and stays unimported, the safe answer: its reservation keeps counting).
        refs = [r for r in dict.fromkeys(order_refs) if r and "," not in r]
        imported: set[str] = set()
        for start in range(0, len(refs), REFS_PER_REQUEST):
            chunk = refs[start : start + REFS_PER_REQUEST]
            response = await self._http.request(
                "GET", "/api/v1/imported-orders", params={"refs": ",".join(chunk)}
            )
            imported |= imported_answer(response, self.name, asked=set(chunk))
        return imported
