"""A token the TikTok Shop connector refreshes against the sandbox lands sealed in the ledger and
serves a restarted connector."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.settings import TikTokShopSettings
from syncd.store import Store
from tests.connectors.tiktok_shop.support import no_wait


async def test_refreshed_token_is_sealed_in_the_ledger(
    tts_app: Starlette,
    hooks: httpx.AsyncClient,
    make_settings: Callable[..., TikTokShopSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the sandbox expires the access token, the refreshed pair is saved encrypted (neither
    token in the row) and a connector on a reopened ledger works with it."""
    monkeypatch.setenv("SYNCD_SECRET_KEY", Fernet.generate_key().decode())
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 5}]})

    def connect(store: Store) -> TikTokShopConnector:
        return TikTokShopConnector(
            make_settings(), transport=httpx.ASGITransport(tts_app), sleep=no_wait, tokens=store
        )

    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.migrate()
    first = connect(store)
    await hooks.post("/_sandbox/tokens/expire")
    assert len(await first.list_listings()) == 1
    await first.aclose()
    saved = store.load_token("tiktok_shop:tiktok")
    store.close()
    assert saved is not None
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        (row,) = conn.execute("SELECT value FROM token WHERE name = 'tiktok_shop:tiktok'").fetchone()
    assert saved.access_token not in row and saved.refresh_token not in row

    await hooks.post("/_sandbox/tokens/expire")  # the old pair is spent: only the saved one works
    reopened = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    again = connect(reopened)
    assert len(await again.list_listings()) == 1
    await again.aclose()
    reopened.close()
