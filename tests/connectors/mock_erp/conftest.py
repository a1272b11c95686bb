"""Fixtures for the mock ERP: an in-process sandbox, connectors wired to it, and a hook client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.mock_erp.client import MockErpConnector
from connectors.mock_erp.sandbox import ErpSandbox, create_app
from connectors.mock_erp.settings import MockErpSettings

API_KEY = "erp-test-key-4f7a"
BASE_URL = "http://erp.test"


async def no_sleep(seconds: float) -> None:
    """Retry waits of zero: the retry logic runs, the clock does not."""


def erp_settings(**overrides: Any) -> MockErpSettings:
    values: dict[str, Any] = {
        "type": "mock_erp",
        "base_url": BASE_URL,
        "api_key": API_KEY,
        "rate_limit": 10_000,
        "burst": 10_000,
        "retry_attempts": 3,
    }
    values.update(overrides)
    return MockErpSettings(**values)


@pytest.fixture
def app() -> Iterator[Starlette]:
    app = create_app(api_key=API_KEY, seed=7)
    yield app
    app.state.sandbox.close()


@pytest.fixture
def sandbox(app: Starlette) -> ErpSandbox:
    handle: ErpSandbox = app.state.sandbox
    return handle


Connect = Callable[..., MockErpConnector]


@pytest.fixture
async def connect(app: Starlette) -> AsyncIterator[Connect]:
    """Build connectors to the sandbox (settings overrides and ``sleep`` as keywords); all closed after."""
    made: list[MockErpConnector] = []

    def build(sleep: Callable[[float], Awaitable[None]] = no_sleep, **overrides: Any) -> MockErpConnector:
        connector = MockErpConnector(
            erp_settings(**overrides), transport=httpx.ASGITransport(app=app), sleep=sleep
        )
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.aclose()


@pytest.fixture
def erp(connect: Connect) -> MockErpConnector:
    return connect()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the sandbox, for its API and its /_sandbox hooks."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def make_settings() -> Callable[..., MockErpSettings]:
    """Connector settings aimed at the test sandbox, with fast rate limits; keywords override."""
    return erp_settings


@pytest.fixture
def api_key() -> str:
    return API_KEY
