"""Config loading: valid files load, and every kind of bad input names the file, key and reason."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.config import load_config, parse_config
from syncd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent(
    """
    database_url: sqlite:///data/test.db
    schedule: {reconcile_interval: 5m, order_poll_interval: 30s, erp_poll_interval: 1m}
    stock:
      safety_stock: 2
      low_stock_threshold: 4
      skus: {HOT-1: {safety_stock: 0, low_stock_threshold: 10}}
    erp: {type: mock_erp, base_url: "http://127.0.0.1:8101", api_key: "${ERP_KEY}"}
    channels:
      - name: webstore
        type: woocommerce
        base_url: http://127.0.0.1:8102
        consumer_key: ${WC_KEY}
        consumer_secret: ${WC_SECRET:-fallback-secret}
        policy: {share: 80, buffer: 1, cap: 50, priority: 2, weight: 3}
    """
)
ENV = {"ERP_KEY": "erp-secret-123", "WC_KEY": "ck_live_abcdef"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_env_secrets_and_durations(tmp_path: Path) -> None:
    """A valid file loads: ${VAR} and ${VAR:-default} expand, durations parse, overrides apply."""
    config = load_config(write(tmp_path, GOOD), env=ENV)
    assert config.erp.api_key.get_secret_value() == "erp-secret-123"
    channel = config.channels[0]
    assert channel.consumer_secret.get_secret_value() == "fallback-secret"
    assert config.schedule.reconcile_interval == timedelta(minutes=5)
    assert config.schedule.erp_poll_interval == timedelta(minutes=1)
    assert channel.policy.share == 80 and channel.policy.cap == 50
    assert config.stock.safety_for("HOT-1") == 0 and config.stock.safety_for("OTHER") == 2
    assert config.stock.threshold_for("HOT-1") == 10 and config.stock.threshold_for("OTHER") == 4


def test_secrets_stay_out_of_reprs_and_summary(tmp_path: Path) -> None:
    """Secrets never show in the config's repr or in the check-config summary."""
    config = load_config(write(tmp_path, GOOD), env=ENV)
    text = repr(config) + "\n".join(config.summary())
    for secret in ("erp-secret-123", "ck_live_abcdef", "fallback-secret"):
        assert secret not in text
    assert set(config.secrets()) == {"erp-secret-123", "ck_live_abcdef", "fallback-secret"}


BAD_CASES = [
    pytest.param(
        GOOD.replace("type: woocommerce", "type: magento"),
        ["channels[0]", "magento", "woocommerce"],
        id="unknown-connector-type",
    ),
    pytest.param(GOOD, ["ERP_KEY", "erp.api_key"], id="missing-secret-variable"),
    pytest.param(
        GOOD.replace("buffer: 1", "buffer: -1"),
        ["channels[0].policy.buffer", "greater than or equal to 0"],
        id="negative-buffer",
    ),
    pytest.param(
        GOOD.replace("share: 80", "share: 180"),
        ["channels[0].policy.share", "less than or equal to 100"],
        id="share-over-100",
    ),
    pytest.param(
        GOOD
        + textwrap.indent(
            "- {name: webstore, type: woocommerce, base_url: 'http://x', consumer_key: a, consumer_secret: b}\n",
            "  ",
        ),
        ["webstore", "more than once"],
        id="duplicate-channel-names",
    ),
    pytest.param(
        GOOD.replace("safety_stock: 2", "safety_stok: 2"),
        ["stock.safety_stok", "Extra inputs"],
        id="unknown-key",
    ),
    pytest.param(
        GOOD.replace("reconcile_interval: 5m", "reconcile_interval: soon"),
        ["schedule.reconcile_interval"],
        id="bad-duration",
    ),
    pytest.param(
        GOOD.replace("sqlite:///data/test.db", "mysql://x"), ["database_url", "sqlite"], id="bad-database-url"
    ),
    pytest.param(
        GOOD.replace("base_url: http://127.0.0.1:8102", "base_url: shop.example.com"),
        ["channels[0].base_url"],
        id="url-without-scheme",
    ),
    pytest.param("erp: [unclosed\n", ["not valid YAML", "line"], id="broken-yaml"),
    pytest.param("", ["empty"], id="empty-file"),
    pytest.param("- a\n- b\n", ["top level must be a mapping"], id="list-at-top"),
    pytest.param(GOOD.split("channels:")[0], ["channels", "Field required"], id="no-channels"),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_CASES)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, fragments: list[str]) -> None:
    """Each bad file fails with a ConfigError naming the file, the key path and the reason."""
    env = {} if "ERP_KEY" in fragments else ENV
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is named in the error."""
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_secret_value_never_echoed_in_validation_errors() -> None:
    """A wrongly typed value next to a secret does not leak the secret into the error."""
    data = {
        "erp": {"type": "mock_erp", "base_url": "http://x", "api_key": "s3cr3t-value", "rate_limit": "fast"},
        "channels": [
            {
                "name": "web",
                "type": "woocommerce",
                "base_url": "http://y",
                "consumer_key": "k" * 8,
                "consumer_secret": "v" * 8,
            }
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "inline", env={})
    assert "erp.rate_limit" in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)


def test_check_config_cli_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd check-config` prints a summary and exits 0, or names the problem and exits 2."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    good = write(tmp_path, GOOD)
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "webstore (woocommerce)" in out and "share 80%" in out
    assert "erp-secret-123" not in out
    good.write_text(GOOD.replace("buffer: 1", "buffer: -5"))
    assert main(["check-config", str(good)]) == 2
    err = capsys.readouterr().err
    assert "channels[0].policy.buffer" in err


@pytest.mark.parametrize("name", ["demo.yaml", "syncd.example.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    """The demo and example configs in config/ pass check-config (with their variables set)."""
    env = {
        "SYNCD_ERP_API_KEY": "x" * 8,
        "SYNCD_WC_CONSUMER_KEY": "x" * 8,
        "SYNCD_WC_CONSUMER_SECRET": "x" * 8,
        "SYNCD_WC_WEBHOOK_SECRET": "x" * 8,
    }
    config = load_config(REPO / "config" / name, env=env)
    assert config.channels


def test_check_config_as_a_process_exits_2_on_bad_file(tmp_path: Path) -> None:
    """The installed entry point exits with status 2 on a bad config, as documented."""
    path = write(tmp_path, "erp: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "erp.type" in proc.stderr or "erp" in proc.stderr
