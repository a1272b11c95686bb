"""Settings of the Shopify (Admin GraphQL API) connector."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from connectors.settings import ChannelSettings


class ShopifySettings(ChannelSettings):
    """One Shopify store.

    syncd reads and sets the ``available`` quantity at one location, the sync location:
    ``location_id`` when given, else the first of ``location_ids``, else the shop's primary
    location. Stock at other locations is neither counted nor changed, so keep the units syncd
    manages at that one location.
    """

    type: Literal["shopify"]
    shop_domain: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
        description="The shop's permanent domain, e.g. example.myshopify.com.",
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Instead of shop_domain: the shop's root URL, https://<shop>.myshopify.com (or a sandbox).",
    )
    access_token: SecretStr
    api_version: str = Field(default="2026-10", pattern=r"^(\d{4}-(01|04|07|10)|unstable)$")
    location_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Locations syncd may use (None: all active ones); the first is the default sync location.",
    )
    location_id: str | None = Field(
        default=None,
        pattern=r"^gid://shopify/Location/\d+$",
        description="The location whose 'available' quantity syncd reads and sets.",
    )
    webhook_secret: SecretStr | None = Field(default=None, description="The app's client secret.")
    # Shopify limits GraphQL by query cost (the client follows the cost bucket), not by requests.
    rate_limit: float = Field(default=20.0, gt=0, description="Requests per second, on average.")
    burst: int = Field(default=20, ge=1, description="Requests allowed back to back.")
    bulk_threshold: int = Field(
        default=2000, ge=1, description="Catalogue size (variants) above which reads use a bulk operation."
    )

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.shop_domain is None) == (self.base_url is None):
            raise ValueError("give exactly one of shop_domain or base_url")
        return self

    @property
    def root_url(self) -> str:
        return (self.base_url or f"https://{self.shop_domain}").rstrip("/")
