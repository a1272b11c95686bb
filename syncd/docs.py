"""The configuration reference, generated from the pydantic models so that it cannot drift from them.

``python -m syncd.docs`` writes ``docs/configuration.md``; ``python -m syncd.docs --check`` exits 1
when the file is out of date (a test runs it). Every key gets its type, default, meaning and an
example; every section gets a YAML example that validates against the models.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AwareDatetime, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from syncd.config import Config

TARGET = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

# Values for keys that have no default, or whose default says little; secrets are ${VARIABLES}.
# A key may be narrowed to one connector type with "@type".
EXAMPLES: dict[str, Any] = {
    "database_url": "sqlite:////var/lib/syncd/syncd.db",
    "erp.base_url@mock_erp": "https://erp.example.com",
    "erp.api_key": "${SYNCD_ERP_API_KEY}",
    "channels.name@woocommerce": "webstore",
    "channels.name@shopify": "shopify",
    "channels.name@tiktok_shop": "tiktok",
    "channels.base_url@woocommerce": "https://shop.example.com",
    "channels.base_url@shopify": "https://example.myshopify.com",
    "channels.consumer_key": "${SYNCD_WC_CONSUMER_KEY}",
    "channels.consumer_secret": "${SYNCD_WC_CONSUMER_SECRET}",
    "channels.webhook_secret@woocommerce": "${SYNCD_WC_WEBHOOK_SECRET}",
    "channels.webhook_secret@shopify": "${SYNCD_SHOPIFY_CLIENT_SECRET}",
    "channels.shop_domain": "example.myshopify.com",
    "channels.access_token@shopify": "${SYNCD_SHOPIFY_ACCESS_TOKEN}",
    "channels.access_token@tiktok_shop": "${SYNCD_TIKTOK_ACCESS_TOKEN}",
    "channels.app_key": "${SYNCD_TIKTOK_APP_KEY}",
    "channels.app_secret": "${SYNCD_TIKTOK_APP_SECRET}",
    "channels.refresh_token": "${SYNCD_TIKTOK_REFRESH_TOKEN}",
    "channels.shop_cipher": "${SYNCD_TIKTOK_SHOP_CIPHER}",
    "channels.location_id": "gid://shopify/Location/123",
    "channels.warehouse_id": "7301234567890",
    "events.name": "friday-live",
    "events.channel": "tiktok",
    "events.start": "2026-11-27T18:00:00Z",
    "events.end": "2026-11-27T20:00:00Z",
    "events.reserve": 50,
    "api.token": "${SYNCD_API_TOKEN}",
    "stock.skus.safety_stock": 0,
    "stock.skus.low_stock_threshold": 10,
    "alerts.webhooks.url": "${SYNCD_ALERT_WEBHOOK_URL}",
    "mapping.file": "/etc/syncd/mapping.csv",
    "erp.client_id@bling": "${SYNCD_BLING_CLIENT_ID}",
    "erp.contact_id@bling": 12345678,
    "erp.client_id@tiny": "${SYNCD_TINY_CLIENT_ID}",
    "erp.contact_id@tiny": 12345678,
}
# Keys an example shows only as a comment: another key takes their place (Shopify's base_url
# instead of shop_domain) or they only narrow a default.
COMMENTED = {"channels.base_url@shopify", "channels.location_id", "channels.warehouse_id", "mapping.file"}
# Meanings of keys whose model gives none.
NOTES: dict[str, str] = {
    "erp.type": "Which ERP connector.",
    "erp.name": "Name of the ERP in logs, metrics and /status.",
    "erp.api_key": "The ERP API key (Bearer).",
    "erp.base_url": "Root URL of the ERP's API.",
    "channels.type": "Which channel connector.",
    "channels.enabled": "false: keep the entry but leave the channel alone.",
    "channels.consumer_key": "REST API key (Read/Write).",
    "channels.consumer_secret": "REST API secret.",
    "channels.webhook_secret": "Secret the channel signs its webhooks with; unset: every webhook gets 401.",
    "channels.per_page": "Products asked per page when reading listings.",
    "channels.page_size": "Products asked per page when reading listings.",
    "channels.access_token": "API access token.",
    "channels.api_version": "Admin API version (YYYY-01, -04, -07 or -10).",
    "channels.app_key": "The app's key (Partner Center).",
    "channels.app_secret": "The app's secret; signs requests and webhooks.",
    "channels.refresh_token": "Refresh token; syncd refreshes the access token itself and keeps it in the ledger.",
    "channels.shop_cipher": "The authorised shop's cipher (from Get Authorized Shops).",
    "alerts.webhooks": "Where alerts go; none: alerts off.",
    "alerts.check_interval": "How often the alert conditions are checked.",
    "alerts.timeout": "Per-message request timeout.",
    "alerts.channel_down_after": "Alert when a channel has failed for this long.",
    "alerts.drift_window": "Window of drift_repeats.",
    "alerts.sales_window": "Sales rate of the stock-depth alert measured over this window.",
}
# Connector keys every connector has (network behaviour): listed after the connector's own keys.
_SHARED_LAST = ("timeout", "rate_limit", "burst", "retry_attempts", "circuit_")

_SECTION_TITLES = {"": "Top level"}


@dataclass
class Key:
    name: str
    kind: str
    default: str
    meaning: str
    example: Any
    required: bool
    explicit: bool  # the example comes from EXAMPLES, not from the default


@dataclass
class Section:
    path: str  # e.g. "channels[] (type: shopify)"
    wrap: list[str | int]  # where the section sits in a config: ["channels", 0]
    model: type[BaseModel]
    dotted: str  # the section's keys in EXAMPLES: "channels", "stock.skus"
    tag: str | None
    keys: list[Key] = field(default_factory=list)
    nested: list[str] = field(default_factory=list)  # table rows pointing at the sections below


def _unwrap(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind(annotation: Any) -> str:
    parts: list[str] = []
    for tp in _unwrap(annotation):
        origin = get_origin(tp)
        if tp is type(None):
            parts.append("null")
        elif origin is Literal:
            parts.append(" \\| ".join(f"`{a}`" for a in get_args(tp)))
        elif tp is bool:
            parts.append("true/false")
        elif tp is int:
            parts.append("whole number")
        elif tp is float:
            parts.append("number")
        elif tp is str:
            parts.append("text")
        elif tp is SecretStr:
            parts.append("secret (write `${VAR}`)")
        elif tp is timedelta:
            parts.append("duration")
        elif tp is AwareDatetime or getattr(tp, "__name__", "") == "datetime":
            parts.append("date-time with time zone")
        elif origin is list:
            parts.append(f"list of {_kind(get_args(tp)[0])}")
        elif origin is dict:
            parts.append(f"map of {_kind(get_args(tp)[1])}")
        elif _is_model(tp):
            parts.append("section")
        else:
            parts.append(getattr(tp, "__name__", str(tp)))
    return " or ".join(dict.fromkeys(parts))


def _human(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


def _plain(value: Any) -> Any:
    """A default as it would be written in YAML."""
    if isinstance(value, timedelta):
        return _human(value)
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _default(info: FieldInfo) -> tuple[bool, Any]:
    if info.default is not PydanticUndefined:
        return True, info.default
    if info.default_factory is not None:
        return True, info.default_factory()  # type: ignore[call-arg]
    return False, None


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`"


def _sample(key: str, info: FieldInfo, kind_of: Any) -> Any:
    """An example value for a required key the EXAMPLES table does not cover."""
    kinds = _unwrap(kind_of)
    if SecretStr in kinds:
        return "${SYNCD_" + re.sub(r"[^A-Z0-9]+", "_", key.upper()).strip("_") + "}"
    pattern = next((m.pattern for m in info.metadata if hasattr(m, "pattern")), None)
    if pattern and pattern.startswith("^https?://"):
        return "https://example.com"
    if int in kinds:
        return 1
    return "example"


def _collect(model: type[BaseModel], path: str, dotted: str, wrap: list[str | int], tag: str | None,
             sections: list[Section]) -> Section:  # fmt: skip
    section = Section(path or "", wrap, model, dotted, tag)
    sections.append(section)
    fields = list(model.model_fields.items())
    if tag is not None:
        fields.sort(key=lambda item: item[0].startswith(_SHARED_LAST) or item[0] == "max_quantity")
    for name, info in fields:
        key = f"{dotted}.{name}" if dotted else name
        kinds = [t for t in _unwrap(info.annotation) if t is not type(None)]
        models = [t for t in kinds if _is_model(t)]
        origin = get_origin(kinds[0]) if len(kinds) == 1 else None
        shown = f"{path}.{name}" if path else name
        if models and len(models) == len(kinds) and not any(p == shown for p in _nested_titles(sections)):
            section.nested.append(_nested_row(name, info, "section", models))
        if models and len(models) == len(kinds):  # a nested section, or a choice of them by type
            for sub in models:
                sub_tag = _tag(sub) if len(models) > 1 else None
                title = f"{shown} (type: {sub_tag})" if sub_tag else shown
                if tag is not None:  # e.g. a channel's policy: the same for every channel type
                    title = re.sub(r" \(type: [^)]*\)", "", title)
                    if any(s.path == title for s in sections):
                        continue
                _collect(sub, title, key, [*wrap, name], sub_tag or tag, sections)
            continue
        if origin in (list, dict):
            inner = [t for t in _unwrap(get_args(kinds[0])[-1]) if t is not type(None)]
            if inner and all(_is_model(t) for t in inner):
                what = "list of entries" if origin is list else "map of SKU to settings"
                section.nested.append(_nested_row(name, info, what, inner))
                for sub in inner:
                    sub_tag = _tag(sub) if len(inner) > 1 else None
                    entry = "[]" if origin is list else ".<SKU>"
                    title = f"{shown}{entry}" + (f" (type: {sub_tag})" if sub_tag else "")
                    where: list[str | int] = [*wrap, name, 0 if origin is list else "TEE-BLK-M"]
                    _collect(sub, title, key, where, sub_tag, sections)
                continue
        has_default, default = _default(info)
        example = EXAMPLES.get(f"{key}@{tag}", EXAMPLES.get(key))
        explicit = example is not None
        if example is None:
            example = _plain(default) if has_default else _sample(key, info, info.annotation)
        if name == "type" and tag:
            example = tag
        meaning = info.description or NOTES.get(f"{key}@{tag}") or NOTES.get(key) or _inherited(model, name)
        section.keys.append(
            Key(
                name,
                _kind(info.annotation),
                _show(_plain(default)) if has_default else "**required**",
                meaning,
                example,
                required=not has_default,
                explicit=explicit,
            )
        )
    return section


def _nested_titles(sections: list[Section]) -> set[str]:
    return {s.path for s in sections}


def _nested_row(name: str, info: FieldInfo, what: str, models: list[Any]) -> str:
    has_default, default = _default(info)
    tags = [t for m in models if (t := _tag(m))]
    kind = what + (f", by `type`: {', '.join(f'`{t}`' for t in tags)}" if len(tags) > 1 else "")
    shown = "**required**" if not has_default else (_show(_plain(default)) if default in ([], {}) else "")
    meaning = (info.description or "") + (" " if info.description else "") + "See below."
    return f"| `{name}` | {kind} | {shown} | {meaning} |"


def _inherited(model: type[BaseModel], name: str) -> str:
    """The description of a field a subclass redeclared (a new default) without one."""
    for base in model.__mro__[1:]:
        if isinstance(base, type) and issubclass(base, BaseModel):
            info = base.model_fields.get(name)
            if info is not None and info.description:
                return str(info.description)
    return ""


def _tag(model: type[BaseModel]) -> str | None:
    info = model.model_fields.get("type")
    if info is None or get_origin(info.annotation) is not Literal:
        return None
    return str(get_args(info.annotation)[0])


def sections() -> list[Section]:
    """Every section of the config, top level first, in the models' order."""
    found: list[Section] = []
    _collect(Config, "", "", [], None, found)
    return found


def example_of(section: Section) -> str:
    """A YAML example of the section, placed where it sits in a config file: its required keys and
    those with an example of their own, or, in a section with nothing required, every default."""
    brief = any(k.required for k in section.keys)
    body: dict[str, Any] = {}
    commented: list[str] = []
    for key in section.keys:
        full = f"{section.dotted}.{key.name}" if section.dotted else key.name
        if full in COMMENTED or f"{full}@{section.tag}" in COMMENTED:
            commented.append(f"# {key.name}: {_show(key.example).strip('`')}")
        elif key.required or key.explicit or (not brief and key.example is not None):
            body[key.name] = key.example
    value: Any = body
    for part in reversed(section.wrap):
        value = [value] if isinstance(part, int) else {part: value}
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    indent = 0
    for i in range(len(section.wrap)):
        followed_by_list = i + 1 < len(section.wrap) and isinstance(section.wrap[i + 1], int)
        indent += 0 if followed_by_list else 2
    return text + "".join(f"{' ' * indent}{line}\n" for line in commented)


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m syncd.docs` from the models in syncd/config.py and",
        "     connectors/*/settings.py; do not edit by hand (tests/docs checks it is current). -->",
        "",
        "A config file is YAML. Unknown keys are refused, and so is a key written twice. Secrets are",
        "written `${VARIABLE}` (or `${VARIABLE:-default}`) and read from the environment. Durations are",
        "written `90s`, `5m`, `1h30m`, `1d`, `200ms`, `15 seconds`, ISO 8601 (`PT5M`) or a number of seconds.",
        "`syncd check-config FILE` validates a file and prints what would run (exit 0), or every problem",
        "with its key path (exit 2).",
        "",
    ]
    for section in sections():
        if not section.keys:
            continue
        title = section.path or "Top level"
        lines += [f"## `{title}`" if section.path else f"## {title}", ""]
        if section.model.__doc__ and section.model is not Config and not section.model.__doc__.startswith(
            section.model.__name__
        ):
            lines += [" ".join(section.model.__doc__.split()).replace("``", "`"), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key in section.keys:
            meaning = key.meaning.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{key.name}` | {key.kind} | {key.default} | {meaning} |")
        lines += section.nested
        lines += ["", "```yaml", example_of(section).rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncd.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run python -m syncd.docs", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
