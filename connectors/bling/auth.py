"""Bling's OAuth2 tokens: the first exchange of an authorization code, refreshes before expiry, and
the rotating refresh token saved in the TokenStore before the new access token is ever used.

Bling blocks the IP for an hour after 20 token calls in 60 s, so token calls are counted here and
refused (never looped) past ``token_calls_per_minute``; a failed refresh is not tried again for a
minute while the current access token still works.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import structlog

from connectors.base import StoredToken, TokenStore
from connectors.bling.settings import BlingSettings
from connectors.http import HttpClient, json_body
from syncd.errors import AuthError, ConnectorError, ProtocolError, TransientError

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth/token"
REFRESH_PAUSE = 60.0  # seconds between refresh attempts after one failed
REAUTHORISE = "authorise again with 'syncd erp authorize bling'"


def authorize_url(settings: BlingSettings, state: str) -> str:
    """The page where the seller grants syncd access; Bling redirects back with ``code``."""
    query = {"response_type": "code", "client_id": settings.client_id, "state": state}
    if settings.redirect_uri:
        query["redirect_uri"] = settings.redirect_uri
    return f"{settings.authorize_url}?{urlencode(query)}"


def token_name(settings: BlingSettings) -> str:
    return f"bling:{settings.name}"


class BlingAuth:
    """Hands out a valid access token; refreshes and saves tokens as Bling rotates them."""

    def __init__(
        self,
        settings: BlingSettings,
        tokens: TokenStore,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.name = settings.name
        self._tokens = tokens
        self._token_name = token_name(settings)
        self._now = now
        self._monotonic = monotonic
        basic = f"{settings.client_id}:{settings.client_secret.get_secret_value()}".encode()
        headers = {"Authorization": f"Basic {base64.b64encode(basic).decode()}", "Accept": "application/json"}
        if settings.jwt:
            headers["enable-jwt"] = "1"
        # Token calls never retry by themselves: each one counts toward Bling's IP block.
        self._http = HttpClient(
            settings.name, settings.base_url, headers=headers, timeout=30.0, transport=transport
        )
        self._token: StoredToken | None = None
        self._unsaved: StoredToken | None = None
        self._lock = asyncio.Lock()
        self._calls: deque[float] = deque()
        self._refresh_blocked_until = 0.0
        self.refreshes = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ public
    async def exchange_code(self, code: str) -> StoredToken:
        """Trade an authorization code (valid a minute, once) for the first tokens, and save them."""
        form = {"grant_type": "authorization_code", "code": code.strip()}
        if self.settings.redirect_uri:
            form["redirect_uri"] = self.settings.redirect_uri
        async with self._lock:
            token = await self._token_call(form, "exchange the authorization code")
            self._keep(token)
        return token

    async def access_token(self) -> str:
        """A token valid for at least the refresh margin (refreshing it first if needed)."""
        async with self._lock:
            token = self._current()
            if token.access_expires_at - self._now() <= self.settings.token_refresh_margin:
                token = await self._refresh(token, expired=token.access_expires_at <= self._now())
            return token.access_token

    async def refused(self, access: str) -> None:
        """The API refused ``access`` (401): refresh once unless it was replaced meanwhile."""
        async with self._lock:
            token = self._current()
            if token.access_token != access:
                return
            await self._refresh(token, expired=True)

    # ------------------------------------------------------------------ inside
    def _current(self) -> StoredToken:
        if self._unsaved is not None:
            # A rotated token whose save failed: save it before anything uses it.
            self._keep(self._unsaved)
        if self._token is None:
            self._token = self._tokens.load_token(self._token_name)
        if self._token is None:
            raise AuthError(f"no Bling tokens saved for {self.name!r}: {REAUTHORISE}", connector=self.name)
        return self._token

    def _keep(self, token: StoredToken) -> None:
        """Save first, use after: a refresh token lost here would make the seller authorise again."""
        self._unsaved = token
        self._tokens.save_token(self._token_name, token)
        self._unsaved = None
        self._token = token

    async def _refresh(self, token: StoredToken, *, expired: bool) -> StoredToken:
        if self._monotonic() < self._refresh_blocked_until:
            if not expired:
                return token  # still valid: try again after the pause
            raise TransientError(
                "the access token expired and the last refresh failed a moment ago",
                connector=self.name,
                retry_after=self._refresh_blocked_until - self._monotonic(),
            )
        form = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
        try:
            fresh = await self._token_call(form, "refresh the access token")
        except AuthError:
            # Another replica may have rotated the token: the store then holds a newer one.
            stored = self._tokens.load_token(self._token_name)
            if stored is not None and stored.refresh_token != token.refresh_token:
                self._token = stored
                return stored
            self._refresh_blocked_until = self._monotonic() + REFRESH_PAUSE
            raise
        except ConnectorError:
            self._refresh_blocked_until = self._monotonic() + REFRESH_PAUSE
            if not expired:
                log.warning("bling.token_refresh_failed", erp=self.name, using="current token")
                return token
            raise
        self._keep(fresh)
        self.refreshes += 1
        log.info("bling.token_refreshed", erp=self.name, expires_at=fresh.access_expires_at.isoformat())
        return fresh

    async def _token_call(self, form: dict[str, str], what: str) -> StoredToken:
        now = self._monotonic()
        while self._calls and self._calls[0] <= now - 60.0:
            self._calls.popleft()
        if len(self._calls) >= self.settings.token_calls_per_minute:
            # Bling blocks the IP for an hour at 20 calls a minute: refuse rather than come close.
            raise TransientError(
                f"not trying to {what}: {len(self._calls)} token calls in the last minute",
                connector=self.name,
                retry_after=self._calls[0] + 60.0 - now,
            )
        self._calls.append(now)
        response = await self._http.request(
            "POST", TOKEN_PATH, data=form, retry=False, accept=(400, 401, 403, 429)
        )
        if response.status_code == 429:
            raise TransientError(f"could not {what}: token endpoint throttled", connector=self.name)
        body = _json_or_empty(response)
        if response.status_code != 200:
            kind = _error_type(body)
            raise AuthError(f"could not {what}: Bling answered {kind}; {REAUTHORISE}", connector=self.name)
        return self._parse_token(body, what)

    def _parse_token(self, body: dict[str, Any], what: str) -> StoredToken:
        access, refresh, expires_in = (
            body.get("access_token"),
            body.get("refresh_token"),
            body.get("expires_in"),
        )
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            raise ProtocolError(
                f"{what}: the token answer has no access_token or refresh_token", connector=self.name
            )
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise ProtocolError(
                f"{what}: the token answer's expires_in is not a positive integer", connector=self.name
            )
        now = self._now()
        # Bling's refresh token lives 30 days from its issue (rotating on every use).
        return StoredToken(access, refresh, now + timedelta(seconds=expires_in), now + timedelta(days=30))


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json_body(response, dict, connector="bling")
    except ProtocolError:
        return {}
    return body


def _error_type(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("type") or error.get("message") or "an error")[:80]
    if isinstance(error, str):
        return error[:80]
    return "an error"


def code_from(pasted: str, state: str) -> str:
    """The authorization code in what the seller pasted: the code itself, or the whole address
    Bling redirected to (whose ``state`` must then be the one syncd sent)."""
    text = pasted.strip()
    if "code=" not in text:
        if not text:
            raise ValueError("no authorization code given")
        return text
    query = parse_qs(urlparse(text).query or text.lstrip("?"))
    if query.get("state", [state])[0] != state:
        raise ValueError("the address's state is not the one syncd sent: open the new address and try again")
    codes = query.get("code")
    if not codes or not codes[0]:
        raise ValueError("the address holds no code")
    return codes[0]


async def authorize_interactively(
    settings: BlingSettings,
    tokens: TokenStore,
    read: Callable[[str], Awaitable[str]],
    say: Callable[[str], None],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StoredToken:
    """``syncd erp authorize bling``: print the authorize address, take the code the seller brings
    back (within a minute: Bling's codes expire), exchange it and save the tokens."""
    state = secrets.token_urlsafe(12)
    say("Open this address, sign in to Bling as the account's owner and allow access:")
    say(f"  {authorize_url(settings, state)}")
    say("Bling then sends you to the app's redirect URL with ?code=...; paste that address or the code.")
    code = code_from(await read("code: "), state)
    auth = BlingAuth(settings, tokens, transport=transport)
    try:
        token = await auth.exchange_code(code)
    finally:
        await auth.aclose()
    say(
        f"Tokens saved as {token_name(settings)!r}; access valid until {token.access_expires_at:%Y-%m-%d %H:%M} UTC."
    )
    return token
