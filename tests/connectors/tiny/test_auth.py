"""Tiny's OAuth2 tokens: the first authorisation, refresh before expiry and on refusal, the ledger
always holding a usable refresh token, and a crash between Tiny's answer and the save."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.base import MemoryTokenStore, StoredToken
from connectors.tiny.auth import (
    authorize_interactively,
    authorize_url,
    exchange_code,
    pasted_code,
    token_name,
)
from syncd.errors import AuthError, StoreError
from tests.connectors.tiny.conftest import Connect
from tests.connectors.tiny.support import BASE, REDIRECT, FakeTime, authorise, build, handle, settings

NAME = "tiny:erp"


class Crash(BaseException):
    """The process dies here (not an error anything catches)."""


class CrashingStore(MemoryTokenStore):
    """A ledger whose next token save never happens: the process dies first."""

    def __init__(self, initial: StoredToken):
        super().__init__()
        super().save_token(NAME, initial)
        self.crash = True

    def save_token(self, name: str, token: StoredToken) -> None:
        if self.crash:
            raise Crash
        super().save_token(name, token)


class FailingStore(MemoryTokenStore):
    def save_token(self, name: str, token: StoredToken) -> None:
        raise StoreError("database is locked")


async def seed(hooks: httpx.AsyncClient) -> None:
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 4}]})


async def test_the_authorize_page_leads_back_with_a_code_that_buys_tokens(app, clock: FakeTime) -> None:
    """Following authorize_url (the seller consents) yields a code that exchange_code turns into
    saved tokens; the code works once."""
    url = authorize_url(settings(), state="st-1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as browser:
        answer = await browser.get(url.removeprefix(BASE))
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == ["st-1"] and answer.headers["location"].startswith(REDIRECT)
    store = MemoryTokenStore()

    token = await exchange_code(
        settings(), back["code"][0], store, transport=httpx.ASGITransport(app), clock=clock
    )

    assert store.load_token(token_name(settings())) == token
    assert token.refresh_expires_at is not None
    with pytest.raises(AuthError, match="authorisation code refused"):
        await exchange_code(
            settings(), back["code"][0], store, transport=httpx.ASGITransport(app), clock=clock
        )


async def test_wrong_client_credentials_are_named(app, clock: FakeTime) -> None:
    """A wrong client secret is refused as an AuthError about the app's keys, secret not shown."""
    wrong = settings(client_secret="not-the-secret")
    with pytest.raises(AuthError, match="client_id/client_secret") as caught:
        await exchange_code(wrong, "any", MemoryTokenStore(), transport=httpx.ASGITransport(app), clock=clock)
    assert "not-the-secret" not in str(caught.value)


async def test_a_refused_access_token_is_refreshed_and_saved(connect: Connect, hooks, tokens) -> None:
    """After Tiny stops honouring the access token (401), one refresh follows, the new tokens are
    saved, and the call succeeds."""
    await seed(hooks)
    before = tokens.load_token(NAME)
    await hooks.post("/_sandbox/oauth/expire")
    erp = connect()

    assert [r.on_hand for r in await erp.read_stock()] == [4]

    after = tokens.load_token(NAME)
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    assert erp.tokens.refreshes == 1


async def test_an_expiring_token_is_refreshed_before_the_call(
    connect: Connect, app, hooks, clock, tokens
) -> None:
    """Within the margin before expiry the token is refreshed first: Tiny never sees the old one fail."""
    await seed(hooks)
    clock.now += 4 * 3600 - 300  # five minutes left of four hours
    erp = connect()

    await erp.read_stock()

    assert erp.tokens.refreshes == 1
    assert handle(app).calls["tokens_issued"] == 2  # the first authorisation, then this refresh


async def test_a_crash_before_the_save_keeps_the_seller_authorised(app, hooks, clock, tokens) -> None:
    """The process dies after Tiny issued new tokens and before the ledger saved them: the next
    run starts from the ledger's (previous) refresh token and still gets in."""
    await seed(hooks)
    ledger = CrashingStore(tokens.load_token(NAME))
    await hooks.post("/_sandbox/oauth/expire")
    first = build(app, clock, tokens=ledger)
    with pytest.raises(Crash):
        await first.read_stock()
    await first.aclose()
    assert handle(app).calls["tokens_issued"] == 2  # Tiny did issue them

    ledger.crash = False
    clock.now += 3600
    second = build(app, clock, tokens=ledger)
    assert [r.on_hand for r in await second.read_stock()] == [4]
    await second.aclose()
    assert ledger.load_token(NAME).refresh_token != tokens.load_token(NAME).refresh_token


async def test_if_tiny_revoked_used_refresh_tokens_the_seller_is_told_once(app, hooks, clock, tokens) -> None:
    """Were Tiny's realm to revoke a used refresh token, the crash above needs a new authorisation:
    the connector says so with the command to run, and does not call the token endpoint again."""
    await seed(hooks)
    await hooks.post("/_sandbox/oauth/settings", json={"revoke_used": True})
    ledger = CrashingStore(tokens.load_token(NAME))
    await hooks.post("/_sandbox/oauth/expire")
    first = build(app, clock, tokens=ledger)
    with pytest.raises(Crash):
        await first.read_stock()
    await first.aclose()
    ledger.crash = False
    second = build(app, clock, tokens=ledger)

    for _ in range(3):
        with pytest.raises(AuthError, match="syncd erp authorize tiny"):
            await second.read_stock()

    assert handle(app).calls["tokens_issued"] == 2
    await second.aclose()


async def test_new_tokens_saved_by_authorize_are_picked_up(app, hooks, clock, tokens) -> None:
    """After a refused refresh token, tokens saved by a new authorisation are used without restart."""
    await seed(hooks)
    tokens.save_token(NAME, StoredToken("dead", "dead", tokens.load_token(NAME).access_expires_at))
    erp = build(app, clock, tokens=tokens)
    with pytest.raises(AuthError, match="syncd erp authorize tiny"):
        await erp.read_stock()

    await authorise(app, tokens, clock)

    assert [r.on_hand for r in await erp.read_stock()] == [4]
    await erp.aclose()


async def test_a_refresh_token_past_its_day_is_not_sent(app, hooks, clock, tokens) -> None:
    """A refresh token known to have expired is not sent to Tiny; the error says to authorise again."""
    await seed(hooks)
    clock.now += 25 * 3600
    erp = build(app, clock, tokens=tokens)

    with pytest.raises(AuthError, match=r"expired.*syncd erp authorize tiny"):
        await erp.read_stock()
    assert handle(app).calls["tokens_issued"] == 1
    await erp.aclose()


async def test_a_ledger_that_cannot_save_still_lets_the_refresh_work(app, hooks, clock, tokens) -> None:
    """If the ledger refuses the new tokens, the connector logs it and keeps working in memory."""
    await seed(hooks)
    store = FailingStore()
    MemoryTokenStore.save_token(store, NAME, tokens.load_token(NAME))
    await hooks.post("/_sandbox/oauth/expire")
    erp = build(app, clock, tokens=store)

    with capture_logs() as logs:
        assert [r.on_hand for r in await erp.read_stock()] == [4]

    assert any(e["event"] == "tiny.token_not_saved" for e in logs)
    await erp.aclose()


async def test_no_tokens_at_all_asks_for_authorisation(app, clock) -> None:
    """A connector with neither ledger tokens nor a configured refresh token says how to get them."""
    erp = build(app, clock, tokens=MemoryTokenStore())
    with pytest.raises(AuthError, match="syncd erp authorize tiny"):
        await erp.read_stock()
    await erp.aclose()


async def test_a_configured_refresh_token_bootstraps_the_ledger(app, hooks, clock, tokens) -> None:
    """A refresh token given in the config is exchanged at once and the result saved in the ledger."""
    await seed(hooks)
    first = tokens.load_token(NAME)
    ledger = MemoryTokenStore()
    erp = build(app, clock, tokens=ledger, refresh_token=first.refresh_token)

    assert [r.on_hand for r in await erp.read_stock()] == [4]
    assert (
        ledger.load_token(NAME) is not None and ledger.load_token(NAME).refresh_token != first.refresh_token
    )
    await erp.aclose()


async def test_authorize_interactively_takes_the_redirect_address(app) -> None:
    """``syncd erp authorize tiny``: the seller opens the address shown, pastes where Tiny sent the
    browser, and the ledger holds tokens that the connector then uses."""
    shown: list[str] = []
    ledger = MemoryTokenStore()

    async def paste(prompt: str) -> str:
        address = next(line.strip() for line in shown if line.strip().startswith("http"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as browser:
            return (await browser.get(address.removeprefix(BASE))).headers["location"]

    await authorize_interactively(settings(), ledger, paste, shown.append, transport=httpx.ASGITransport(app))

    assert ledger.load_token(NAME) is not None
    assert any("Tokens saved as 'tiny:erp'" in line for line in shown)


@pytest.mark.parametrize(
    ("pasted", "result"),
    [
        ("abc123", "abc123"),
        (f"{REDIRECT}?state=S1&code=abc123", "abc123"),
        ("?code=abc123", "abc123"),
        (f"{REDIRECT}?state=OTHER&code=abc123", ValueError),
        (f"{REDIRECT}?state=S1&code=", ValueError),
        ("   ", ValueError),
    ],
)
def test_the_pasted_code_or_address_is_read_with_its_state_checked(pasted: str, result: object) -> None:
    """A code alone is taken as is; an address must carry syncd's state and a code."""
    if result is ValueError:
        with pytest.raises(ValueError):
            pasted_code(pasted, "S1")
    else:
        assert pasted_code(pasted, "S1") == result
