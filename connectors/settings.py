"""Settings shared by every connector: the parts of a connector's YAML that are not API-specific."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Spelled-out units people write ("15 seconds", "2 mins") mean the same as the short ones.
_UNIT_WORDS = {
    "ms": "ms", "msec": "ms", "msecs": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)\s*")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+$")


def parse_duration(value: Any) -> Any:
    """Accept ``"90s"``, ``"5m"``, ``"1h30m"``, ``"15 seconds"``, ``"200ms"`` besides what pydantic
    reads itself (seconds as a number, ISO 8601 ``PT5M``); anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        text = value.strip().lower()
        if _DURATION.match(text):
            parts = _PART.findall(text)
            if all(unit in _UNIT_WORDS for _, unit in parts):
                return timedelta(
                    seconds=sum(float(n) * _UNIT_SECONDS[_UNIT_WORDS[unit]] for n, unit in parts)
                )
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
    circuit_failures: int = Field(
        default=5,
        ge=1,
        description=(
            "Transient failures in a row (timeouts, connection errors, 5xx; not throttling, not 4xx)"
            " after which calls are refused at once until a trial call succeeds. Retries count."
        ),
    )
    circuit_cooldown: Duration = Field(
        default=timedelta(seconds=10),
        ge=timedelta(0),
        description="Wait before the first trial call once the circuit opens; doubled after each failed trial.",
    )
    circuit_max_cooldown: Duration = Field(
        default=timedelta(minutes=2),
        gt=timedelta(0),
        description="Longest wait between trial calls while the API stays down.",
    )
    max_quantity: int = Field(
        default=1_000_000,
        ge=1,
        description=(
            "Largest quantity believed from this system (an order line, an on-hand or a listing level)."
            " Anything above it, negative or not an integer is refused: quarantined, never acted on."
        ),
    )

    @model_validator(mode="after")
    def _cooldowns_in_order(self) -> Self:
        if self.circuit_max_cooldown < self.circuit_cooldown:
            raise ValueError("circuit_max_cooldown must be at least circuit_cooldown")
        return self


class ErpConnectorSettings(ConnectorSettings):
    """What every ERP entry has besides its API settings."""

    max_staleness: Duration = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description=(
            "ERP outage mode: once the ERP has not answered for this long, syncd stops raising any"
            " quantity and takes low-stock SKUs off sale (0 on every channel), since stock may have"
            " gone elsewhere meanwhile; when the ERP answers again, the channels' orders are taken in"
            " before anything is raised."
        ),
    )


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
