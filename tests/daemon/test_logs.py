"""Logging: secrets are masked wherever they appear, and the output is JSON off a terminal, library
lines (APScheduler, uvicorn) included."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from datetime import UTC, datetime

import pytest
import structlog
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from syncd.logs import configure_logging


def test_secrets_are_masked_in_every_field() -> None:
    """A secret in the message, a field, a nested value or an exception text is printed as ***."""
    stream = io.StringIO()
    configure_logging("info", "auto", ["ck_live_topsecret", "erp-key-42"], stream=stream)
    log = structlog.get_logger("t")
    log.info(
        "event with ck_live_topsecret",
        url="http://x/?consumer_key=ck_live_topsecret",
        nested={"k": ["erp-key-42"]},
    )
    try:
        raise RuntimeError("auth failed for erp-key-42")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert "ck_live_topsecret" not in out and "erp-key-42" not in out
    assert out.count("***") >= 3
    first = json.loads(out.splitlines()[0])  # a StringIO is not a terminal: JSON
    assert first["level"] == "info" and "timestamp" in first


def test_level_filters_debug() -> None:
    """At level info, debug lines are dropped."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    structlog.get_logger("t").debug("hidden")
    structlog.get_logger("t").info("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a line of the log is not JSON: {line!r}") from None
    return parsed


class _Seen(logging.Handler):
    """Sets ``found`` when a record with ``text`` is logged."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.found = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.found.set()


async def test_scheduler_skip_warning_is_a_json_event() -> None:
    """APScheduler's "skipped: maximum number of running instances" line comes out as a JSON event."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    release = asyncio.Event()

    async def busy() -> None:
        await release.wait()

    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True})
    scheduler.add_job(busy, "interval", seconds=0.1, id="reconcile", next_run_time=datetime.now(UTC))
    seen = _Seen("maximum number of running instances")
    logging.getLogger("apscheduler").addHandler(seen)
    scheduler.start()
    try:
        await asyncio.wait_for(seen.found.wait(), timeout=30)
    finally:
        release.set()
        scheduler.shutdown(wait=False)
        logging.getLogger("apscheduler").removeHandler(seen)
    events = _json_lines(stream.getvalue())
    skipped = next(e for e in events if "maximum number of running instances" in str(e["event"]))
    assert skipped["level"] == "warning"
    assert str(skipped["logger"]).startswith("apscheduler")
    assert "timestamp" in skipped
    # Job starts and finishes (info) stay out of the log: one line per cycle comes from syncd itself.
    assert not any("Running job" in str(e["event"]) for e in events)


async def test_uvicorn_bind_error_is_a_json_event() -> None:
    """uvicorn's error on a taken port is a JSON event with its logger's name; its start-up info
    lines (which repeat daemon.started) stay out at level info."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        raise RuntimeError("not called")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
        with pytest.raises(SystemExit):
            await server.serve()
    events = _json_lines(stream.getvalue())
    errors = [e for e in events if e["level"] == "error"]
    assert errors and errors[0]["logger"] == "uvicorn.error" and str(port) in str(errors[0]["event"])
    assert not any("Started server process" in str(e["event"]) for e in events)


async def test_uvicorn_start_up_lines_show_at_debug() -> None:
    """At level debug, uvicorn's start-up lines come through, as JSON."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        raise RuntimeError("not called")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), stream.getvalue()
        await asyncio.sleep(0.05)
    server.should_exit = True
    await task
    configure_logging("info", "json", stream=io.StringIO())  # later tests need no debug lines
    running = [e for e in _json_lines(stream.getvalue()) if "Uvicorn running on" in str(e["event"])]
    assert running and running[0]["logger"] == "uvicorn.error"


def test_library_lines_are_masked_and_http_requests_stay_out() -> None:
    """A secret in a library's line is masked; httpx's per-request info lines are not logged."""
    stream = io.StringIO()
    configure_logging("info", "json", ["ck_live_topsecret"], stream=stream)
    logging.getLogger("uvicorn.error").error("bad request from ?consumer_key=ck_live_topsecret")
    logging.getLogger("httpx").info("HTTP Request: GET http://shop/?consumer_key=ck_live_topsecret")
    events = _json_lines(stream.getvalue())
    assert [e["event"] for e in events] == ["bad request from ?consumer_key=***"]


def test_configuring_again_replaces_the_handler() -> None:
    """A second configure_logging sends library lines to the new stream only, once."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("info", "json", stream=second)
    logging.getLogger("uvicorn.error").warning("port in use")
    assert first.getvalue() == ""
    assert [e["event"] for e in _json_lines(second.getvalue())] == ["port in use"]
