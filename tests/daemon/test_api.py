"""The HTTP API in-process: events are token-protected and validated; status and readiness."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from syncd.daemon import Daemon
from tests.daemon.conftest import make_config

TOKEN = "api-token-for-tests-42"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    config = make_config(tmp_path, api={"token": TOKEN})
    daemon = Daemon(config)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd"
    ) as client:
        yield daemon, client
    await daemon.supervisor.cancel()
    await daemon.engine.aclose()
    daemon.store.close()


EVENT = {
    "name": "friday-live",
    "channel": "webstore",
    "start": "2030-01-01T18:00:00Z",
    "end": "2030-01-01T20:00:00Z",
    "reserve": 50,
}


async def test_events_need_the_token(api: tuple[Daemon, httpx.AsyncClient]) -> None:
    """Without or with a wrong bearer token the event is refused (401) and not saved."""
    daemon, client = api
    assert (await client.post("/api/events", json=EVENT)).status_code == 401
    wrong = await client.post("/api/events", json=EVENT, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert daemon.engine.events == []


async def test_event_is_validated_saved_listed_and_deleted(api: tuple[Daemon, httpx.AsyncClient]) -> None:
    """A good event is 201 and listed; bad ones are 400 naming the field; delete removes it."""
    _, client = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = await client.post("/api/events", json={**EVENT, "end": "2029-01-01T00:00:00Z"}, headers=auth)
    assert bad.status_code == 400 and "end must be after start" in str(bad.json()["problems"])
    unknown = await client.post("/api/events", json={**EVENT, "channel": "mall"}, headers=auth)
    assert unknown.status_code == 400 and "mall" in unknown.json()["error"]
    naive = await client.post("/api/events", json={**EVENT, "start": "2030-01-01T18:00:00"}, headers=auth)
    assert naive.status_code == 400 and "start" in str(naive.json()["problems"])
    created = await client.post("/api/events", json=EVENT, headers=auth)
    assert created.status_code == 201
    listed = (await client.get("/api/events", headers=auth)).json()
    assert [(e["name"], e["active"]) for e in listed] == [("friday-live", False)]
    assert (await client.delete("/api/events/friday-live", headers=auth)).status_code == 200
    assert (await client.get("/api/events", headers=auth)).json() == []
    assert (await client.delete("/api/events/friday-live", headers=auth)).status_code == 404


async def test_no_token_configured_means_events_api_is_off(tmp_path: Path) -> None:
    """Without api.token the events API answers 403 rather than accepting anyone."""
    daemon = Daemon(make_config(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd"
    ) as client:
        response = await client.post("/api/events", json=EVENT, headers={"Authorization": "Bearer x"})
    assert response.status_code == 403 and "api.token" in response.json()["error"]
    await daemon.engine.aclose()
    daemon.store.close()


async def test_status_and_readiness_before_any_cycle(api: tuple[Daemon, httpx.AsyncClient]) -> None:
    """Before the first cycle /ready is 200 (the ledger takes webhooks) naming each connector as
    degraded, and 503 with ?connectors=all; /api/status has no secret."""
    _, client = api
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert any(r.startswith("erp:") for r in ready.json()["degraded"])
    strict = await client.get("/ready", params={"connectors": "all"})
    assert strict.status_code == 503
    assert any(r.startswith("erp:") for r in strict.json()["reasons"])
    status = (await client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})).text
    assert TOKEN not in status and "propagation_seconds" in status


READ_PATHS = ["/status", "/status/sku/TEE-1", "/api/status", "/api/status/sku/TEE-1", "/api/events", "/metrics"]


async def test_status_and_metrics_need_the_token_health_and_ready_do_not(
    api: tuple[Daemon, httpx.AsyncClient],
) -> None:
    """With api.token set, every status, events and metrics read is 401 without it or with a wrong
    one, and answers with the bearer token; /health and /ready answer anyone."""
    _, client = api
    for path in READ_PATHS:
        assert (await client.get(path)).status_code == 401, path
        wrong = await client.get(path, headers={"Authorization": "Bearer api-token-for-tests-43"})
        assert wrong.status_code == 401 and TOKEN not in wrong.text, path
        right = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code in (200, 404), (path, right.status_code)  # 404: no such SKU yet
    refused = await client.get("/api/status")
    assert refused.headers["www-authenticate"] == "Bearer" and "api.token" in refused.json()["error"]
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_every_read_route_but_health_and_ready_is_guarded(api: tuple[Daemon, httpx.AsyncClient]) -> None:
    """No GET route the app serves, bar /health and /ready, answers without the token (a new
    route that forgets the guard fails here)."""
    daemon, client = api
    paths = {
        route.path.replace("{sku:path}", "TEE-1")
        for route in daemon.app().routes
        if "GET" in getattr(route, "methods", set())
    }
    assert set(READ_PATHS) <= paths
    for path in sorted(paths - {"/health", "/ready"}):
        assert (await client.get(path)).status_code == 401, path


async def test_a_browser_opens_the_page_with_the_token_once(api: tuple[Daemon, httpx.AsyncClient]) -> None:
    """/status without the token explains how to open it; /status?token=... redirects to the
    address without the token and leaves an HttpOnly cookie (not the token) that the pages and
    read APIs accept, but that cannot change events."""
    daemon, client = api
    locked = await client.get("/status")
    assert locked.status_code == 401 and "/status?token=" in locked.text
    assert (await client.get("/status", params={"token": "api-token-for-tests-43"})).status_code == 401
    opened = await client.get("/status/sku/TEE-1", params={"token": TOKEN, "x": "1"})
    assert opened.status_code == 303 and opened.headers["location"] == "/status/sku/TEE-1?x=1"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = await client.get("/status")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200 and "<h1>" in page.text
    assert (await client.get("/api/status")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.post("/api/events", json=EVENT)).status_code == 401
    assert daemon.engine.events == []
    # The token itself is no cookie, and ?token= opens pages only, not the APIs.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd", cookies={"syncd_session": TOKEN}
    ) as other:
        assert (await other.get("/status")).status_code == 401
        assert (await other.get("/api/status", params={"token": TOKEN})).status_code == 401


async def test_without_a_token_status_and_metrics_are_open(tmp_path: Path) -> None:
    """With no api.token (a daemon on loopback, say), status, events and metrics answer anyone."""
    daemon = Daemon(make_config(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd"
    ) as client:
        for path in READ_PATHS:
            assert (await client.get(path)).status_code in (200, 404), path
    await daemon.engine.aclose()
    daemon.store.close()


async def test_empty_token_turns_the_api_off(tmp_path: Path) -> None:
    """An empty api.token (an unset variable) disables the events API instead of matching "Bearer "."""
    daemon = Daemon(make_config(tmp_path, api={"token": ""}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app()), base_url="http://syncd"
    ) as client:
        response = await client.post("/api/events", json=EVENT, headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    await daemon.engine.aclose()
    daemon.store.close()



def test_the_http_app_and_the_daemon_do_not_import_each_other() -> None:
    """syncd.app never imports syncd.daemon (not even for type checking: it declares the Host it
    needs), and the daemon imports the app once, at the top, not from inside a method."""
    import ast

    import syncd.app
    import syncd.daemon

    def imports(module: object) -> list[tuple[str, bool]]:
        tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
        top = {id(node) for node in tree.body}
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, id(node) in top))
            elif isinstance(node, ast.Import):
                found += [(alias.name, id(node) in top) for alias in node.names]
        return found

    assert not [name for name, _ in imports(syncd.app) if name.startswith("syncd.daemon")]
    assert [at_top for name, at_top in imports(syncd.daemon) if name == "syncd.app"] == [True]


async def test_ready_fails_when_the_ledger_cannot_write(
    api: tuple[Daemon, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A ledger that answers reads but refuses writes (a full disk) makes /ready 503 naming the
    ledger: webhooks could not be recorded."""
    _, client = api
    refuse = sqlite3.connect(tmp_path / "syncd.db")
    try:
        for when in ("INSERT", "UPDATE"):
            refuse.execute(
                f"CREATE TRIGGER full_{when.lower()} BEFORE {when} ON cursor "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        refuse.commit()
    finally:
        refuse.close()
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert any(r.startswith("ledger:") and "disk is full" in r for r in ready.json()["reasons"])


async def test_status_command_sends_the_configs_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syncd status` reads /api/status of a daemon with api.token set using the config's token;
    with --url it takes SYNCD_API_TOKEN, and without a token it says what the daemon answered."""
    import asyncio

    import uvicorn
    import yaml

    from syncd.cli import main
    from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET
    from tests.daemon.test_e2e import free_port

    port = free_port()
    data = {
        "database_url": f"sqlite:///{tmp_path / 'syncd.db'}",
        "server": {"host": "127.0.0.1", "port": port},
        "api": {"token": TOKEN},
        "erp": {"type": "mock_erp", "base_url": "http://erp.test", "api_key": ERP_KEY},
        "channels": [
            {
                "name": "webstore",
                "type": "woocommerce",
                "base_url": "http://shop.test",
                "consumer_key": WC_KEY,
                "consumer_secret": WC_SECRET,
            }
        ],
    }
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(make_config(tmp_path, server=data["server"], api=data["api"]))
    server = uvicorn.Server(uvicorn.Config(daemon.app(), host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        monkeypatch.delenv("SYNCD_API_TOKEN", raising=False)
        assert await asyncio.to_thread(main, ["status", "--config", str(path)]) == 0
        assert "webstore" in capsys.readouterr().out
        url = f"http://127.0.0.1:{port}"
        assert await asyncio.to_thread(main, ["status", "--url", url]) == 1
        assert "401" in capsys.readouterr().err
        monkeypatch.setenv("SYNCD_API_TOKEN", TOKEN)
        assert await asyncio.to_thread(main, ["status", "--url", url, "--json"]) == 0
        assert TOKEN not in capsys.readouterr().out
    finally:
        server.should_exit = True
        await serving
        await daemon.engine.aclose()
        daemon.store.close()
