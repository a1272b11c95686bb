"""Config loading: valid files load, and every kind of bad input names the file, key and reason."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

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


def test_shipped_defaults_split_the_last_units() -> None:
    """With no stock section the low-stock threshold is auto, never below 5 units."""
    config = parse_config(
        {
            "erp": {"type": "mock_erp", "base_url": "http://erp.test", "api_key": "k"},
            "channels": [
                {
                    "name": "web",
                    "type": "woocommerce",
                    "base_url": "http://web.test",
                    "consumer_key": "ck",
                    "consumer_secret": "cs",
                }
            ],
        }
    )
    assert config.stock.threshold_for("ANY") == "auto"
    assert config.stock.auto_threshold.floor == 5


def test_secrets_stay_out_of_reprs_and_summary(tmp_path: Path) -> None:
    """Secrets never show in the config's repr or in the check-config summary."""
    config = load_config(write(tmp_path, GOOD), env=ENV)
    text = repr(config) + "\n".join(config.summary())
    for secret in ("erp-secret-123", "ck_live_abcdef", "fallback-secret"):
        assert secret not in text
    assert set(config.secrets()) == {"erp-secret-123", "ck_live_abcdef", "fallback-secret"}


# Wording of pydantic's own that means nothing to a person editing YAML.
PYDANTIC_INTERNALS = [
    "constrained-int",
    "literal[",
    "Input should",
    "Extra inputs",
    "Field required",
    "identifier in duration",
    "Input tag",
    "discriminator",
]

BAD_CASES = [
    pytest.param(
        GOOD.replace("type: woocommerce", "type: magento"),
        ["channels[0]", "magento", "woocommerce"],
        id="unknown-connector-type",
    ),
    pytest.param(GOOD, ["ERP_KEY", "erp.api_key"], id="missing-secret-variable"),
    pytest.param(
        GOOD.replace("buffer: 1", "buffer: -1"),
        ["channels[0].policy.buffer", "at least 0", "-1"],
        id="negative-buffer",
    ),
    pytest.param(
        GOOD.replace("share: 80", "share: 180"),
        ["channels[0].policy.share", "at most 100", "180"],
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
        ["stock.safety_stok", "unknown key", "did you mean 'safety_stock'", "valid keys here"],
        id="unknown-key",
    ),
    pytest.param(
        GOOD.replace("reconcile_interval: 5m", "reconcile_interval: soon"),
        ["schedule.reconcile_interval", "'soon' is not a duration", "write durations like 90s, 5m, 1h, 1d"],
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
    pytest.param(GOOD.split("channels:")[0], ["channels", "required key is missing"], id="no-channels"),
    pytest.param(
        GOOD.replace("low_stock_threshold: 4", "low_stock_threshold: often"),
        ["stock.low_stock_threshold", "a whole number ≥ 0 or auto", "'often'"],
        id="bad-threshold",
    ),
    pytest.param(
        GOOD.replace("low_stock_threshold: 10", "low_stock_threshold: -2"),
        ["stock.skus.HOT-1.low_stock_threshold", "a whole number ≥ 0 or auto", "-2"],
        id="negative-sku-threshold",
    ),
    pytest.param(
        GOOD.replace("type: mock_erp", "type: sap"),
        ["erp", "unknown type 'sap'", "mock_erp"],
        id="unknown-erp",
    ),
    pytest.param(
        GOOD.replace("name: webstore", "name: Web Store"),
        ["channels[0].name", "'Web Store'", "lowercase letters"],
        id="bad-channel-name",
    ),
    pytest.param(
        GOOD + "logging: {level: loud}\n",
        ["logging.level", "'debug', 'info', 'warning' or 'error'", "'loud'"],
        id="unknown-log-level",
    ),
    pytest.param(
        GOOD + "server: {port: http}\n", ["server.port", "a whole number", "'http'"], id="port-not-a-number"
    ),
    pytest.param(
        GOOD.replace("name: webstore", "name: webstore\n    enabled: maybe"),
        ["channels[0].enabled", "true or false"],
        id="bad-boolean",
    ),
    pytest.param(
        GOOD
        + "events: [{name: live, channel: webstore, start: '2026-01-01T10:00', end: '2026-01-01T12:00Z', share: 5}]\n",
        ["events[0].start", "time zone"],
        id="event-without-time-zone",
    ),
    pytest.param(
        GOOD.replace("\n    type: woocommerce", ""),
        ["channels[0]", "needs a type", "shopify, tiktok_shop, woocommerce"],
        id="channel-without-type",
    ),
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
    for internal in PYDANTIC_INTERNALS:
        assert internal not in message, f"{internal!r} leaks into: {message}"


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


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("15 seconds", timedelta(seconds=15)),
        ("15 secs", timedelta(seconds=15)),
        ("2 mins 5 s", timedelta(minutes=2, seconds=5)),
        ("1.5h", timedelta(minutes=90)),
        ("1 day", timedelta(days=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("PT5M", timedelta(minutes=5)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations_are_read_as_people_write_them(
    tmp_path: Path, written: object, expected: timedelta
) -> None:
    """Short units, spelled-out units, compounds, ISO 8601 and plain seconds all give the same timedelta."""
    text = GOOD.replace("reconcile_interval: 5m", f"reconcile_interval: {written}")
    assert load_config(write(tmp_path, text), env=ENV).schedule.reconcile_interval == expected


@given(hours=st.integers(0, 48), minutes=st.integers(0, 59), seconds=st.integers(0, 59), spaced=st.booleans())
def test_any_compound_duration_adds_up(hours: int, minutes: int, seconds: int, spaced: bool) -> None:
    """`<h>h<m>m<s>s` (with or without spaces) is the sum of its parts."""
    gap = " " if spaced else ""
    text = f"{hours}h{gap}{minutes}m{gap}{seconds + 1}s"
    config = parse_config(
        {**yaml.safe_load(GOOD), "schedule": {"reconcile_interval": text}}, "inline", env=ENV
    )
    assert config.schedule.reconcile_interval == timedelta(hours=hours, minutes=minutes, seconds=seconds + 1)


@pytest.mark.parametrize("written", ["soon", "15 parsecs", "1h30", "five minutes", "-5m"])
def test_unreadable_duration_says_how_to_write_one(tmp_path: Path, written: str) -> None:
    """A duration syncd cannot read is refused with the way to write one, not pydantic's parser words."""
    text = GOOD.replace("reconcile_interval: 5m", f"reconcile_interval: '{written}'")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    message = str(caught.value)
    assert "schedule.reconcile_interval" in message and "write durations like 90s, 5m, 1h, 1d" in message
    assert "identifier" not in message and "Input should" not in message


def test_every_missing_variable_is_reported_at_once(tmp_path: Path) -> None:
    """All unset ${VAR}s are listed in one error, each with its key path."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD), env={})
    assert caught.value.problems == [
        f"{tmp_path / 'syncd.yaml'}: erp.api_key: environment variable ERP_KEY is not set",
        f"{tmp_path / 'syncd.yaml'}: channels[0].consumer_key: environment variable WC_KEY is not set",
    ]


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    """A key written twice in one mapping names the key and the lines of both copies."""
    text = GOOD.replace("  safety_stock: 2\n", "  safety_stock: 2\n  safety_stock: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    lines = text.splitlines()
    first = lines.index("  safety_stock: 2") + 1
    assert str(caught.value) == (
        f"{tmp_path / 'syncd.yaml'}: duplicate key 'safety_stock' at line {first + 1} "
        f"(first at line {first}); YAML would keep only the last one"
    )


def test_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    """safety_stock both globally and per SKU is not a duplicate."""
    assert load_config(write(tmp_path, GOOD), env=ENV).stock.safety_for("HOT-1") == 0


RISKY = textwrap.dedent(
    """
    server: {host: 0.0.0.0, port: 8080}
    stock: {low_stock_threshold: 0, skus: {HOT-1: {low_stock_threshold: 0}}}
    erp: {type: mock_erp, base_url: "http://127.0.0.1:8101", api_key: erp-key-1234}
    channels:
      - {name: webstore, type: woocommerce, base_url: "http://127.0.0.1:8102", consumer_key: ck_x, consumer_secret: cs_x}
      - {name: shopify, type: shopify, shop_domain: example.myshopify.com, access_token: shpat_x}
    events:
      - {name: live, channel: webstore, start: "2026-01-01T10:00:00Z", end: "2026-01-01T12:00:00Z", share: 50}
    """
)


def test_check_config_warns_about_risky_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config passes a risky file (exit 0) but warns of each risk with its key and fix."""
    assert main(["check-config", str(write(tmp_path, RISKY))]) == 0
    out = capsys.readouterr().out
    assert "OK with 6 warning(s)" in out
    warnings = [line.strip() for line in out.splitlines() if line.strip().startswith("warning:")]
    assert len(warnings) == 6
    assert any(w.startswith("warning: server.host: 0.0.0.0") and "/status" in w for w in warnings)
    assert any("channels[0] (webstore): no webhook_secret" in w and "401" in w for w in warnings)
    assert any("channels[1] (shopify): no webhook_secret" in w for w in warnings)
    assert any(w.startswith("warning: events:") and "api.token" in w for w in warnings)
    assert any(w.startswith("warning: stock.low_stock_threshold: 0") for w in warnings)
    assert any(w.startswith("warning: stock.skus.HOT-1.low_stock_threshold: 0") for w in warnings)


def test_api_reachable_beyond_loopback_without_token_is_a_warning(tmp_path: Path) -> None:
    """Without events, a server open beyond loopback and no api.token still warns; on loopback, with
    a token, or with the default host (loopback) it does not."""
    data = yaml.safe_load(RISKY)
    del data["events"]
    warned = parse_config(data, "inline", env={}).warnings()
    assert any(w.startswith("server.host: 0.0.0.0") and "api.token" in w for w in warned)
    data["server"]["host"] = "127.0.0.1"
    assert not any(w.startswith("server.host") for w in parse_config(data, "inline", env={}).warnings())
    del data["server"]
    assert parse_config(data, "inline", env={}).server.host == "127.0.0.1"
    assert not any(w.startswith("server.host") for w in parse_config(data, "inline", env={}).warnings())
    data["server"] = {"host": "0.0.0.0"}
    data["api"] = {"token": "t" * 20}
    assert not any(w.startswith("server.host") for w in parse_config(data, "inline", env={}).warnings())


def test_safe_settings_give_no_warnings() -> None:
    """Webhook secrets set, a token, a threshold above 0: check-config has nothing to warn about."""
    data = yaml.safe_load(RISKY)
    data["stock"] = {"low_stock_threshold": "auto"}
    data["api"] = {"token": "t" * 20}
    for channel in data["channels"]:
        channel["webhook_secret"] = "whsec-123456"
    assert parse_config(data, "inline", env={}).warnings() == []


def test_summary_shows_a_shopify_shop_by_its_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Shopify shop set by shop_domain is shown at its https address, never `at None`."""
    assert main(["check-config", str(write(tmp_path, RISKY))]) == 0
    out = capsys.readouterr().out
    assert "channel: shopify (shopify) at https://example.myshopify.com" in out
    assert "None" not in out


MORE_BAD = [
    pytest.param(
        {"logging": "debug"}, "logging: must be a mapping of keys (got str); keys here: format, level"
    ),
    pytest.param({"erp": None}, "erp: must be a mapping of keys with a type (got nothing); valid types: "),
    pytest.param(
        {
            "events": [
                {"name": "x", "channel": "web", "start": "tomorrow", "end": "2026-01-01T00:00Z", "share": 5}
            ]
        },
        "events[0].start: 'tomorrow' is not a date-time: write it like 2026-11-27T18:00:00Z",
    ),
    pytest.param(
        {"channels": [{"name": "s", "type": "shopify", "access_token": "x", "shop_domain": "Shop.com"}]},
        "channels[0].shop_domain: 'Shop.com' is not a shop's permanent domain such as example.myshopify.com",
    ),
    pytest.param(
        {"erp": {"type": "mock_erp", "base_url": "http://x", "api_key": "k", "rate_limit": "fast"}},
        "erp.rate_limit: must be a number (got 'fast')",
    ),
    pytest.param({"api": {"token": "short"}}, "api.token: the API token must be at least 16 characters"),
    pytest.param({"stock": {"skus": ["A"]}}, "stock.skus: must be a mapping of keys (got list)"),
]


@pytest.mark.parametrize(("patch", "expected"), MORE_BAD)
def test_each_kind_of_mistake_reads_as_words(patch: dict[str, object], expected: str) -> None:
    """Wrong shapes, dates, patterns and numbers get a message naming the key and what is valid."""
    data = {
        "erp": {"type": "mock_erp", "base_url": "http://x", "api_key": "k" * 8},
        "channels": [
            {
                "name": "web",
                "type": "woocommerce",
                "base_url": "http://y",
                "consumer_key": "a",
                "consumer_secret": "b",
            }
        ],
        **patch,
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "f.yaml", env={})
    assert any(p.startswith(f"f.yaml: {expected}") for p in caught.value.problems), caught.value.problems
    for internal in PYDANTIC_INTERNALS:
        assert internal not in str(caught.value)
