"""TikTok Shop signatures: the ``sign`` query parameter of API requests, and webhook deliveries.

Both are lowercase hex HMAC-SHA256 keyed with the app secret. A request signs
``secret + path + sorted {key}{value} pairs (minus sign, access_token) + raw body + secret``;
a webhook signs ``app_key + raw body``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Generator, Iterable

import httpx

UNSIGNED_PARAMS = frozenset({"sign", "access_token"})
TOKEN_HEADER = "x-tts-access-token"


def request_sign(
    app_secret: str,
    path: str,
    params: Iterable[tuple[str, str]],
    body: bytes = b"",
    content_type: str = "application/json",
) -> str:
    pairs = sorted((key, value) for key, value in params if key not in UNSIGNED_PARAMS)
    text = path + "".join(f"{key}{value}" for key, value in pairs)
    message = text.encode("utf-8")
    # Multipart bodies are left out of the signature; every other body is signed byte for byte.
    if not content_type.lower().startswith("multipart/form-data"):
        message += body
    secret = app_secret.encode("utf-8")
    return hmac.new(secret, secret + message + secret, hashlib.sha256).hexdigest()


def webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    return hmac.new(app_secret.encode("utf-8"), app_key.encode("utf-8") + body, hashlib.sha256).hexdigest()


class RequestSigner(httpx.Auth):
    """Adds ``app_key``, ``timestamp``, ``shop_cipher``, ``sign`` and the token header to a request.

    It runs on every send, retries included, so each try carries a fresh timestamp and signature
    (TikTok refuses timestamps more than 5 minutes off).
    """

    def __init__(
        self,
        app_key: str,
        app_secret: Callable[[], str],
        shop_cipher: str,
        access_token: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ):
        self._app_key = app_key
        self._secret = app_secret
        self._shop_cipher = shop_cipher
        self._token = access_token
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        params = request.url.params.set("app_key", self._app_key).set("timestamp", str(int(self._clock())))
        if self._shop_cipher:
            params = params.set("shop_cipher", self._shop_cipher)
        params = params.remove("sign")
        sign = request_sign(
            self._secret(),
            request.url.path,
            params.multi_items(),
            request.content,
            request.headers.get("content-type", ""),
        )
        request.url = request.url.copy_with(params=params.set("sign", sign))
        request.headers[TOKEN_HEADER] = self._token()
        yield request
