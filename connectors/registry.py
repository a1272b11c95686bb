"""The explicit list of connector types: config ``type`` -> settings model and connector class."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import ChannelConnector, ErpConnector, ErpRecordStore, TokenStore
from connectors.bling.client import BlingConnector
from connectors.bling.settings import BlingSettings
from connectors.mock_erp.client import MockErpConnector
from connectors.mock_erp.settings import MockErpSettings
from connectors.shopify.client import ShopifyConnector
from connectors.shopify.settings import ShopifySettings
from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.settings import TikTokShopSettings
from connectors.tiny.client import TinyConnector
from connectors.tiny.settings import TinySettings
from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.settings import WooCommerceSettings

ERP_TYPES: dict[str, tuple[type[Any], type[ErpConnector]]] = {
    "mock_erp": (MockErpSettings, MockErpConnector),
    "bling": (BlingSettings, BlingConnector),
    "tiny": (TinySettings, TinyConnector),
}

CHANNEL_TYPES: dict[str, tuple[type[Any], type[ChannelConnector]]] = {
    "woocommerce": (WooCommerceSettings, WooCommerceConnector),
    "shopify": (ShopifySettings, ShopifyConnector),
    "tiktok_shop": (TikTokShopSettings, TikTokShopConnector),
}


def build_erp(
    settings: Any,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    tokens: TokenStore | None = None,
    records: ErpRecordStore | None = None,
) -> ErpConnector:
    """Instantiate the ERP connector its settings' ``type`` names; connectors that refresh their own
    tokens get ``tokens``, those that keep records of what they posted get ``records``."""
    cls = ERP_TYPES[settings.type][1]
    extra: dict[str, Any] = {}
    if cls.uses_tokens:
        extra["tokens"] = tokens
    if cls.uses_records:
        extra["records"] = records
    return cls(settings, transport=transport, **extra)  # type: ignore[call-arg]


def build_channel(
    settings: Any, transport: httpx.AsyncBaseTransport | None = None, tokens: TokenStore | None = None
) -> ChannelConnector:
    """Instantiate the channel connector its settings' ``type`` names; connectors that refresh
    their own tokens get ``tokens`` to keep them in."""
    cls = CHANNEL_TYPES[settings.type][1]
    if cls.uses_tokens:
        return cls(settings, transport=transport, tokens=tokens)  # type: ignore[call-arg]
    return cls(settings, transport=transport)  # type: ignore[call-arg]
