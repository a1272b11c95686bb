"""Settings of the mock ERP connector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.settings import ConnectorSettings


class MockErpSettings(ConnectorSettings):
    type: Literal["mock_erp"]
    name: str = "erp"
    base_url: str = Field(pattern=r"^https?://", description="Root URL of the mock ERP API.")
    api_key: SecretStr
    rate_limit: float = Field(default=20.0, gt=0)
    burst: int = Field(default=20, ge=1)
    page_size: int = Field(default=1000, ge=1, le=5000, description="Stock records asked per request.")
