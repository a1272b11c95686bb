"""Settings of the TikTok Shop channel connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, StringConstraints, model_validator

from connectors.locations import check_named_once
from connectors.settings import ChannelSettings, Duration

API_HOST = "https://open-api.tiktokglobalshop.com"
AUTH_HOST = "https://auth.tiktok-shops.com"


class TikTokShopSettings(ChannelSettings):
    """One TikTok Shop.

    Warehouses: without ``warehouse_ids`` a SKU shows the sum over all its warehouses, and a write
    puts the whole quantity on one (``warehouse_id``, else the SKU's first) and 0 on the others.

    With ``warehouse_ids``, syncd counts and writes only those warehouses (others, such as ones
    TikTok or a partner fulfils from, are neither counted nor changed): a SKU shows the sum over
    the named warehouses it is stocked in. A new total is written so: the first named warehouse
    (of the SKU's) takes the change; every other keeps its units, unless the total is below what
    they hold together, when they are lowered, the last named first, until it fits. Every named
    warehouse of the SKU is written (from the levels last read), so they add up to the total
    exactly and TikTok never shows more than syncd set, even if units moved since. Every named
    warehouse must exist in the shop (checked at the first call; the error names those that do
    not, with the shop's warehouses).
    """

    type: Literal["tiktok_shop"]
    base_url: str = Field(default=API_HOST, pattern=r"^https?://", description="Open API host.")
    auth_base_url: str = Field(
        default=AUTH_HOST, pattern=r"^https?://", description="Host of the token refresh endpoint."
    )
    app_key: str = Field(min_length=1)
    app_secret: SecretStr
    access_token: SecretStr
    refresh_token: SecretStr
    shop_cipher: str = Field(min_length=1)
    # TikTok publishes no numeric QPS limit in its API reference; a TikTok Shop partner reported a
    # limit of 50 requests/s per app and shop from 2025 on. 10 stays well below that and leaves
    # room for other apps of the same shop; at 5, a flash sale's pushes queued for a minute.
    rate_limit: float = Field(default=10.0, gt=0, description="Requests per second, on average.")
    burst: int = Field(default=10, ge=1, description="Requests allowed back to back.")
    warehouse_id: str | None = Field(
        default=None,
        min_length=1,
        description="Warehouse that receives a SKU's whole quantity (others get 0); default: the SKU's first.",
    )
    warehouse_ids: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Instead of warehouse_id: the warehouses syncd counts and writes, in order. A SKU shows the sum"
            " over them; a new total goes to the first, the others keep theirs unless the total is below"
            " them (lowered, last named first); other warehouses are neither counted nor changed."
        ),
    )
    reread_below: int | None = Field(
        default=5,
        ge=0,
        description="Re-read a SKU right after writing a quantity at or below this; None: never.",
    )
    token_refresh_margin: Duration = Field(
        default=timedelta(hours=1), description="Refresh the access token this long before it expires."
    )
    throttle_wait: Duration = Field(
        default=timedelta(seconds=1),
        gt=timedelta(0),
        description="Pause after code 36009002 (too many requests); TikTok gives no Retry-After.",
    )
    webhook_fetch_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description=(
            "Tries to fetch the order a webhook names (its lines are not in it), the first included;"
            " after that the order poll reads it."
        ),
    )
    webhook_fetch_backoff: Duration = Field(
        default=timedelta(seconds=2),
        gt=timedelta(0),
        description="Wait before the second try of a failed webhook order fetch; doubled at each try, at most 5 min.",
    )
    page_size: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _one_warehouse_setting(self) -> Self:
        if self.warehouse_id is not None and self.warehouse_ids is not None:
            raise ValueError("give warehouse_id (all units to one) or warehouse_ids (named ones), not both")
        check_named_once("warehouse_ids", self.warehouse_ids)
        return self
