"""``syncd erp authorize bling``: the authorize address, the code brought back, tokens in the ledger."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
import uvicorn

from connectors.base import MemoryErpRecordStore
from connectors.bling.auth import authorize_interactively, code_from
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import BlingSandbox, create_app
from syncd.cli import main
from syncd.store import Store
from tests.connectors.bling.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, bling_settings

REDIRECT = "https://syncd.example/bling/callback"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The command configures logging onto pytest's captured stream: put it back afterwards."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("pasted", "code"),
    [
        ("abc123", "abc123"),
        ("  abc123\n", "abc123"),
        (f"{REDIRECT}?code=abc123&state=S1", "abc123"),
        ("?code=abc123&state=S1", "abc123"),
        (f"{REDIRECT}?code=abc123", "abc123"),
    ],
)
def test_code_is_taken_from_the_code_or_the_redirect_address(pasted: str, code: str) -> None:
    """The seller may paste the code alone or the whole address Bling sent them to."""
    assert code_from(pasted, "S1") == code


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("", "no authorization code"),
        (f"{REDIRECT}?code=abc&state=OTHER", "state"),
        (f"{REDIRECT}?code=&state=S1", "no code"),
    ],
)
def test_unusable_pastes_are_refused_naming_why(pasted: str, expected: str) -> None:
    """An empty paste, another attempt's address or an address without a code is refused clearly."""
    with pytest.raises(ValueError, match=expected):
        code_from(pasted, "S1")


async def test_the_printed_address_leads_to_a_code_whose_tokens_are_saved(
    app, sandbox: BlingSandbox, tmp_path: Path
) -> None:
    """Following the printed address (consent, redirect) and pasting it back saves working tokens in the ledger."""
    settings = bling_settings(authorize_url=f"{BASE_URL}/oauth/authorize", redirect_uri=REDIRECT)
    said: list[str] = []
    transport = httpx.ASGITransport(app=app)

    async def seller(prompt: str) -> str:
        address = next(line.strip() for line in said if line.strip().startswith(BASE_URL))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as browser:
            consent = await browser.get(address)
        assert consent.status_code == 302
        return consent.headers["location"]

    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.migrate()
    try:
        token = await authorize_interactively(settings, store, seller, said.append, transport=transport)
        assert store.load_token("bling:erp") == token
        erp = BlingConnector(settings, transport=transport, tokens=store, records=MemoryErpRecordStore())
        try:
            await erp.read_stock()
        finally:
            await erp.aclose()
    finally:
        store.close()
    assert sandbox.account.refresh_tokens == {token.refresh_token}
    assert any("bling:erp" in line for line in said)


@pytest.fixture
def live_sandbox() -> Iterator[tuple[str, BlingSandbox]]:
    """The sandbox served on a loopback port, for the command line."""
    app = create_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app.state.sandbox
    server.should_exit = True
    thread.join(timeout=5)


def write_config(tmp_path: Path, erp: str) -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(
        f"database_url: sqlite:///{tmp_path / 'ledger.db'}\n"
        f"erp:\n{erp}"
        "channels:\n"
        "  - name: shop\n    type: woocommerce\n    base_url: http://127.0.0.1:9\n"
        "    consumer_key: ck_x\n    consumer_secret: cs_x\n    webhook_secret: w\n"
    )
    return path


def test_command_line_saves_the_tokens_in_the_ledger(
    live_sandbox: tuple[str, BlingSandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``syncd erp authorize bling --code`` prints the address, exchanges the code and keeps the tokens."""
    url, sandbox = live_sandbox
    code = sandbox.account.issue_code()
    config = write_config(
        tmp_path,
        f"  type: bling\n  base_url: {url}\n  client_id: {CLIENT_ID}\n  client_secret: {CLIENT_SECRET}\n  contact_id: 1\n",
    )
    assert main(["erp", "authorize", "bling", "--code", code, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "https://www.bling.com.br/Api/v3/oauth/authorize?response_type=code" in out
    assert CLIENT_SECRET not in out
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        saved = store.load_token("bling:erp")
    finally:
        store.close()
    assert saved is not None and sandbox.account.refresh_tokens == {saved.refresh_token}


def test_command_line_refuses_a_config_whose_erp_is_not_bling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking to authorise Bling with another ERP configured exits 2 naming both."""
    config = write_config(tmp_path, "  type: mock_erp\n  base_url: http://127.0.0.1:9\n  api_key: k\n")
    assert main(["erp", "authorize", "bling", "--config", str(config)]) == 2
    assert "'mock_erp', not 'bling'" in capsys.readouterr().err


def test_command_line_reports_a_refused_code(
    live_sandbox: tuple[str, BlingSandbox], tmp_path: Path, capsys
) -> None:
    """An expired or wrong code exits 1 with Bling's reason and the hint to authorise again."""
    url, _ = live_sandbox
    config = write_config(
        tmp_path,
        f"  type: bling\n  base_url: {url}\n  client_id: {CLIENT_ID}\n  client_secret: {CLIENT_SECRET}\n  contact_id: 1\n",
    )
    assert main(["erp", "authorize", "bling", "--code", "stale", "--config", str(config)]) == 1
    assert "invalid_grant" in capsys.readouterr().err
