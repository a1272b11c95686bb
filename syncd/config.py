"""Configuration: YAML validated by pydantic models, with ``${VAR}`` secrets from the environment.

``load_config`` is the only way in; every problem it finds becomes a ConfigError naming the file,
the key path and the reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.bling.settings import BlingSettings
from connectors.mock_erp.settings import MockErpSettings
from connectors.settings import Duration
from connectors.shopify.settings import ShopifySettings
from connectors.tiktok_shop.settings import TikTokShopSettings
from connectors.tiny.settings import TinySettings
from connectors.woocommerce.settings import WooCommerceSettings
from syncd.config_errors import DuplicateKeyError, UniqueKeyLoader, explain_errors
from syncd.errors import ConfigError

ErpSettings = Annotated[MockErpSettings | BlingSettings | TinySettings, Field(discriminator="type")]
ChannelSettings = Annotated[
    WooCommerceSettings | ShopifySettings | TikTokShopSettings, Field(discriminator="type")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Model):
    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the HTTP server listens on (127.0.0.1: this machine only; 0.0.0.0: every interface,"
            " as in the container image; then set api.token)."
        ),
    )
    port: int = Field(
        default=8080, ge=1, le=65535, description="Port of /health, /ready, /metrics, /status, the API and webhooks."
    )
    max_webhook_body: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest webhook body accepted, in bytes; a larger one is refused with 413 unread.",
    )


class ScheduleSettings(_Model):
    reconcile_interval: Duration = Field(
        default=timedelta(minutes=5),
        gt=timedelta(0),
        description="Full reconcile: read back every channel, record drift, push corrections.",
    )
    order_poll_interval: Duration = Field(
        default=timedelta(seconds=45), gt=timedelta(0), description="Order poll: the safety net for lost webhooks."
    )
    erp_poll_interval: Duration = Field(
        default=timedelta(seconds=60), gt=timedelta(0), description="ERP poll: restocks and manual ERP edits."
    )
    jitter: Duration = Field(
        default=timedelta(seconds=2), ge=timedelta(0), description="Random delay added to each scheduled cycle."
    )
    order_overlap: Duration = Field(
        default=timedelta(minutes=5), ge=timedelta(0), description="Re-read window of order polls."
    )
    initial_lookback: Duration = Field(
        default=timedelta(days=1), ge=timedelta(0), description="How far back the first order poll reads."
    )
    push_attempts: int = Field(default=5, ge=1, description="Tries of one push before it is given up.")
    push_debounce: Duration = Field(
        default=timedelta(milliseconds=200),
        ge=timedelta(0),
        description="Fast path: how long to gather sales into one batch before pushing.",
    )


Threshold = Annotated[int, Field(ge=0)] | Literal["auto"]


class SkuOverride(_Model):
    safety_stock: int | None = Field(default=None, ge=0, description="This SKU's safety stock (unset: stock's).")
    low_stock_threshold: Threshold | None = Field(
        default=None, description="This SKU's low-stock threshold, a number or auto (unset: stock's)."
    )


class AutoThresholdSettings(_Model):
    """``low_stock_threshold: auto``: units likely to sell before a push lands, i.e. of the sales
    expected in one propagation latency (sales per minute x latency / 60), the count exceeded with a
    chance below 1% (Poisson), within [floor, cap]; the sales rate is the higher of the rates over
    ``window`` and over ``burst_window``."""

    floor: int = Field(
        default=5,
        ge=0,
        description=(
            "Smallest threshold auto gives: a SKU's last units are always split, since two or three"
            " channels can sell the same last unit within milliseconds, faster than any push lands."
        ),
    )
    cap: int = Field(default=500, ge=0, description="Largest threshold auto gives.")
    window: Duration = Field(
        default=timedelta(minutes=15), gt=timedelta(0), description="Sales rate measured over this window."
    )
    burst_window: Duration = Field(
        default=timedelta(minutes=1),
        gt=timedelta(0),
        description="Also measure the rate over this short window and take the higher: a burst shows at once.",
    )
    latency: Duration | None = Field(
        default=None, description="Fixed latency; unset: the measured p95 propagation time."
    )
    default_latency: Duration = Field(
        default=timedelta(seconds=2), gt=timedelta(0), description="Until enough latency is measured."
    )

    @model_validator(mode="after")
    def _floor_below_cap(self) -> AutoThresholdSettings:
        if self.floor > self.cap:
            raise ValueError(f"floor {self.floor} is above cap {self.cap}")
        return self


class StockSettings(_Model):
    safety_stock: int = Field(default=0, ge=0, description="Units never offered anywhere, per SKU.")
    low_stock_threshold: Threshold = Field(
        default="auto",
        description=(
            "At or below this ats, channels split the units instead of sharing: a whole number, or auto"
            " (units likely to sell elsewhere before a push lands, at least auto_threshold.floor)."
        ),
    )
    auto_threshold: AutoThresholdSettings = AutoThresholdSettings()
    split_by: Literal["demand", "weight"] = Field(
        default="demand",
        description=(
            "Low-stock mode: how channels of equal priority split the units. demand: each channel's"
            " policy weight times 1 + the units of the SKU it sold over auto_threshold.burst_window,"
            " so every part runs out at about the same time (a channel without sales still gets"
            " its share of one); weight: by the policy weights alone."
        ),
    )
    hold_in_flight: bool = Field(
        default=True,
        description=(
            "Count the units a SKU has likely sold but not yet reported (its sales rate over the"
            " last seconds x how late sales reach syncd): outside low-stock mode they are not"
            " offered; in it they are not handed out again. Off: only reported sales count."
        ),
    )
    skus: dict[str, SkuOverride] = Field(default_factory=dict)

    def safety_for(self, sku: str) -> int:
        override = self.skus.get(sku)
        if override is not None and override.safety_stock is not None:
            return override.safety_stock
        return self.safety_stock

    def threshold_for(self, sku: str) -> int | Literal["auto"]:
        override = self.skus.get(sku)
        if override is not None and override.low_stock_threshold is not None:
            return override.low_stock_threshold
        return self.low_stock_threshold


class LoggingSettings(_Model):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lines below this level are dropped; debug logs every API call."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON when not on a terminal, readable lines on one."
    )


class EventSettings(_Model):
    """A time-boxed override for one channel, e.g. a scheduled live stream on TikTok Shop."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$", description="Unique name (also its id in the API)."
    )
    channel: str = Field(description="The channel it applies to (a channel's name).")
    start: AwareDatetime = Field(description="When it starts (ISO 8601 with a time zone).")
    end: AwareDatetime = Field(description="When it ends; it expires by itself.")
    share: int | None = Field(default=None, ge=0, le=100, description="Replaces the channel's share.")
    reserve: int | None = Field(default=None, ge=0, description="Units ring-fenced for the channel.")
    priority: int | None = Field(default=None, ge=0, description="Replaces the channel's low-stock priority.")

    @model_validator(mode="after")
    def _sensible(self) -> EventSettings:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.share is None and self.reserve is None and self.priority is None:
            raise ValueError("an event needs at least one of share, reserve or priority")
        return self

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end


class ApiSettings(_Model):
    token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token for POST/DELETE /api/events; when set, /status, /api/status, GET /api/events"
            " and /metrics need it too (/status?token=... once in a browser); /health and /ready stay open."
        ),
    )

    @field_validator("token")
    @classmethod
    def _empty_is_off(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token (an unset ${VAR:-}) turns the API off rather than accepting "Bearer ".
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the API token must be at least 16 characters")
        return value


class ReadinessSettings(_Model):
    max_success_age: Duration = Field(
        default=timedelta(minutes=15), gt=timedelta(0), description="Older last success: not ready."
    )


class AlertWebhookSettings(_Model):
    url: SecretStr = Field(description="Where alerts are POSTed; a Slack webhook URL is a secret, so ${VAR}.")
    format: Literal["slack", "json"] = Field(
        default="slack", description='slack: {"text": ...}; json: the alert\'s fields as a JSON object.'
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^https?://[^/\s]+", value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value


class AlertSettings(_Model):
    """Webhook notifications for conditions a person must act on; off while ``webhooks`` is empty."""

    webhooks: list[AlertWebhookSettings] = Field(default_factory=list)
    check_interval: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    cooldown: Duration = Field(
        default=timedelta(minutes=15), ge=timedelta(0), description="A resolved alert opens again no sooner."
    )
    max_messages: int = Field(default=10, ge=1, description="Per check; more are summed up in one message.")
    retry_attempts: int = Field(default=3, ge=1, le=10, description="Tries per message, first included.")
    timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    channel_down_after: Duration = Field(default=timedelta(minutes=10), gt=timedelta(0))
    refused_after: Duration = Field(
        default=timedelta(minutes=2),
        gt=timedelta(0),
        description="A sale not in the ERP this long after it, while the ERP answers, was refused.",
    )
    drift_repeats: int = Field(default=3, ge=2, description="Drifts of one listing within drift_window.")
    drift_window: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    min_cover: Duration = Field(
        default=timedelta(hours=6),
        gt=timedelta(0),
        description="Alert when a hot SKU's shown units or ERP stock last less than this at its sales rate.",
    )
    sales_window: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    hot_rate: float = Field(default=2.0, gt=0, description="Units per hour over sales_window that make a SKU hot.")


class MappingSettings(_Model):
    file: str | None = Field(
        default=None,
        description="CSV or YAML file mapping channel SKUs to ERP SKUs and kits; unset: by code.",
    )


class ReplicaSettings(_Model):
    """Several daemons on one PostgreSQL ledger: one of them, the lease holder, syncs."""

    lease_period: Duration = Field(
        default=timedelta(seconds=10),
        ge=timedelta(seconds=1),
        description=(
            "How long the syncer's lease lasts unrenewed (PostgreSQL only; it is renewed every third of"
            " it). A standby takes over within two periods of the syncer dying; shorter costs more"
            " ledger writes, longer more time without pushes."
        ),
    )
    lease_name: str = Field(
        default="syncer",
        min_length=1,
        description="The lease's row in the ledger: replicas of one shop share it, each shop has its own.",
    )


class HistorySettings(_Model):
    retention: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        description="SKU history, drift and finished runs older than this are deleted.",
    )


class Config(_Model):
    database_url: str = Field(
        default="sqlite:///data/syncd.db",
        description=(
            "The ledger: sqlite:///relative/path, sqlite:////absolute/path (one daemon per file), or"
            " postgresql+psycopg://user:${PASSWORD}@host:5432/db (a database server)."
        ),
    )
    server: ServerSettings = ServerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    stock: StockSettings = StockSettings()
    erp: ErpSettings
    channels: list[ChannelSettings] = Field(min_length=1)
    events: list[EventSettings] = Field(default_factory=list)
    api: ApiSettings = ApiSettings()
    logging: LoggingSettings = LoggingSettings()
    readiness: ReadinessSettings = ReadinessSettings()
    history: HistorySettings = HistorySettings()
    alerts: AlertSettings = AlertSettings()
    mapping: MappingSettings = MappingSettings()
    replicas: ReplicaSettings = ReplicaSettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql(\+psycopg)?|postgres)://", value):
            raise ValueError("must start with sqlite:///, postgresql:// or postgresql+psycopg://")
        return value

    @model_validator(mode="after")
    def _unique_channel_names(self) -> Config:
        seen: set[str] = set()
        for channel in self.channels:
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} is used more than once")
            seen.add(channel.name)
        if self.erp.name in seen:
            raise ValueError(f"the ERP's name {self.erp.name!r} is also a channel name")
        for event in self.events:
            if event.channel not in seen:
                raise ValueError(
                    f"event {event.name!r} names channel {event.channel!r}; channels: {sorted(seen)}"
                )
        return self

    def secrets(self) -> list[str]:
        """Every secret value in the config, for log redaction."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                if secret:
                    found.append(secret)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self)
        return found

    def summary(self) -> list[str]:
        """What would run, in a few human lines (no secrets)."""
        s = self.schedule
        lines = [
            f"database: {_mask_url(self.database_url)}",
            f"server: http://{self.server.host}:{self.server.port}",
            f"erp: {self.erp.name} ({self.erp.type}) at {self.erp.base_url}",
        ]
        for c in self.channels:
            p = c.policy
            state = "" if c.enabled else " [disabled]"
            address = getattr(c, "root_url", None) or c.base_url
            lines.append(
                f"channel: {c.name} ({c.type}) at {address}{state}: share {p.share}%, buffer {p.buffer}, "
                f"cap {p.cap if p.cap is not None else 'none'}, priority {p.priority}, weight {p.weight}"
            )
        lines.append(
            f"stock: safety stock {self.stock.safety_stock}, low-stock threshold "
            f"{self.stock.low_stock_threshold}, {len(self.stock.skus)} SKU override(s)"
        )
        lines.append(
            f"schedule: reconcile every {_human(s.reconcile_interval)}, orders every "
            f"{_human(s.order_poll_interval)}, ERP every {_human(s.erp_poll_interval)}"
        )
        if not self.database_url.startswith("sqlite"):
            lines.append(
                f"replicas: the one holding lease {self.replicas.lease_name!r} (period"
                f" {_human(self.replicas.lease_period)}) syncs, the others take webhooks"
            )
        return lines

    def warnings(self) -> list[str]:
        """Settings that are valid but likely to hurt, each with what it will do and the fix."""
        found: list[str] = []
        polls = f"only the order poll (every {_human(self.schedule.order_poll_interval)}) will see its sales"
        for i, c in enumerate(self.channels):
            if "webhook_secret" in type(c).model_fields and getattr(c, "webhook_secret", None) is None:
                found.append(
                    f"channels[{i}] ({c.name}): no webhook_secret, so every webhook to /webhooks/{c.name}"
                    f" will be refused with 401 and {polls}; set webhook_secret"
                )
        if self.api.token is None and self.events:
            found.append(
                "events: configured but api.token is not set, so /api/events cannot add, change or end"
                " an event while syncd runs; set api.token (at least 16 characters)"
            )
        if self.api.token is None and not _loopback(self.server.host):
            found.append(
                f"server.host: {self.server.host} is reachable from other machines and api.token is not"
                " set, so anyone who can reach it reads /status, /api/status and /metrics (SKUs,"
                " quantities, errors); set api.token (at least 16 characters) or server.host: 127.0.0.1"
            )
        zero = "0 means channels share the last unit and two of them can sell it; use a few units or auto"
        if self.stock.low_stock_threshold == 0:
            found.append(f"stock.low_stock_threshold: {zero}")
        for sku, override in self.stock.skus.items():
            if override.low_stock_threshold == 0:
                found.append(f"stock.skus.{sku}.low_stock_threshold: {zero}")
        return found


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _human(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def _mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; unknown variables are errors,
    all of them reported together so that one run of check-config lists every variable to set."""
    missing: list[str] = []
    expanded = _expand(value, env, path, missing)
    if missing:
        raise ConfigError("\n".join(missing), problems=missing)
    return expanded


def _expand(value: Any, env: Mapping[str, str], path: str, missing: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(f"{path}: environment variable {name} is not set")
        return ""

    return _VAR.sub(replace, value)


def parse_config(data: Any, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate already-loaded YAML data; ConfigError lists every problem with its key path."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty", source=source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys", source=source)
    try:
        expanded = expand_env(data, os.environ if env is None else env)
    except ConfigError as exc:
        problems = [f"{source}: {problem}" for problem in exc.problems]
        raise ConfigError("\n".join(problems), source=source, problems=problems) from None
    try:
        return Config.model_validate(expanded)
    except ValidationError as exc:
        problems = [f"{source}: {problem}" for problem in explain_errors(Config, exc)]
        raise ConfigError("\n".join(problems), source=source, problems=problems) from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a YAML config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}", source=source) from exc
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{source}: {exc}", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {reason}", source=source) from None
    return parse_config(data, source, env)
