"""The replicas section of the config: its defaults, its bounds and what check-config says."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config import Config, parse_config
from syncd.errors import ConfigError

BASE: dict[str, Any] = {
    "erp": {"type": "mock_erp", "base_url": "http://127.0.0.1:9", "api_key": "k"},
    "channels": [
        {
            "name": "web",
            "type": "woocommerce",
            "base_url": "http://127.0.0.1:9",
            "consumer_key": "a",
            "consumer_secret": "b",
        }
    ],
}


def config(**extra: Any) -> Config:
    return parse_config(BASE | extra)


@pytest.mark.parametrize(
    ("database_url", "line"),
    [
        ("sqlite:///data/syncd.db", None),
        (
            "postgresql+psycopg://syncd@db/syncd",
            "replicas: the one holding lease 'syncer' (period 10s) syncs, the others take webhooks",
        ),
    ],
)
def test_check_config_says_how_replicas_share_a_postgresql_ledger(
    database_url: str, line: str | None
) -> None:
    """On PostgreSQL the summary names the lease and its period; on SQLite (one daemon) nothing."""
    found = [entry for entry in config(database_url=database_url).summary() if entry.startswith("replicas:")]
    assert found == ([line] if line else [])


def test_a_lease_period_under_a_second_is_refused_by_name() -> None:
    """A lease shorter than a second would be renewed faster than a ledger write can be trusted."""
    with pytest.raises(ConfigError, match=r"replicas\.lease_period"):
        config(replicas={"lease_period": "500ms"})
    assert config(replicas={"lease_period": "30s", "lease_name": "shop-2"}).replicas.lease_name == "shop-2"
