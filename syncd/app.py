"""The HTTP face of the daemon: health, readiness, metrics, status and webhook intake."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from syncd.errors import PayloadError, SignatureError, StoreError
from syncd.status_page import render_status_page

if TYPE_CHECKING:
    from syncd.daemon import Daemon

log = structlog.get_logger("syncd.http")

WEBHOOK_DEDUPE_TTL = timedelta(days=7)


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
        if event.dedupe_key and store.mark_webhook_seen(
            f"{channel}:{event.dedupe_key}", engine.clock(), WEBHOOK_DEDUPE_TTL
        ):
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
