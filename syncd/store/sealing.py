"""Tokens at rest: the OAuth tokens syncd refreshes itself are sealed with Fernet before they reach
the ledger, under a key from ``SYNCD_SECRET_KEY`` (never from the config file, which may be shared).

Without a key the rows stay plain (the daemon warns once at start); rows written before a key was
set are read as they are and sealed on their next save. Errors name the token and what is wrong
with the key, never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from syncd.errors import StoreError

KEY_VARIABLE = "SYNCD_SECRET_KEY"
_PREFIX = "fernet:"
_HOW = (
    "a Fernet key: 32 random bytes in url-safe base64, made with"
    " python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


class TokenSeal:
    """Seals and opens token rows. ``keys`` are Fernet keys, the first sealing and every one
    opening, so a key can be rotated: the new key first and the old one after a comma for one
    start, which seals every token again under the new one."""

    def __init__(self, keys: list[str]) -> None:
        fernets: list[Fernet] = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except ValueError:
                where = f" (key {number} of {len(keys)})" if len(keys) > 1 else ""
                raise StoreError(f"{KEY_VARIABLE} is not valid{where}: it must be {_HOW}") from None
        self._fernet = MultiFernet(fernets) if fernets else None
        self._primary = fernets[0] if fernets else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TokenSeal:
        value = (os.environ if env is None else env).get(KEY_VARIABLE, "")
        return cls([key for key in value.split(",") if key.strip()])

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, plain: str) -> str:
        if self._fernet is None:
            return plain
        return _PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str, name: str) -> str:
        """The plain text of a row (a plain row as it is)."""
        if not is_sealed(stored):
            return stored
        if self._fernet is None:
            raise StoreError(
                f"the saved token {name!r} is encrypted and {KEY_VARIABLE} is not set: set the key it"
                " was saved with"
            )
        try:
            return self._fernet.decrypt(stored.removeprefix(_PREFIX).encode()).decode()
        except InvalidToken:
            raise StoreError(
                f"the saved token {name!r} cannot be decrypted: {KEY_VARIABLE} is not the key it was"
                " saved with (set that key, or authorise the connector again)"
            ) from None


    def renewed(self, stored: str, name: str) -> str | None:
        """The row sealed under the first key, or None when it already is (or there is no key):
        plain rows get sealed, rows of an older key sealed again."""
        plain = self.open(stored, name)
        if self._primary is None:
            return None
        if is_sealed(stored):
            try:
                self._primary.decrypt(stored.removeprefix(_PREFIX).encode())
                return None
            except InvalidToken:
                pass
        return self.seal(plain)


def is_sealed(stored: str) -> bool:
    return stored.startswith(_PREFIX)
