"""Logging: secrets are masked wherever they appear, and the output is JSON off a terminal."""

from __future__ import annotations

import io
import json

import structlog

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
