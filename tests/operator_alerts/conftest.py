"""A local webhook receiver served on 127.0.0.1, and ledgers on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.store import Store

PG_URL = os.environ.get("SYNCD_TEST_DATABASE_URL")


@dataclass
class Receiver:
    """Records every POST to ``/hook/{name}/{token}``; answers ``fail`` more requests with ``status``."""

    url: str = ""
    received: list[tuple[str, Any]] = field(default_factory=list)
    fail: int = 0
    status: int = 503
    attempts: int = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.attempts += 1
            if self.fail > 0:
                self.fail -= 1
                return Response(status_code=self.status)
            self.received.append((request.path_params["name"], await request.json()))
            return Response(status_code=200)

        return Starlette(routes=[Route("/hook/{name}/{token}", hook, methods=["POST"])])

    def texts(self, name: str = "slack") -> list[str]:
        return [body["text"] for hook, body in self.received if hook == name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver served by uvicorn on a free port of 127.0.0.1, in the test's event loop."""
    found = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    found.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(found.app(), log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the receiver did not start"
    yield found
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgres",
            id="postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="SYNCD_TEST_DATABASE_URL is not set"),
            ],
        ),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    assert PG_URL
    url = make_url(PG_URL)
    url = url.set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    schema = f"syncd_alerts_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    opened.migrate()
    yield opened
    opened.close()
