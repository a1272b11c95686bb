"""The configuration reference: generated from the models, current, complete, and its examples valid."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from syncd import docs
from syncd.config import parse_config
from tests.docs.support import CONFIG_REFERENCE, REPO, as_config, code_blocks, dummy_env


def test_reference_is_current() -> None:
    """docs/configuration.md is exactly what `python -m syncd.docs` generates from the models now."""
    proc = subprocess.run(
        [sys.executable, "-m", "syncd.docs", "--check"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{proc.stderr}\nrun: python -m syncd.docs"


def test_check_fails_on_a_stale_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--check exits 1 and says what to run when the file differs; writing it makes it pass."""
    target = tmp_path / "configuration.md"
    target.write_text("# stale\n", encoding="utf-8")
    assert docs.main(["--check", "--output", str(target)]) == 1
    assert docs.main(["--output", str(target)]) == 0
    assert docs.main(["--check", "--output", str(target)]) == 0


def test_every_key_of_every_section_is_listed_with_a_meaning() -> None:
    """Each key of each settings model has a row with its default and a meaning."""
    text = docs.render()
    for section in docs.sections():
        for key in section.keys:
            assert key.meaning, f"{section.path or 'top level'}.{key.name} has no description (add one to its Field)"
            assert f"| `{key.name}` |" in text


@pytest.mark.parametrize(
    "path",
    [
        "database_url",
        "server.port",
        "schedule.push_debounce",
        "stock.auto_threshold.burst_window",
        "channels.policy.weight",
        "channels.shop_domain",
        "channels.consumer_key",
        "events.reserve",
    ],
)
def test_known_keys_are_in_the_reference(path: str) -> None:
    """A sample of keys from every level, connector types included, appears in the reference."""
    dotted = {f"{s.dotted}.{k.name}" if s.dotted else k.name for s in docs.sections() for k in s.keys}
    assert path in dotted


def test_every_example_in_the_reference_is_a_valid_config() -> None:
    """Each section's YAML example, placed in a minimal config, passes validation."""
    blocks = [b for b in code_blocks(CONFIG_REFERENCE) if b.lang == "yaml"]
    assert len(blocks) >= len([s for s in docs.sections() if s.keys])
    for block in blocks:
        data = as_config(yaml.safe_load(block.body))
        parse_config(data, block.where(), env=dummy_env(block.body))


def test_defaults_shown_are_the_models_defaults() -> None:
    """The default printed for a key is what an empty config gives it."""
    rows = {
        (s.path, k.name): k.default for s in docs.sections() for k in s.keys if s.path in ("schedule", "server")
    }
    assert rows[("schedule", "order_poll_interval")] == "`45s`"
    assert rows[("schedule", "push_debounce")] == "`200ms`"
    assert rows[("server", "port")] == "`8080`"
