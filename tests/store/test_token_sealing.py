"""OAuth tokens at rest: sealed with SYNCD_SECRET_KEY in the ledger, plain rows of before still
read and sealed, a missing or wrong key a clear error that never shows a secret."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connectors.base import StoredToken
from syncd.daemon import Daemon
from syncd.errors import StoreError
from syncd.store import Store
from tests.daemon.conftest import make_config

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = StoredToken("TTP_access_secret_1", "TTP_refresh_secret_1", NOW + timedelta(days=7), NOW + timedelta(days=365))
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None) -> Store:
    """A Store on the test's SQLite file, started with SYNCD_SECRET_KEY as given."""
    if key is None:
        monkeypatch.delenv("SYNCD_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SYNCD_SECRET_KEY", key)
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.migrate()
    return store


def raw_row(tmp_path: Path, name: str) -> str:
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        (value,) = conn.execute("SELECT value FROM token WHERE name = ?", (name,)).fetchone()
    return str(value)


def test_with_a_key_the_ledger_holds_no_token_in_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token saved with a key is unreadable in the row and loads back equal."""
    store = ledger(tmp_path, monkeypatch, KEY_A)
    store.save_token("tiktok_shop:tiktok", TOKEN)
    row = raw_row(tmp_path, "tiktok_shop:tiktok")
    assert TOKEN.access_token not in row and TOKEN.refresh_token not in row
    assert store.seals_tokens and store.load_token("tiktok_shop:tiktok") == TOKEN
    store.close()
    assert ledger(tmp_path, monkeypatch, KEY_A).load_token("tiktok_shop:tiktok") == TOKEN


def test_plain_rows_of_before_the_key_keep_working_and_are_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row saved without a key loads once a key is set; the start-up check seals it, and so
    does the next save."""
    plain = ledger(tmp_path, monkeypatch, None)
    plain.save_token("bling:erp", TOKEN)
    plain.save_token("tiny:erp", TOKEN)
    assert TOKEN.refresh_token in raw_row(tmp_path, "bling:erp")
    plain.close()

    keyed = ledger(tmp_path, monkeypatch, KEY_A)
    assert keyed.load_token("bling:erp") == TOKEN
    keyed.save_token("tiny:erp", TOKEN)
    assert TOKEN.refresh_token not in raw_row(tmp_path, "tiny:erp")
    assert keyed.check_tokens() == 1  # bling's, still plain
    assert TOKEN.refresh_token not in raw_row(tmp_path, "bling:erp")
    assert keyed.check_tokens() == 0
    assert keyed.load_token("bling:erp") == keyed.load_token("tiny:erp") == TOKEN


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (KEY_B, "SYNCD_SECRET_KEY is not the key it was saved with"),
        (None, "is encrypted and SYNCD_SECRET_KEY is not set"),
    ],
    ids=["wrong-key", "no-key"],
)
def test_a_wrong_or_missing_key_names_the_problem_not_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, says: str
) -> None:
    """Sealed rows opened with another key, or none, are a StoreError naming the token and the
    key variable, with no key and no token in it."""
    ledger(tmp_path, monkeypatch, KEY_A).save_token("tiktok_shop:tiktok", TOKEN)
    store = ledger(tmp_path, monkeypatch, key)
    for attempt in (lambda: store.load_token("tiktok_shop:tiktok"), store.check_tokens):
        with pytest.raises(StoreError) as caught:
            attempt()
        message = str(caught.value)
        assert "tiktok_shop:tiktok" in message and says in message
        for secret in (KEY_A, KEY_B, TOKEN.access_token, TOKEN.refresh_token):
            assert secret not in message


def test_a_malformed_key_is_refused_without_echoing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that is no Fernet key stops the store at once, saying what a key must be."""
    with pytest.raises(StoreError) as caught:
        ledger(tmp_path, monkeypatch, "my-password-123")
    assert "SYNCD_SECRET_KEY is not valid" in str(caught.value) and "Fernet" in str(caught.value)
    assert "my-password-123" not in str(caught.value)


def test_a_key_is_rotated_by_listing_the_new_one_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With "new,old" rows of the old key still open and the check seals them again under the new
    one, after which the new key alone opens them."""
    old = ledger(tmp_path, monkeypatch, KEY_A)
    old.save_token("tiktok_shop:tiktok", TOKEN)
    old.save_token("bling:erp", TOKEN)
    both = ledger(tmp_path, monkeypatch, f"{KEY_B}, {KEY_A}")
    assert both.load_token("tiktok_shop:tiktok") == TOKEN
    assert both.check_tokens() == 2
    assert both.check_tokens() == 0
    new = ledger(tmp_path, monkeypatch, KEY_B)
    assert new.load_token("tiktok_shop:tiktok") == new.load_token("bling:erp") == TOKEN


def tiktok_config(tmp_path: Path) -> dict[str, object]:
    channel = {
        "name": "tiktok",
        "type": "tiktok_shop",
        "base_url": "http://tts.test",
        "app_key": "app-key-1",
        "app_secret": "app-secret-1",
        "access_token": "TTP_access",
        "refresh_token": "TTP_refresh",
        "shop_cipher": "ROW_1",
    }
    return {"channels": [channel], "database_url": f"sqlite:///{tmp_path / 'ledger.db'}"}


def test_the_daemon_warns_once_without_a_key_and_stops_on_a_wrong_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon with a token-refreshing connector and no key logs one warning and runs; with a
    key other than the tokens' it does not start, naming the problem."""
    monkeypatch.delenv("SYNCD_SECRET_KEY", raising=False)
    with capture_logs() as logs:
        daemon = Daemon(make_config(tmp_path, **tiktok_config(tmp_path)))
    warned = [e for e in logs if e["event"] == "tokens.unencrypted"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning" and warned[0]["connectors"] == ["tiktok"]
    daemon.store.close()

    ledger(tmp_path, monkeypatch, KEY_A).save_token("tiktok_shop:tiktok", TOKEN)
    monkeypatch.setenv("SYNCD_SECRET_KEY", KEY_B)
    with pytest.raises(StoreError, match="not the key it was saved with"):
        Daemon(make_config(tmp_path, **tiktok_config(tmp_path)))

    monkeypatch.setenv("SYNCD_SECRET_KEY", KEY_A)
    with capture_logs() as logs:
        Daemon(make_config(tmp_path, **tiktok_config(tmp_path))).store.close()
    assert not [e for e in logs if e["event"] == "tokens.unencrypted"]


def test_no_warning_without_a_connector_that_keeps_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mock ERP and WooCommerce keep no tokens: no key, no warning."""
    monkeypatch.delenv("SYNCD_SECRET_KEY", raising=False)
    with capture_logs() as logs:
        Daemon(make_config(tmp_path)).store.close()
    assert not [e for e in logs if e["event"] == "tokens.unencrypted"]
