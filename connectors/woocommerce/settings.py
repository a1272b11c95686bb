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
    # The REST API has no rate limit of its own; the store's server sets what it bears. Ten small
    # calls a second is light for a store host and keeps a flash sale's pushes from queueing.
    rate_limit: float = Field(default=10.0, gt=0, description="Requests per second, on average.")
    burst: int = Field(default=10, ge=1, description="Requests allowed back to back.")
