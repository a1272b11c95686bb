"""Settings of the mock ERP connector."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, StringConstraints, model_validator

from connectors.locations import check_named_once
from connectors.settings import ErpConnectorSettings


class MockErpSettings(ErpConnectorSettings):
    """The mock ERP (``syncd sandbox mock_erp``).

    Warehouses: on-hand is a SKU's units summed over ``warehouses`` (all of them when unset); a
    SKU in none of those reads as 0. A sale is recorded against the same warehouses, taken from
    them in the order given (a compensation goes back to the first), so the units syncd counts are
    the units a sale takes. Every name must be a warehouse of the ERP: checked at the first call,
    the error names the unknown ones and those the ERP has.
    """

    type: Literal["mock_erp"]
    name: str = "erp"
    base_url: str = Field(pattern=r"^https?://", description="Root URL of the mock ERP API.")
    api_key: SecretStr
    rate_limit: float = Field(default=20.0, gt=0)
    burst: int = Field(default=20, ge=1)
    page_size: int = Field(default=1000, ge=1, le=5000, description="Stock records asked per request.")
    warehouses: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Warehouses whose units count toward on-hand (and that sales are taken from, in order); null: all.",
    )

    @model_validator(mode="after")
    def _warehouses_once(self) -> Self:
        check_named_once("warehouses", self.warehouses)
        return self
