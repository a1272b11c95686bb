"""Shopify settings: where the shop is, and secrets kept out of sight."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connectors.shopify.settings import ShopifySettings

BASE: dict[str, Any] = {"type": "shopify", "name": "shopify", "access_token": "shpat_hidden"}


def test_shop_domain_gives_the_https_root() -> None:
    """shop_domain becomes https://<shop>.myshopify.com, and the API version defaults to 2026-10."""
    settings = ShopifySettings(**BASE, shop_domain="example.myshopify.com")

    assert settings.root_url == "https://example.myshopify.com"
    assert settings.api_version == "2026-10"
    assert "shpat_hidden" not in repr(settings)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"shop_domain": "example.myshopify.com", "base_url": "http://x"},
        {"shop_domain": "example.com"},
        {"base_url": "ftp://x"},
        {"base_url": "http://x", "api_version": "2026-02"},
    ],
    ids=["neither", "both", "not-myshopify", "bad-scheme", "bad-version"],
)
def test_bad_addresses_and_versions_are_refused(extra: dict[str, Any]) -> None:
    """Exactly one of shop_domain or base_url, of the right form, and a real API version."""
    with pytest.raises(ValidationError):
        ShopifySettings(**BASE, **extra)
