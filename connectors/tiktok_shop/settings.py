"""Settings of the TikTok Shop channel connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from connectors.settings import ChannelSettings, Duration

API_HOST = "https://open-api.tiktokglobalshop.com"
AUTH_HOST = "https://auth.tiktok-shops.com"


class TikTokShopSettings(ChannelSettings):
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
        description="Warehouse that receives a SKU's whole quantity (others get 0); default: the SKU's first.",
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
    page_size: int = Field(default=100, ge=1, le=100)
