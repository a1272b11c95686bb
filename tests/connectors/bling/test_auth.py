"""Bling OAuth against the sandbox: the first exchange, refreshes before expiry, rotating refresh
tokens saved before use, a crash between the refresh answer and the save, and no refresh loops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, StoredToken
from connectors.bling.auth import authorize_url
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import BlingSandbox, create_app
from syncd.errors import AuthError, ProtocolError, StoreError, TransientError
from tests.connectors.bling.conftest import CLIENT_ID, CLIENT_SECRET, bling_settings, no_sleep


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


class Crash(BaseException):
    """The process dies here (not an exception the code could handle)."""


class FailingStore(MemoryTokenStore):
    """A token store whose next ``fail`` saves raise ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error, self.fail = error, 0

    def save_token(self, name: str, token: StoredToken) -> None:
        if self.fail:
            self.fail -= 1
            raise self.error
        super().save_token(name, token)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> Iterator[Starlette]:
    yield create_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, per_second=10_000, now=clock)


@pytest.fixture
async def make(app: Starlette, clock: Clock) -> AsyncIterator:
    made: list[BlingConnector] = []

    def build(tokens: MemoryTokenStore) -> BlingConnector:
        erp = BlingConnector(
            bling_settings(),
            transport=httpx.ASGITransport(app=app),
            tokens=tokens,
            records=MemoryErpRecordStore(),
            sleep=no_sleep,
            now=clock,
        )
        made.append(erp)
        return erp

    yield build
    for erp in made:
        await erp.aclose()


async def code(hooks: httpx.AsyncClient) -> str:
    return str((await hooks.post("/_sandbox/oauth/code")).json()["code"])


def test_authorize_url_names_the_app_and_the_state() -> None:
    """The printed URL is Bling's authorize page with response_type=code, the client id and the state."""
    url = authorize_url(bling_settings(redirect_uri="https://syncd.example/cb"), "st-1")
    assert url.startswith("https://www.bling.com.br/Api/v3/oauth/authorize?response_type=code")
    assert (
        f"client_id={CLIENT_ID}" in url
        and "state=st-1" in url
        and "redirect_uri=https%3A%2F%2Fsyncd.example%2Fcb" in url
    )


async def test_code_exchange_saves_the_tokens_and_a_code_works_once(make, hooks: httpx.AsyncClient) -> None:
    """The first tokens land in the store; the same code a second time is refused with a hint to authorise again."""
    tokens = MemoryTokenStore()
    erp = make(tokens)
    first = await code(hooks)
    token = await erp.auth.exchange_code(first)
    assert tokens.load_token("bling:erp") == token
    with pytest.raises(AuthError, match="syncd erp authorize bling"):
        await erp.auth.exchange_code(first)


async def test_no_saved_tokens_is_an_auth_error_saying_what_to_run(make) -> None:
    """Without tokens the connector needs a human, and says which command to run."""
    with pytest.raises(AuthError, match="syncd erp authorize bling"):
        await make(MemoryTokenStore()).read_stock()


async def test_access_token_is_refreshed_before_expiry_and_the_new_refresh_token_saved(
    make, hooks: httpx.AsyncClient, clock: Clock, sandbox: BlingSandbox
) -> None:
    """Near expiry the token is refreshed once; the rotated refresh token is saved and the old one is spent."""
    tokens = MemoryTokenStore()
    erp = make(tokens)
    old = await erp.auth.exchange_code(await code(hooks))
    clock.at += timedelta(hours=5, minutes=55)  # inside the 10-minute margin

    await erp.read_stock()
    await erp.read_stock()

    saved = tokens.load_token("bling:erp")
    assert saved is not None and saved.refresh_token != old.refresh_token
    assert sandbox.account.refresh_tokens == {saved.refresh_token}
    assert erp.auth.refreshes == 1


async def test_a_rotated_token_is_saved_before_any_call_uses_it(
    make, hooks: httpx.AsyncClient, clock: Clock, sandbox: BlingSandbox
) -> None:
    """A crash between the refresh answer and the save: no API call ever carried the new access token."""
    tokens = FailingStore(Crash())
    erp = make(tokens)
    await erp.auth.exchange_code(await code(hooks))
    clock.at += timedelta(hours=7)
    tokens.fail = 1
    calls_before = sandbox.calls["GET /produtos"]

    with pytest.raises(Crash):
        await erp.read_stock()

    assert sandbox.calls["GET /produtos"] == calls_before
    assert sandbox.calls["POST /oauth/token"] == 2


async def test_a_failed_save_keeps_the_rotated_token_and_saves_it_next_time(
    make, hooks: httpx.AsyncClient, clock: Clock, sandbox: BlingSandbox
) -> None:
    """A ledger error while saving is reported; the next call saves the kept token first: no new authorisation."""
    tokens = FailingStore(StoreError("database is locked"))
    erp = make(tokens)
    await erp.auth.exchange_code(await code(hooks))
    clock.at += timedelta(hours=7)
    tokens.fail = 1

    with pytest.raises(StoreError):
        await erp.read_stock()
    await erp.read_stock()

    saved = tokens.load_token("bling:erp")
    assert saved is not None and sandbox.account.refresh_tokens == {saved.refresh_token}
    restarted = make(tokens)
    await restarted.read_stock()  # the saved refresh token is the live one


async def test_a_token_another_replica_rotated_is_taken_from_the_store(
    make, hooks: httpx.AsyncClient, clock: Clock
) -> None:
    """Two connectors on one store: the second's spent refresh token is refused, so it takes the saved one."""
    tokens = MemoryTokenStore()
    first, second = make(tokens), make(tokens)
    await first.auth.exchange_code(await code(hooks))
    await second.read_stock()  # loads the same tokens
    clock.at += timedelta(hours=7)
    await first.read_stock()  # rotates

    await second.read_stock()
    assert second.auth.refreshes == 0


async def test_a_token_refused_twice_is_an_auth_error_not_a_refresh_loop(
    make, hooks: httpx.AsyncClient, sandbox: BlingSandbox
) -> None:
    """If the API keeps refusing fresh tokens, the connector refreshes once per call and then gives up."""
    tokens = MemoryTokenStore()
    erp = make(tokens)
    await erp.auth.exchange_code(await code(hooks))
    sandbox.account.grants.clear()  # every access (and refresh) token revoked by the seller

    with pytest.raises(AuthError):
        await erp.read_stock()
    assert sandbox.calls["POST /oauth/token"] == 2  # the exchange, one refresh


async def test_token_calls_are_capped_per_minute(
    make, hooks: httpx.AsyncClient, clock: Clock, sandbox: BlingSandbox
) -> None:
    """After token_calls_per_minute calls in a minute the connector refuses to call the token endpoint at all."""
    erp = make(MemoryTokenStore())
    for _ in range(5):
        await erp.auth.exchange_code(await code(hooks))
    with pytest.raises(TransientError, match="token calls in the last minute"):
        await erp.auth.exchange_code(await code(hooks))
    assert sandbox.calls["POST /oauth/token"] == 5


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"access_token": "a", "refresh_tok', "no access_token"),
        (b'{"access_token": "a", "refresh_token": "r", "expires_in": "soon"}', "expires_in"),
    ],
)
async def test_malformed_token_answers_are_protocol_errors(body: bytes, expected: str) -> None:
    """A truncated or wrongly typed token answer is a ProtocolError, and nothing is saved."""
    tokens = MemoryTokenStore()
    erp = BlingConnector(
        bling_settings(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)),
        tokens=tokens,
    )
    try:
        with pytest.raises(ProtocolError, match=expected):
            await erp.auth.exchange_code("c")
    finally:
        await erp.aclose()
    assert tokens.load_token("bling:erp") is None


async def test_errors_never_carry_the_secret_or_tokens(
    make, hooks: httpx.AsyncClient, sandbox: BlingSandbox
) -> None:
    """Auth errors name the problem, never the client secret, access or refresh token."""
    tokens = MemoryTokenStore()
    erp = make(tokens)
    token = await erp.auth.exchange_code(await code(hooks))
    sandbox.account.grants.clear()
    with pytest.raises(AuthError) as caught:
        await erp.read_stock()
    text = str(caught.value)
    assert CLIENT_SECRET not in text and token.access_token not in text and token.refresh_token not in text
