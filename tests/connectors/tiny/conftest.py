"""Fixtures for Tiny: a sandbox on a simulated clock, an authorised seller, connectors to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import MemoryErpRecordStore, MemoryTokenStore
from connectors.tiny.client import TinyConnector
from connectors.tiny.sandbox import create_app
from connectors.tiny.sandbox_account import Account
from tests.connectors.tiny.support import BASE, CLIENT_ID, CLIENT_SECRET, FakeTime, authorise, build


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def app(clock: FakeTime) -> Starlette:
    return create_app(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        requests_per_minute=100_000,
        seed=7,
        account=Account(clock=clock),
    )


@pytest.fixture
async def hooks(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client on the sandbox, for its ``/_sandbox`` hooks."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as client:
        yield client


@pytest.fixture
async def tokens(app: Starlette, clock: FakeTime) -> MemoryTokenStore:
    store = MemoryTokenStore()
    await authorise(app, store, clock)
    return store


@pytest.fixture
def records() -> MemoryErpRecordStore:
    return MemoryErpRecordStore()


Connect = Callable[..., TinyConnector]


@pytest.fixture
async def connect(
    app: Starlette, clock: FakeTime, tokens: MemoryTokenStore, records: MemoryErpRecordStore
) -> AsyncIterator[Connect]:
    """Connectors to the sandbox sharing the seller's tokens and records (keywords override)."""
    made: list[TinyConnector] = []

    def make(**overrides: Any) -> TinyConnector:
        overrides.setdefault("tokens", tokens)
        overrides.setdefault("records", records)
        connector = build(app, clock, **overrides)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()


@pytest.fixture
def erp(connect: Connect) -> TinyConnector:
    return connect()
