"""Settings shared by every connector: the parts of a connector's YAML that are not API-specific."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Accept ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"200ms"`` besides what pydantic reads itself."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ConnectorSettings(BaseModel):
    """Network behaviour common to every connector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = Field(
        default=timedelta(seconds=30), gt=timedelta(0), description="Per-request timeout."
    )
    rate_limit: float = Field(default=5.0, gt=0, description="Requests per second, on average.")
    burst: int = Field(default=5, ge=1, description="Requests allowed back to back.")
    retry_attempts: int = Field(default=4, ge=1, le=20, description="Tries per request, first included.")


class ChannelPolicySettings(BaseModel):
    """How much of the available stock a channel may show (see ``syncd.core.ChannelPolicy``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: int = Field(default=100, ge=0, le=100, description="Percent of available stock.")
    buffer: int = Field(default=0, ge=0, description="Units held back from this channel.")
    cap: int | None = Field(default=None, ge=0, description="Most units this channel may show.")
    priority: int = Field(default=100, ge=0, description="Low-stock mode: lower is served first.")
    weight: int = Field(default=1, ge=1, description="Low-stock mode: share among equal priority.")


class ChannelSettings(ConnectorSettings):
    """What every channel entry has besides its API settings."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Unique channel name.")
    enabled: bool = True
    policy: ChannelPolicySettings = ChannelPolicySettings()
