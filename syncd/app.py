"""The HTTP face of the daemon: health, readiness, metrics, status and webhook intake."""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from syncd.config import EventSettings
from syncd.engine import WEBHOOK_DEDUPE_TTL
from syncd.errors import PayloadError, SignatureError, StoreError
from syncd.status_page import render_status_page

if TYPE_CHECKING:
    from syncd.daemon import Daemon

log = structlog.get_logger("syncd.http")


def create_app(daemon: Daemon) -> FastAPI:
    app = FastAPI(title="syncd", docs_url=None, redoc_url=None, openapi_url=None, lifespan=daemon.lifespan)
    engine = daemon.engine
    store = daemon.store

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        reasons = []
        try:
            await asyncio.to_thread(store.ping)
        except StoreError as exc:
            reasons.append(f"store: {exc}")
        reasons += engine.readiness(daemon.config.readiness.max_success_age)
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await asyncio.to_thread(engine.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/status")
    async def api_status() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(daemon.status))

    @app.get("/status", response_class=HTMLResponse)
    async def status_page() -> HTMLResponse:
        return HTMLResponse(render_status_page(await asyncio.to_thread(daemon.status)))

    def authorised(request: Request) -> JSONResponse | None:
        """None when the request carries the API token; else the error response to send."""
        token = daemon.config.api.token
        if token is None:
            return JSONResponse({"error": "no API token is configured (api.token)"}, status_code=403)
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        return None

    @app.get("/api/events")
    async def list_events() -> JSONResponse:
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
        daemon.spawn(engine.replan_all(), name="replan")
        return JSONResponse({"deleted": name})

    @app.post("/webhooks/{channel}")
    async def webhook(channel: str, request: Request) -> JSONResponse:
        connector = engine.channels.get(channel)
        if connector is None:
            return JSONResponse({"error": f"no channel named {channel!r}"}, status_code=404)
        body = await request.body()
        try:
            event = connector.parse_webhook(request.headers, body)
        except SignatureError as exc:
            log.warning("webhook.refused", channel=channel, reason=str(exc))
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        except PayloadError as exc:
            log.warning("webhook.malformed", channel=channel, reason=str(exc), delivery=_delivery_id(request))
            return JSONResponse({"error": f"malformed payload: {exc}"}, status_code=400)
        if event.ping:
            return JSONResponse({"ok": True})
        dedupe = f"{channel}:{event.dedupe_key}" if event.dedupe_key else None
        if not connector.webhooks_carry_lines:
            # The lines must be fetched: do it after answering, and only then remember the
            # delivery, so a redelivery after a failed fetch is not thrown away.
            engine.fetch_later(channel, event, dedupe)
            return JSONResponse({"ok": True, "accepted": True})
        if dedupe and store.mark_webhook_seen(dedupe, engine.clock(), WEBHOOK_DEDUPE_TTL):
            return JSONResponse({"ok": True, "duplicate": True})
        # Record the lines before answering, so a 200 means the sale is in the ledger; the pushes
        # it causes happen after the answer.
        result = engine.ingest(event.lines)
        if result.touched_skus:
            engine.touch(result.touched_skus)
        return JSONResponse({"ok": True, "lines": len(event.lines), "new": len(result.new)})

    return app


def _delivery_id(request: Request) -> str | None:
    for header in ("x-wc-webhook-delivery-id", "x-shopify-webhook-id", "x-tts-notification-id"):
        if header in request.headers:
            return request.headers[header]
    return None
