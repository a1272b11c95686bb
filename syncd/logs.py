"""Logging: structlog configured once; JSON off a terminal, and no secret ever printed.

Event names are stable (``order.ingested``, ``push.sent``, ``drift.detected``, ``cycle.finished``)
so that log searches and alerts keep working across releases.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"


class SecretRedactor:
    """Replaces every known secret value, wherever it appears in an event, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first so that a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self._scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        return {k: self._scrub(v) for k, v in event.items()}


class _OurHandler(logging.StreamHandler):
    """The root handler syncd installs; marked so that configuring again replaces it."""


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Set up structlog for the whole process (call once at start).

    Libraries that log through the standard library (APScheduler, uvicorn) go through the same
    processors and renderer, so that a JSON log holds JSON lines only.
    """
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    redactor = SecretRedactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redactor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )

    handler = _OurHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # Libraries that set up logging of their own (uvicorn's default config gives "uvicorn" its
    # own handler and stops it propagating) would print plain text past this handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "httpx", "httpcore", "alembic"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.disabled = False
        library.setLevel(logging.NOTSET)  # the levels below are set on the parents only
    # APScheduler logs every job start and finish at info; only its warnings (a run skipped
    # because the previous one still runs, a misfire) say something an operator needs.
    quiet = numeric_level if level == "debug" else logging.WARNING
    logging.getLogger("apscheduler").setLevel(quiet)
    # uvicorn's start-up chatter repeats daemon.started; its warnings and errors (a port taken) stay.
    logging.getLogger("uvicorn").setLevel(quiet)
    # httpx logs every request at info; syncd logs its API calls itself (at debug, secrets masked).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(quiet, logging.WARNING))
