"""The HTTP face of the daemon: health, readiness, metrics, status and webhook intake.

With ``api.token`` set, everything but /health, /ready and the (signed) webhooks needs it: a
bearer header, or for a person in a browser ``/status?token=...`` once, which leaves a cookie
derived from the token (never the token itself) that the read-only pages and APIs accept.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from syncd.config import Config, EventSettings
from syncd.engine import Engine
from syncd.engine.intake import Outcome
from syncd.errors import StoreError
from syncd.status.load import daemon_sku, daemon_status
from syncd.status.overview import render_status_page
from syncd.status.sku_page import render_sku_page
from syncd.store import Store

log = structlog.get_logger("syncd.http")

SESSION_COOKIE = "syncd_session"

_WEBHOOK_STATUS = {
    Outcome.RECORDED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.ACCEPTED: 200,
    Outcome.PING: 200,
    Outcome.UNKNOWN_CHANNEL: 404,
    Outcome.BAD_SIGNATURE: 401,
    Outcome.MALFORMED: 400,
    Outcome.LEDGER_FAILED: 503,  # the platform retries later
}


class Host(Protocol):
    """What the HTTP app needs from the process serving it (the daemon), so neither module
    imports the other's internals: the daemon builds the app and passes itself."""

    config: Config
    engine: Engine
    store: Store
    started_at: datetime

    def lifespan(self, app: FastAPI) -> AbstractAsyncContextManager[None]: ...

    def status(self) -> dict[str, Any]: ...

    def replica(self) -> dict[str, Any]: ...

    def schedule_event_replans(self, event: EventSettings) -> None: ...

    def spawn(self, work: Callable[[], Coroutine[Any, Any, Any]], *, name: str) -> asyncio.Task[Any]: ...


def create_app(daemon: Host) -> FastAPI:
    app = FastAPI(title="syncd", docs_url=None, redoc_url=None, openapi_url=None, lifespan=daemon.lifespan)
    engine = daemon.engine
    store = daemon.store

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(connectors: str = "") -> JSONResponse:
        """Ready while the ledger takes a write, so webhooks are recorded: one channel down does
        not stop the others' webhooks behind a readiness probe. The connectors' state is detail;
        ``?connectors=all`` also fails on any of them (for monitoring, not for load balancers).
        ``syncer`` says whether this replica holds the shop's lease; a standby is ready too (it
        takes webhooks), and its connectors are not judged (only the syncer calls them)."""
        ledger: list[str] = []
        try:
            await asyncio.to_thread(store.probe_write, engine.clock())
        except StoreError as exc:
            ledger.append(f"ledger: {exc}")
        replica = daemon.replica()
        degraded = engine.readiness(daemon.config.readiness.max_success_age) if replica["syncer"] else []
        circuits = {
            name: circuit.state
            for name, connector in [(engine.erp.name, engine.erp), *engine.channels.items()]
            if (circuit := connector.circuit) is not None and circuit.state != "closed"
        }
        degraded += [f"{name}: circuit {state}" for name, state in sorted(circuits.items())]
        failing = ledger + (degraded if connectors == "all" else [])
        body: dict[str, object] = {
            "ready": not failing,
            "degraded": degraded,
            "syncer": replica["syncer"],
            "lease": replica["lease"],
        }
        if failing:
            body["reasons"] = failing
        return JSONResponse(body, status_code=503 if failing else 200)

    token = daemon.config.api.token
    session = _session_value(token.get_secret_value()) if token is not None else ""

    def bearer_ok(request: Request) -> bool:
        if token is None:
            return False
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode())

    def reader(request: Request, *, page: bool = False) -> Response | None:
        """None when the request may read status (no token configured, the bearer token, or the
        session cookie); else the answer to send. On a page, a right ``?token=`` sets the cookie
        and redirects to the same address without it, so the token leaves the address bar."""
        if token is None or bearer_ok(request):
            return None
        if hmac.compare_digest(request.cookies.get(SESSION_COOKIE, "").encode(), session.encode()):
            return None
        given = request.query_params.get("token")
        if page and given is not None and hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            answer = RedirectResponse(quote(request.url.path) + (f"?{rest}" if rest else ""), status_code=303)
            answer.set_cookie(
                SESSION_COOKIE,
                session,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return answer
        if page:
            return HTMLResponse(_LOCKED_PAGE, status_code=401)
        return JSONResponse(
            {"error": "missing or wrong bearer token (api.token)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if (refusal := reader(request)) is not None:
            return refusal
        body = await asyncio.to_thread(engine.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/status")
    async def api_status(request: Request) -> Response:
        if (refusal := reader(request)) is not None:
            return refusal
        return JSONResponse(await asyncio.to_thread(daemon_status, daemon))

    @app.get("/status", response_class=HTMLResponse)
    async def status_page(request: Request, sku: str | None = None) -> Response:
        if (refusal := reader(request, page=True)) is not None:
            return refusal
        if sku and sku.strip():  # the page's search box
            return RedirectResponse(f"/status/sku/{quote(sku.strip(), safe='')}", status_code=303)
        return HTMLResponse(render_status_page(await asyncio.to_thread(daemon_status, daemon)))

    @app.get("/status/sku/{sku:path}", response_class=HTMLResponse)
    async def sku_page(sku: str, request: Request) -> Response:
        if (refusal := reader(request, page=True)) is not None:
            return refusal
        status, report, near = await asyncio.to_thread(daemon_sku, daemon, sku)
        found = report["known"] or bool(report["channels"])
        return HTMLResponse(render_sku_page(status, report, near), status_code=200 if found else 404)

    @app.get("/api/status/sku/{sku:path}")
    async def api_sku(sku: str, request: Request) -> Response:
        if (refusal := reader(request)) is not None:
            return refusal
        _, report, near = await asyncio.to_thread(daemon_sku, daemon, sku)
        found = report["known"] or bool(report["channels"])
        return JSONResponse(
            report if found else {"error": f"no SKU named {sku!r}", "similar": near},
            status_code=200 if found else 404,
        )

    def authorised(request: Request) -> JSONResponse | None:
        """None when the request carries the API token as a bearer header (a change needs the
        header: a browser sends the cookie with any site's form); else the error response."""
        if token is None:
            return JSONResponse({"error": "no API token is configured (api.token)"}, status_code=403)
        if not bearer_ok(request):
            return JSONResponse(
                {"error": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    @app.get("/api/events")
    async def list_events(request: Request) -> Response:
        if (refusal := reader(request)) is not None:
            return refusal
        now = engine.clock()
        return JSONResponse(
            [{**e.model_dump(mode="json"), "active": e.active(now)} for e in engine.events if e.end > now]
        )

    @app.post("/api/events")
    async def add_event(request: Request) -> JSONResponse:
        if (refusal := authorised(request)) is not None:
            return refusal
        try:
            event = EventSettings.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False)
            ]
            return JSONResponse({"error": "invalid event", "problems": problems}, status_code=400)
        if event.channel not in engine.channels:
            return JSONResponse(
                {"error": f"unknown channel {event.channel!r}; channels: {sorted(engine.channels)}"},
                status_code=400,
            )
        engine.save_event(event)
        daemon.schedule_event_replans(event)
        return JSONResponse(event.model_dump(mode="json"), status_code=201)

    @app.delete("/api/events/{name}")
    async def delete_event(name: str, request: Request) -> JSONResponse:
        if (refusal := authorised(request)) is not None:
            return refusal
        if not engine.delete_event(name):
            return JSONResponse({"error": f"no event named {name!r}"}, status_code=404)
        daemon.spawn(engine.replan_all, name="replan")
        return JSONResponse({"deleted": name})

    # Declared before the channels' route, which would otherwise take "erp" for a channel name.
    @app.post("/webhooks/erp")
    async def erp_webhook(request: Request) -> JSONResponse:
        limit = daemon.config.server.max_webhook_body
        body = await _read_at_most(request, limit)
        if body is None:
            log.warning("webhook.too_large", channel="erp", limit=limit)
            return JSONResponse(
                {"error": f"webhook body is larger than {limit} bytes (server.max_webhook_body)"},
                status_code=413,
            )
        receipt = engine.erp_events.receive(request.headers, body)
        status = _WEBHOOK_STATUS[receipt.outcome]
        if receipt.error:
            return JSONResponse({"error": receipt.error}, status_code=status)
        answer: dict[str, object] = {"ok": True}
        if receipt.outcome is Outcome.DUPLICATE:
            answer["duplicate"] = True
        return JSONResponse(answer, status_code=status)

    @app.post("/webhooks/{channel}")
    async def webhook(channel: str, request: Request) -> JSONResponse:
        limit = daemon.config.server.max_webhook_body
        body = await _read_at_most(request, limit)
        if body is None:
            log.warning("webhook.too_large", channel=channel, limit=limit)
            return JSONResponse(
                {"error": f"webhook body is larger than {limit} bytes (server.max_webhook_body)"},
                status_code=413,
            )
        receipt = await engine.intake.receive(channel, request.headers, body)
        status = _WEBHOOK_STATUS[receipt.outcome]
        if receipt.error:
            return JSONResponse({"error": receipt.error}, status_code=status)
        answer: dict[str, object] = {"ok": True}
        if receipt.outcome is Outcome.ACCEPTED:
            answer["accepted"] = True
        elif receipt.outcome is Outcome.DUPLICATE:
            answer["duplicate"] = True
        elif receipt.outcome is Outcome.RECORDED:
            answer |= {"lines": receipt.lines, "new": receipt.new}
        return JSONResponse(answer, status_code=status)

    return app


def _session_value(token: str) -> str:
    """The cookie a browser keeps after ``?token=``: derived from the token, so a leaked cookie
    reads status but cannot make changes, and changing the token ends every session."""
    return hmac.new(token.encode(), b"syncd status session", hashlib.sha256).hexdigest()


_LOCKED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncd: token needed</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>syncd needs its API token</h1>
<p>This daemon has <code>api.token</code> set. Open <code>/status?token=</code> followed by that token
once; the browser then keeps a session cookie for these pages.</p>
</body></html>
"""


async def _read_at_most(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is known to exceed ``limit`` bytes: read a chunk at a
    time and dropped as soon as it is too large, so an oversized body never sits in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
