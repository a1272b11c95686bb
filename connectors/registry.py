"""The explicit list of connector types: config ``type`` -> settings model and connector class."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import ChannelConnector, ErpConnector
from connectors.mock_erp.client import MockErpConnector
from connectors.mock_erp.settings import MockErpSettings
from connectors.shopify.client import ShopifyConnector
from connectors.shopify.settings import ShopifySettings
from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.settings import WooCommerceSettings

ERP_TYPES: dict[str, tuple[type[Any], type[ErpConnector]]] = {
    "mock_erp": (MockErpSettings, MockErpConnector),
}

CHANNEL_TYPES: dict[str, tuple[type[Any], type[ChannelConnector]]] = {
    "woocommerce": (WooCommerceSettings, WooCommerceConnector),
    "shopify": (ShopifySettings, ShopifyConnector),
}


def build_erp(settings: Any, transport: httpx.AsyncBaseTransport | None = None) -> ErpConnector:
    """Instantiate the ERP connector its settings' ``type`` names."""
    return ERP_TYPES[settings.type][1](settings, transport=transport)  # type: ignore[call-arg]


def build_channel(settings: Any, transport: httpx.AsyncBaseTransport | None = None) -> ChannelConnector:
    """Instantiate the channel connector its settings' ``type`` names."""
    return CHANNEL_TYPES[settings.type][1](settings, transport=transport)  # type: ignore[call-arg]
