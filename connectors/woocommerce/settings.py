"""Settings of the WooCommerce (web store) connector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.settings import ChannelSettings


class WooCommerceSettings(ChannelSettings):
    type: Literal["woocommerce"]
    base_url: str = Field(pattern=r"^https?://", description="Store root, e.g. https://shop.example.com")
    consumer_key: SecretStr
    consumer_secret: SecretStr
    webhook_secret: SecretStr | None = None
    query_string_auth: bool = Field(
        default=False, description="Send the key pair as query parameters (servers that strip Authorization)."
    )
    per_page: int = Field(default=100, ge=1, le=100)
