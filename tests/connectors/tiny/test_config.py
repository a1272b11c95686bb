"""A syncd config naming Tiny as its ERP: accepted, built from the registry, errors named."""

from __future__ import annotations

import pytest

from connectors.base import MemoryErpRecordStore, MemoryTokenStore
from connectors.registry import build_erp
from connectors.tiny.client import TinyConnector
from syncd.config import parse_config
from syncd.errors import ConfigError


def config(**erp: object) -> dict[str, object]:
    return {
        "erp": {
            "type": "tiny",
            "client_id": "app-1",
            "client_secret": "${TINY_SECRET}",
            "contact_id": 12,
            "deposits": [1, 4],
            **erp,
        },
        "channels": [
            {
                "name": "web",
                "type": "woocommerce",
                "base_url": "https://shop.example.com",
                "consumer_key": "ck",
                "consumer_secret": "cs",
            }
        ],
    }


async def test_a_tiny_erp_config_builds_a_tiny_connector() -> None:
    """type: tiny picks the Tiny settings and the registry builds its connector with the ledger's stores."""
    parsed = parse_config(config(), env={"TINY_SECRET": "s3cr3t"})
    assert parsed.erp.type == "tiny"

    erp = build_erp(parsed.erp, tokens=MemoryTokenStore(), records=MemoryErpRecordStore())

    assert isinstance(erp, TinyConnector) and erp.settings.deposits == [1, 4]
    await erp.aclose()


def test_a_missing_contact_is_named_with_its_key_path() -> None:
    """A Tiny ERP without contact_id is refused naming erp.tiny.contact_id (or erp.contact_id)."""
    data = config()
    del data["erp"]["contact_id"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="contact_id"):
        parse_config(data, env={"TINY_SECRET": "s3cr3t"})
