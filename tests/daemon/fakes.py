"""In-memory stand-ins for the connector contracts (connectors/base.py), for engine tests that
need to see each call a sender makes: a channel that records its reads and writes and an ERP
that holds a stock table. They implement the contracts; nothing in the engine is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.base import (
    ChannelConnector,
    ErpConnector,
    Listing,
    Movement,
    OrderPage,
    QuantityUpdate,
    StockPage,
    StockRecord,
    UpdateResult,
    WebhookEvent,
)
from syncd.config import Config
from syncd.engine import Engine
from syncd.errors import PayloadError
from syncd.store import Store
from tests.daemon.conftest import make_config


@dataclass
class Call:
    kind: str  # "read" | "write"
    skus: list[str]
    quantities: dict[str, int] = field(default_factory=dict)
    urgent: bool = False
    paired: int = 0  # the turns taken together by the pairing this call was made in (0: none)


class FakeChannel(ChannelConnector):
    """A channel holding ``shown`` per SKU that takes every write, records each call, and can run
    a hook before answering one (to act while a call is out)."""

    def __init__(
        self,
        name: str,
        shown: Mapping[str, int],
        *,
        max_batch: int = 100,
        push_slice: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.shown = dict(shown)
        self.max_batch = max_batch
        self.push_slice = push_slice
        self.delay = delay
        self.calls: list[Call] = []
        self.on_call: Callable[[Call], Awaitable[None]] | None = None
        self._pairing = 0

    @contextmanager
    def paired(self, calls: int) -> Iterator[None]:
        self._pairing = calls
        try:
            yield
        finally:
            self._pairing = 0

    async def _answer(self, call: Call) -> None:
        call.paired = self._pairing
        self.calls.append(call)
        if self.on_call is not None:
            await self.on_call(call)
        if self.delay:
            await asyncio.sleep(self.delay)

    def writes(self) -> list[list[str]]:
        return [c.skus for c in self.calls if c.kind == "write"]

    def reads(self) -> list[list[str]]:
        return [c.skus for c in self.calls if c.kind == "read"]

    async def list_listings(self) -> list[Listing]:
        return [Listing(sku, f"ref-{sku}", quantity) for sku, quantity in sorted(self.shown.items())]

    async def read_quantities(self, listings: Sequence[Listing], *, urgent: bool = False) -> dict[str, int]:
        await self._answer(Call("read", [x.sku for x in listings], urgent=urgent))
        return {x.sku: self.shown[x.sku] for x in listings if x.sku in self.shown}

    async def set_quantities(self, updates: Sequence[QuantityUpdate], *, urgent: bool = False) -> UpdateResult:
        await self._answer(
            Call("write", [u.sku for u in updates], {u.sku: u.quantity for u in updates}, urgent=urgent)
        )
        for update in updates:
            self.shown[update.sku] = update.quantity
        return UpdateResult(applied={u.sku: u.quantity for u in updates})

    async def orders_since(self, since: datetime, *, urgent: bool = False) -> OrderPage:
        return OrderPage([], None)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayloadError("the fake channel takes no webhooks", connector=self.name)


class FakeErp(ErpConnector):
    def __init__(self, stock: Mapping[str, int]) -> None:
        self.name = "erp"
        self.stock = dict(stock)

    async def read_stock(self) -> list[StockRecord]:
        return [StockRecord(sku, on_hand) for sku, on_hand in sorted(self.stock.items())]

    async def stock_changes(self, cursor: str | None) -> StockPage:
        return StockPage(await self.read_stock(), None)

    async def record_movements(self, movements: Sequence[Movement]) -> list[str]:
        return [m.key for m in movements]


def fake_config(tmp_path: Path, stock: dict[str, Any], channels: Sequence[str]) -> Config:
    """Settings for fake channels (their type is irrelevant: the engine sees only the contract)."""
    return make_config(
        tmp_path,
        stock=stock,
        channels=[
            {
                "name": name,
                "type": "woocommerce",
                "base_url": f"http://{name}.test",
                "consumer_key": "ck_x",
                "consumer_secret": "cs_x",
                "policy": {"priority": rank + 1},
            }
            for rank, name in enumerate(channels)
        ],
    )


@asynccontextmanager
async def fake_engine(
    tmp_path: Path, stock: dict[str, Any], erp: Mapping[str, int], *channels: FakeChannel
) -> AsyncIterator[Engine]:
    """An Engine over a fresh SQLite ledger, the fake ERP and the given fake channels."""
    config = fake_config(tmp_path, stock, [c.name for c in channels])
    store = Store(config.database_url)
    store.migrate()
    engine = Engine(config, store, FakeErp(erp), {c.name: c for c in channels})
    try:
        yield engine
    finally:
        await engine.aclose()
        store.close()
