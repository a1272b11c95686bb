"""Settings of the Bling ERP (API v3) connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from connectors.locations import check_named_once
from connectors.settings import Duration, ErpConnectorSettings

# Bling's limits per account, shared by every app the seller runs (developer.bling.com.br/limites).
ACCOUNT_REQUESTS_PER_SECOND = 3.0
ACCOUNT_REQUESTS_PER_DAY = 120_000


class BlingSettings(ErpConnectorSettings):
    """One Bling account.

    On-hand is ``saldoVirtualTotal`` (or each counted deposit's ``saldoVirtual``): the units left
    after the reservations of Bling's own open orders. Sales are recorded as sales orders
    (``record_as: order``, the default: Bling can be asked whether one exists) or as stock
    movements (``record_as: movement``).
    """

    type: Literal["bling"]
    name: str = "erp"
    base_url: str = Field(default="https://api.bling.com.br/Api/v3", pattern=r"^https?://")
    authorize_url: str = Field(
        default="https://www.bling.com.br/Api/v3/oauth/authorize",
        pattern=r"^https?://",
        description="Where the seller grants access (syncd erp authorize bling prints it).",
    )
    client_id: str = Field(min_length=1, description="The app's client id (Bling's app page).")
    client_secret: SecretStr = Field(description="The app's client secret; also signs webhooks.")
    redirect_uri: str | None = Field(default=None, description="The app's registered redirect URL.")
    jwt: bool = Field(default=True, description="Send enable-jwt: 1 (Bling's JWT access tokens).")
    deposits: list[int] = Field(
        default_factory=list,
        description="Deposit ids whose balances count toward on-hand (empty: the account's totals).",
    )
    record_as: Literal["order", "movement"] = Field(
        default="order",
        description="order: a sales order per sold line, its stock posted; movement: POST /estoques (S).",
    )
    store_id: int | None = Field(default=None, description="Bling's id of the store (loja) of the orders.")
    contact_id: int | None = Field(default=None, description="record_as order: the contact of the orders.")
    movement_deposit: int | None = Field(
        default=None, description="Deposit sales are taken from (default: the first of deposits)."
    )
    budget_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the account's 3 requests/s and 120,000/day syncd may use (others share it).",
    )
    movement_reserve: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of the daily budget kept for recording sales: reads stop before it.",
    )
    account_requests_per_second: float = Field(
        default=ACCOUNT_REQUESTS_PER_SECOND, gt=0, description="Bling's per-account limit (as Bling sets it)."
    )
    account_requests_per_day: int = Field(
        default=ACCOUNT_REQUESTS_PER_DAY,
        ge=1,
        description="Bling's per-account daily limit (as Bling sets it).",
    )
    balance_batch: int = Field(default=100, ge=1, le=200, description="Product ids per balance read.")
    token_refresh_margin: Duration = Field(
        default=timedelta(minutes=10), ge=timedelta(0), description="Refresh this long before expiry."
    )
    token_calls_per_minute: int = Field(
        default=5,
        ge=1,
        le=19,
        description="Most token calls a minute (20 in 60 s blocks the IP for an hour).",
    )

    @model_validator(mode="after")
    def _recording_target(self) -> Self:
        check_named_once("deposits", self.deposits)  # a deposit named twice would count twice
        if self.deposits and self.movement_deposit is not None and self.movement_deposit not in self.deposits:
            # A sale taken from a deposit that is not counted would never lower the counted on-hand.
            raise ValueError(
                f"movement_deposit {self.movement_deposit} must be one of deposits {self.deposits}"
            )
        if self.record_as == "order" and self.contact_id is None:
            raise ValueError("record_as 'order' needs contact_id (the contact Bling's orders carry)")
        if self.record_as == "movement" and self.sale_deposit is None:
            raise ValueError("record_as 'movement' needs movement_deposit or deposits (where stock leaves)")
        return self

    @property
    def sale_deposit(self) -> int | None:
        return self.movement_deposit if self.movement_deposit is not None else next(iter(self.deposits), None)

    @property
    def requests_per_second(self) -> float:
        return self.account_requests_per_second * self.budget_share

    @property
    def requests_per_day(self) -> int:
        return int(self.account_requests_per_day * self.budget_share)
