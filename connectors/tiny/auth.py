"""Tiny's OAuth2 (OpenID Connect, authorisation code): the first tokens and their refresh.

The access token lasts 4 hours and the refresh token 1 day (Olist's docs), and each refresh issues
a new refresh token. A refreshed token is saved in the TokenStore (the ledger) before anything uses
it, so that a restart picks up the newest one. A crash between Tiny's answer and that save leaves
the previous refresh token in the ledger: Tiny's accounts server (Keycloak) keeps a refresh token
valid until it expires unless its realm revokes used ones, which is not documented for Tiny. If it
did, that token is refused and the seller authorises again (``syncd erp authorize tiny``); the
connector says so once and never retries a refused refresh token in a loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import structlog

from connectors.base import StoredToken, TokenStore
from connectors.http import HttpClient
from connectors.tiny.settings import TinySettings
from connectors.tiny.wire import remote_message, token_answer
from syncd.errors import AuthError, ConnectorError, StoreError, TransientError

log = structlog.get_logger(__name__)

TOKEN_PATH = "/token"
ALL_ERRORS = tuple(range(400, 600))
MIN_REFRESH_INTERVAL = timedelta(seconds=60)
REAUTHORISE = "authorise syncd again: syncd erp authorize tiny"


def token_name(settings: TinySettings) -> str:
    """Where this connector's tokens live in the TokenStore."""
    return f"tiny:{settings.name}"


def authorize_url(settings: TinySettings, state: str) -> str:
    """The page where the seller logs in to Tiny and lets syncd in; Tiny then sends the browser to
    ``redirect_uri`` with ``code`` and ``state`` in the query string."""
    query = urlencode(
        {
            "client_id": settings.client_id,
            "redirect_uri": settings.redirect_uri,
            "scope": "openid",
            "response_type": "code",
            "state": state,
        }
    )
    return f"{settings.auth_url.rstrip('/')}/auth?{query}"


def _stored(
    answer_access: str, answer_refresh: str, expires_in: int, refresh_in: int | None, now: datetime
) -> StoredToken:
    return StoredToken(
        access_token=answer_access,
        refresh_token=answer_refresh,
        access_expires_at=now + timedelta(seconds=expires_in),
        refresh_expires_at=now + timedelta(seconds=refresh_in) if refresh_in else None,
    )


async def _token_call(http: HttpClient, settings: TinySettings, form: dict[str, str]) -> httpx.Response:
    """POST the token endpoint; retried only while it fails transiently."""
    form = {
        "client_id": settings.client_id,
        "client_secret": settings.client_secret.get_secret_value(),
        **form,
    }

    async def attempt() -> httpx.Response:
        response = await http.request("POST", TOKEN_PATH, data=form, accept=ALL_ERRORS, retry=False)
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"POST {TOKEN_PATH} answered {status}", connector=settings.name)
        return response

    result: httpx.Response = await http.call_with_retries(attempt)
    return result


def _refused(response: httpx.Response, settings: TinySettings, what: str) -> AuthError | ConnectorError:
    detail = remote_message(response)
    if response.status_code == 401 or "invalid_client" in detail:
        return AuthError(
            f"POST {TOKEN_PATH} refused client_id/client_secret ({detail}); check the app's keys",
            connector=settings.name,
        )
    if response.status_code == 400:
        return AuthError(f"{what} refused ({detail}); {REAUTHORISE}", connector=settings.name)
    return ConnectorError(
        f"POST {TOKEN_PATH} answered {response.status_code}: {detail}", connector=settings.name
    )


async def exchange_code(
    settings: TinySettings,
    code: str,
    tokens: TokenStore,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> StoredToken:
    """Trade an authorisation code for the first tokens and save them; the code is single-use."""
    http = HttpClient(
        settings.name,
        settings.auth_url.rstrip("/"),
        timeout=settings.timeout.total_seconds(),
        transport=transport,
    )
    try:
        response = await _token_call(
            http,
            settings,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.redirect_uri},
        )
    finally:
        await http.aclose()
    if response.status_code >= 300:
        raise _refused(response, settings, "the authorisation code")
    answer = token_answer(response, settings.name)
    token = _stored(
        answer.access_token,
        answer.refresh_token,
        answer.expires_in,
        answer.refresh_expires_in,
        datetime.fromtimestamp(clock(), UTC),
    )
    tokens.save_token(token_name(settings), token)
    log.info("tiny.authorised", erp=settings.name, refresh_expires_at=token.refresh_expires_at)
    return token


def pasted_code(pasted: str, state: str) -> str:
    """The code in what the seller pasted: the code alone, or the address Tiny redirected the
    browser to (then its ``state`` must be the one syncd sent, or the code is someone else's)."""
    text = pasted.strip()
    if not text:
        raise ValueError("no authorisation code given")
    if "code=" not in text:
        return text
    query = parse_qs(urlsplit(text).query or text.lstrip("?"))
    if query.get("state", [state])[0] != state:
        raise ValueError("that address's state is not the one syncd sent: open the new address and try again")
    code = (query.get("code") or [""])[0]
    if not code:
        raise ValueError("that address holds no code")
    return code


async def authorize_interactively(
    settings: TinySettings,
    tokens: TokenStore,
    read: Callable[[str], Awaitable[str]],
    say: Callable[[str], None],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StoredToken:
    """``syncd erp authorize tiny``: show the consent address, take the code the seller brings back
    (it lasts about a minute and works once), trade it for tokens and save them in ``tokens``."""
    state = secrets.token_urlsafe(12)
    say("Open this address, sign in to Tiny (Olist ERP) with the account's user and allow access:")
    say(f"  {authorize_url(settings, state)}")
    say(f"Tiny then sends the browser to {settings.redirect_uri}?code=...; paste that address or the code.")
    code = pasted_code(await read("code: "), state)
    token = await exchange_code(settings, code, tokens, transport=transport)
    say(
        f"Tokens saved as {token_name(settings)!r}; the access token is valid until"
        f" {token.access_expires_at:%Y-%m-%d %H:%M} UTC and is refreshed by syncd from then on."
    )
    return token


class TinyTokens:
    """The access token of one connector: refreshed before it expires or when the API refuses it."""

    def __init__(
        self, settings: TinySettings, store: TokenStore, http: HttpClient, clock: Callable[[], float]
    ):
        self.settings = settings
        self._store = store
        self._http = http
        self._clock = clock
        self._name = token_name(settings)
        self._lock = asyncio.Lock()
        self._current: StoredToken | None = store.load_token(self._name)
        if self._current is None and settings.refresh_token is not None:
            # Only a refresh token from the config: the first call refreshes it at once.
            self._current = StoredToken(
                "", settings.refresh_token.get_secret_value(), datetime.min.replace(tzinfo=UTC)
            )
        self._dead: str | None = None  # the refresh token Tiny refused, not to be sent again
        self._last_refresh: datetime | None = None
        self.refreshes = 0

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def access_token(self) -> str:
        """A usable access token, refreshed first when it is about to expire."""
        current = self._usable()
        if current.access_expires_at - self._now() <= self.settings.token_refresh_margin:
            await self.refresh(current.access_token)
            current = self._usable()
        return current.access_token

    def _usable(self) -> StoredToken:
        current = self._current
        if current is None or current.refresh_token == self._dead:
            # Another process (``syncd erp authorize tiny``) may have saved new tokens meanwhile.
            stored = self._store.load_token(self._name)
            if stored is not None and stored.refresh_token != self._dead:
                self._current = current = stored
        if current is None:
            raise AuthError(f"no Tiny tokens yet; {REAUTHORISE}", connector=self.settings.name)
        if current.refresh_token == self._dead:
            raise AuthError(f"Tiny refused the refresh token; {REAUTHORISE}", connector=self.settings.name)
        return current

    async def refresh(self, refused: str) -> None:
        """Refresh unless another call already replaced the access token ``refused``."""
        async with self._lock:
            current = self._usable()
            if current.access_token != refused:
                return
            now = self._now()
            if self._last_refresh is not None and now - self._last_refresh < MIN_REFRESH_INTERVAL:
                # Tiny refuses a token it issued moments ago: refreshing again would only loop.
                raise AuthError(
                    "Tiny refused an access token issued seconds ago; check the app's permissions",
                    connector=self.settings.name,
                )
            if current.refresh_expires_at is not None and current.refresh_expires_at <= now:
                self._dead = current.refresh_token
                raise AuthError(
                    f"the Tiny refresh token expired at {current.refresh_expires_at:%Y-%m-%d %H:%M} UTC"
                    f" (it lasts a day without use); {REAUTHORISE}",
                    connector=self.settings.name,
                )
            response = await _token_call(
                self._http,
                self.settings,
                {"grant_type": "refresh_token", "refresh_token": current.refresh_token},
            )
            if response.status_code >= 300:
                error = _refused(response, self.settings, "the refresh token")
                if response.status_code == 400:
                    self._dead = current.refresh_token
                    log.error("tiny.refresh_refused", erp=self.settings.name, error=str(error))
                raise error
            answer = token_answer(response, self.settings.name)
            token = _stored(
                answer.access_token, answer.refresh_token, answer.expires_in, answer.refresh_expires_in, now
            )
            # Saved before it is used: the refresh token just replaced may be the last one Tiny honours.
            try:
                self._store.save_token(self._name, token)
            except StoreError as exc:
                # Works in memory; the ledger keeps the previous refresh token (valid until it expires).
                log.error("tiny.token_not_saved", erp=self.settings.name, error=type(exc).__name__)
            self._current = token
            self._last_refresh = now
            self.refreshes += 1
            log.info("tiny.token_refreshed", erp=self.settings.name, expires_at=token.access_expires_at)
