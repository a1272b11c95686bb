"""Settings of the Shopify (Admin GraphQL API) connector."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, StringConstraints, model_validator

from connectors.locations import check_named_once
from connectors.settings import ChannelSettings

_LOCATION = r"^gid://shopify/Location/\d+$"


class ShopifySettings(ChannelSettings):
    """One Shopify store.

    syncd reads and sets the ``available`` quantity at the sync locations: ``location_id`` (one),
    or ``location_ids`` (one or several, in the order given), else the shop's primary location.
    Stock at other locations is neither counted nor changed, so keep the units syncd manages at
    the sync locations.

    With several: a variant shows the sum of its ``available`` at the sync locations that stock
    it. A new total is written so: the first named location (that stocks the item) takes the
    change; every other keeps its units, unless the total is below what they hold together, when
    they are lowered, the last named first, until it fits (a negative level is set to 0). The
    levels then add up to the total exactly, so the shop never shows more than syncd set. The
    write re-reads the levels and, when the push carries a compare value, checks it against their
    sum and compares each level it changes (compare-and-set): a sale landing in between at any of
    them makes the write stale instead of overwriting it. Every location in ``location_ids`` must
    exist and be active (checked at the first call; the error names those that are not).
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
    location_ids: list[Annotated[str, StringConstraints(pattern=_LOCATION)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "The sync locations (gid://shopify/Location/<id>), in order: a variant's quantity is the sum"
            " of its 'available' there; a new total goes to the first, the others keep theirs unless the"
            " total is below them (lowered, last named first). None: location_id, else the primary location."
        ),
    )
    location_id: str | None = Field(
        default=None,
        pattern=_LOCATION,
        description="One location whose 'available' quantity syncd reads and sets (instead of location_ids).",
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
        if self.location_id is not None and self.location_ids is not None:
            raise ValueError("give location_id (one location) or location_ids (one or several), not both")
        check_named_once("location_ids", self.location_ids)
        return self

    @property
    def sync_locations(self) -> tuple[str, ...] | None:
        """The configured sync locations in order; None: the shop's primary location."""
        if self.location_id is not None:
            return (self.location_id,)
        return tuple(self.location_ids) if self.location_ids else None

    @property
    def root_url(self) -> str:
        return (self.base_url or f"https://{self.shop_domain}").rstrip("/")
