"""Settings of the Tiny (Olist ERP) API v3 connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from connectors.locations import check_named_once
from connectors.settings import Duration, ErpConnectorSettings

API_URL = "https://api.tiny.com.br/public-api/v3"
AUTH_URL = "https://accounts.tiny.com.br/realms/tiny/protocol/openid-connect"


class TinySettings(ErpConnectorSettings):
    """One Tiny (Olist ERP) account through API v3. On-hand is `disponivel` (each counted
    deposit's `saldo` minus what Tiny's open orders reserve). Sales are recorded as sales orders
    carrying the movement key as `numeroPedidoEcommerce` (they reserve the units at once);
    cancellations set the order's situation to cancelled. Run `syncd erp authorize tiny` once for
    the first tokens."""

    type: Literal["tiny"]
    name: str = Field(default="erp", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    base_url: str = Field(default=API_URL, pattern=r"^https?://", description="Root of the API v3.")
    auth_url: str = Field(
        default=AUTH_URL, pattern=r"^https?://", description="OpenID Connect endpoints (auth, token)."
    )
    client_id: str = Field(
        min_length=1, description="The app's client id (ERP: Configurações > Aplicativos)."
    )
    client_secret: SecretStr = Field(description="The app's client secret.")
    redirect_uri: str = Field(
        default="http://localhost:8080/oauth/tiny",
        pattern=r"^https?://",
        description="Redirect URI registered for the app; the authorisation code comes back to it.",
    )
    # First tokens only (``syncd erp authorize tiny`` obtains them and keeps them in the ledger);
    # once the ledger holds a token these are ignored, since Tiny rotates the refresh token.
    refresh_token: SecretStr | None = Field(
        default=None,
        description="First refresh token only, if not obtained with syncd erp authorize tiny; the ledger's wins.",
    )
    # Tiny's limit is per account and shared by every app the seller runs: about 30 to 140 requests
    # a minute by plan (not published per plan). 30 is the smallest plan's, so it is safe anywhere.
    requests_per_minute: int = Field(
        default=30, ge=4, le=100_000, description="Share of the account's limit."
    )
    burst: int = Field(default=3, ge=1, description="Requests allowed back to back.")
    throttle_wait: Duration = Field(
        default=timedelta(seconds=20),
        gt=timedelta(0),
        description="Pause after a 429 that says nothing about when to come back.",
    )
    token_refresh_margin: Duration = Field(
        default=timedelta(minutes=10), description="Refresh the access token this long before it expires."
    )
    contact_id: int = Field(
        ge=1,
        description="Tiny contact (customer) the sales orders are recorded under, e.g. 'Consumidor final'.",
    )
    ecommerce_id: int | None = Field(
        default=None, ge=1, description="Tiny e-commerce (store) the orders are tagged with, if any."
    )
    order_deposit: int | None = Field(
        default=None, ge=1, description="Deposit the sales orders reserve from; null: the account's default."
    )
    deposits: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Deposits (ids) that count toward on-hand, summed; null: every deposit Tiny does not set aside."
            " An id the account lacks stops the first read, naming the account's deposits."
        ),
    )
    page_size: int = Field(default=100, ge=1, le=100, description="Records asked per list request.")
    change_overlap: Duration = Field(
        default=timedelta(minutes=2),
        description="Products changed this long before the cursor are read again (clock skew, late writes).",
    )
    # Derived from requests_per_minute (see requests_per_second); setting it is refused.
    rate_limit: float = Field(
        default=0.45, gt=0, description="Not for Tiny (refused if set): use requests_per_minute."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_rate_limit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rate_limit" in data:
            raise ValueError("Tiny's limit is per minute: set requests_per_minute, not rate_limit")
        return data

    @model_validator(mode="after")
    def _deposits_once(self) -> TinySettings:
        check_named_once("deposits", self.deposits)
        if self.deposits and self.order_deposit is not None and self.order_deposit not in self.deposits:
            # Orders reserving from a deposit that is not counted would never lower the counted on-hand.
            raise ValueError(f"order_deposit {self.order_deposit} must be one of deposits {self.deposits}")
        return self

    @model_validator(mode="after")
    def _burst_within_minute(self) -> TinySettings:
        if self.burst >= self.requests_per_minute:
            raise ValueError(
                f"burst ({self.burst}) must be below requests_per_minute ({self.requests_per_minute})"
            )
        return self

    @property
    def requests_per_second(self) -> float:
        """A token bucket of ``burst`` refilled at this rate never exceeds the minute's share."""
        return (self.requests_per_minute - self.burst) / 60.0
