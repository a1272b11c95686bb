"""The error tree of syncd; the engine reacts to an error by its class.

    SyncdError
    ├── ConfigError            bad configuration: the daemon refuses to start (exit 2)
    ├── StoreError             the ledger database failed (unreachable, unwritable, corrupt)
    └── ConnectorError         a connector call failed for a reason not listed below
        ├── TransientError     timeouts, connection errors, 5xx, throttling: retried with backoff
        │   └── CircuitOpenError   the connector's circuit is open: refused at once, no call made
        ├── AuthError          credentials refused: connector marked unready, needs a human
        ├── RejectedError      one SKU refused by the remote system: recorded, the rest go on
        ├── ProtocolError      the remote system answered something malformed or unexpected
        └── WebhookError       an incoming webhook was refused
            ├── SignatureError     signature missing or wrong (HTTP 401, nothing recorded)
            └── PayloadError       body malformed (HTTP 400, logged with the delivery id)

Foreign exceptions (httpx, SQLAlchemy, pydantic, json) are translated at one point per
boundary and chained with ``raise ... from exc``.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base class of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is unusable; the message names the file, the key path and the reason."""

    def __init__(self, message: str, *, source: str | None = None, problems: list[str] | None = None):
        self.source = source
        self.problems = problems or [message]
        super().__init__(message)


class StoreError(SyncdError):
    """The ledger database could not be read or written."""


class ConnectorError(SyncdError):
    """A call to an ERP or channel failed; ``connector`` names which one."""

    def __init__(self, message: str, *, connector: str | None = None):
        self.connector = connector
        super().__init__(f"{connector}: {message}" if connector else message)


class TransientError(ConnectorError):
    """Worth retrying later; ``retry_after`` is the wait the remote side asked for, if any."""

    def __init__(self, message: str, *, connector: str | None = None, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message, connector=connector)


class CircuitOpenError(TransientError):
    """Refused without a network call: the connector's API failed too often in a row.

    ``retry_after`` is the wait until the next trial call (``next_trial_at``, a wall-clock time in
    seconds since the epoch); retrying any earlier is refused the same way.
    """

    def __init__(self, message: str, *, connector: str | None = None, retry_after: float, next_trial_at: float):
        self.next_trial_at = next_trial_at
        super().__init__(message, connector=connector, retry_after=retry_after)


class AuthError(ConnectorError):
    """Credentials were refused; retrying will not help until a human fixes them."""


class RejectedError(ConnectorError):
    """The remote system refused one item (``sku``); other items are unaffected."""

    def __init__(self, message: str, *, connector: str | None = None, sku: str | None = None):
        self.sku = sku
        super().__init__(message, connector=connector)


class ProtocolError(ConnectorError):
    """The remote system answered with a malformed, truncated or unexpected body."""


class WebhookError(ConnectorError):
    """An incoming webhook request was refused."""


class SignatureError(WebhookError):
    """The webhook signature was missing or did not match."""


class PayloadError(WebhookError):
    """The webhook body could not be understood."""
