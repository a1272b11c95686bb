"""Shared by every test folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def logging_set_up_put_back() -> Iterator[None]:
    """A test that runs a command in-process sets logging up onto its captured output, which is
    closed afterwards: put the set-up back, or later tests would log to a closed stream."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
