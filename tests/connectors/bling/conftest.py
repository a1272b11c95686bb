"""Fixtures for Bling: an in-process sandbox, authorised connectors wired to it, and a hook client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import MemoryErpRecordStore, MemoryTokenStore
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import BlingSandbox, create_app
from connectors.bling.settings import BlingSettings

CLIENT_ID = "syncd-test-app"
CLIENT_SECRET = "bling-test-secret-9c1e"
BASE_URL = "http://bling.test"


async def no_sleep(seconds: float) -> None:
    """Retry waits of zero: the retry logic runs, the clock does not."""


def bling_settings(**overrides: Any) -> BlingSettings:
    values: dict[str, Any] = {
        "type": "bling",
        "base_url": BASE_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "contact_id": 1,
        "retry_attempts": 3,
        "account_requests_per_second": 10_000,
    }
    values.update(overrides)
    return BlingSettings(**values)


@pytest.fixture
def app() -> Iterator[Starlette]:
    yield create_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, per_second=10_000, seed=3)


@pytest.fixture
def sandbox(app: Starlette) -> BlingSandbox:
    handle: BlingSandbox = app.state.sandbox
    return handle


@pytest.fixture
async def hooks(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the sandbox, for its /_sandbox hooks."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def tokens() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def records() -> MemoryErpRecordStore:
    return MemoryErpRecordStore()


Connect = Callable[..., BlingConnector]


@pytest.fixture
async def connect(
    app: Starlette, tokens: MemoryTokenStore, records: MemoryErpRecordStore
) -> AsyncIterator[Connect]:
    """Build connectors to the sandbox (settings overrides as keywords); all closed after."""
    made: list[BlingConnector] = []

    def build(**overrides: Any) -> BlingConnector:
        connector = BlingConnector(
            bling_settings(**overrides),
            transport=httpx.ASGITransport(app=app),
            tokens=tokens,
            records=records,
            sleep=no_sleep,
        )
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.aclose()


async def authorise(connector: BlingConnector, hooks: httpx.AsyncClient) -> None:
    """The seller's consent, then the code exchange, as ``syncd erp authorize bling`` does it."""
    code = (await hooks.post("/_sandbox/oauth/code")).json()["code"]
    await connector.auth.exchange_code(code)


@pytest.fixture
async def bling(connect: Connect, hooks: httpx.AsyncClient) -> BlingConnector:
    connector = connect()
    await authorise(connector, hooks)
    return connector
