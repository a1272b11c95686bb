"""SKU mapping: which ERP SKUs a channel's listing draws from (by code, renamed, or a kit), the
mapping file that says so, and the check that finds unmapped, duplicated and conflicting SKUs.

Everything here is pure except ``load_mapping`` (reads one file) and ``read_catalogue`` (asks the
connectors for their listings); the engine feeds the rest from the ledger.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from connectors.base import ChannelConnector, ErpConnector, OrderLine
from connectors.registry import build_channel, build_erp
from syncd.accounts import KitLine
from syncd.config import Config
from syncd.core import available_to_sell
from syncd.errors import ConfigError, ConnectorError
from syncd.store import Store


class MappingError(ConfigError):
    """The mapping file is unusable; the message names the file, the row or key, and the reason."""


@dataclass(frozen=True, order=True)
class Component:
    """``quantity`` units of the ERP SKU ``sku`` (a plain mapping is one component of 1)."""

    sku: str
    quantity: int = 1


@dataclass(frozen=True)
class Rule:
    """One line of the mapping: ``channel_sku`` on ``channel`` (None: every channel) draws from
    ``components``. ``kind`` says how it was written: a ``map`` is one ERP SKU, a ``kit`` several."""

    channel: str | None
    channel_sku: str
    components: tuple[Component, ...]
    kind: Literal["map", "kit"] = "map"
    source: str = ""  # where it was written, for messages: "skus.csv line 4"


@dataclass(frozen=True)
class RuleConflict:
    """Two rules say different things about one channel SKU: it is left unmapped until fixed."""

    channel: str | None
    channel_sku: str
    sources: tuple[str, ...]

    def __str__(self) -> str:
        where = f"on {self.channel}" if self.channel else "on every channel"
        return f"{self.channel_sku} {where} is mapped differently in {', '.join(self.sources)}"


def _describe(components: Sequence[Component]) -> str:
    return " + ".join(c.sku if c.quantity == 1 else f"{c.quantity} x {c.sku}" for c in components)


class SkuMap:
    """Channel SKU -> ERP components. A channel's own rule wins over an every-channel rule; a SKU
    no rule names maps to the ERP SKU of the same code. A SKU whose rules disagree maps to nothing
    (``resolve`` gives None): guessing would push one product's stock to another."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        by_key: dict[tuple[str | None, str], list[Rule]] = defaultdict(list)
        for rule in rules:
            by_key[(rule.channel, rule.channel_sku)].append(rule)
        self._rules: dict[tuple[str | None, str], Rule] = {}
        self.conflicts: list[RuleConflict] = []
        for key, found in sorted(by_key.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            if len({r.components for r in found}) > 1:
                self.conflicts.append(RuleConflict(key[0], key[1], tuple(r.source for r in found)))
            else:
                self._rules[key] = found[0]
        self._conflicted = {(c.channel, c.channel_sku) for c in self.conflicts}

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    def rule_for(self, channel: str, channel_sku: str) -> Rule | None:
        return self._rules.get((channel, channel_sku)) or self._rules.get((None, channel_sku))

    def conflicted(self, channel: str, channel_sku: str) -> bool:
        if (channel, channel_sku) in self._conflicted:
            return True
        # An every-channel conflict matters only where no channel rule overrides it.
        return (channel, channel_sku) not in self._rules and (None, channel_sku) in self._conflicted

    def resolve(self, channel: str, channel_sku: str) -> tuple[Component, ...] | None:
        """The ERP components of a listing, or None when its rules conflict."""
        if self.conflicted(channel, channel_sku):
            return None
        rule = self.rule_for(channel, channel_sku)
        return rule.components if rule is not None else (Component(channel_sku),)

    def is_kit(self, channel: str, channel_sku: str) -> bool:
        components = self.resolve(channel, channel_sku)
        return components is not None and (len(components) > 1 or components[0].quantity > 1)

    def drawing_on(self, erp_sku: str) -> list[Rule]:
        """The rules whose listings draw on ``erp_sku``: a change to its stock replans them too."""
        return [rule for rule in self._rules.values() if any(c.sku == erp_sku for c in rule.components)]

    def channels_named(self) -> set[str]:
        return {rule.channel for rule in self._rules.values() if rule.channel is not None} | {
            c.channel for c in self.conflicts if c.channel is not None
        }


# ---------------------------------------------------------------------------- quantities


def kit_ats(components: Sequence[Component], ats: Mapping[str, int]) -> int:
    """Kits that can be sold: the scarcest component decides (an unknown component has none).

    The same rule gives a kit listing's quantity from the units of each component allotted to it:
    ``min(floor(allotted[c] / quantity[c]))``."""
    if not components:
        return 0
    return max(0, min(max(0, ats.get(c.sku, 0)) // c.quantity for c in components))


def kit_exposure(components: Sequence[Component], kits: int) -> dict[str, int]:
    """The units of each component a kit listing showing ``kits`` kits may sell."""
    return {c.sku: max(0, kits) * c.quantity for c in components}


def _safe_sku(sku: str) -> str:
    # Line keys hold no colon (``channel:order:line`` is split on them).
    return sku.replace("%", "%25").replace(":", "%3A")


def expand_line(line: OrderLine, components: Sequence[Component]) -> list[OrderLine]:
    """The ERP order lines one channel line stands for.

    A plain or renamed SKU keeps its line key, so a line ingested before the mapping existed is not
    counted again. A kit's components get ``<line key>#<component SKU>``: the same delivery always
    yields the same keys, and the ledger's uniqueness keeps every redelivery idempotent.
    """
    if not components:
        raise ValueError(f"order line {line.key} has no ERP SKU to reserve")
    if len(components) == 1 and components[0].quantity == 1:
        return [line] if components[0].sku == line.sku else [replace(line, sku=components[0].sku)]
    # The first component's line carries the kits sold: the kit listing is lowered once.
    return [
        KitLine(
            channel=line.channel,
            order_id=line.order_id,
            line_key=f"{line.line_key}#{_safe_sku(c.sku)}",
            sku=c.sku,
            quantity=line.quantity * c.quantity,
            status=line.status,
            updated_at=line.updated_at,
            kit_sku=line.sku,
            kits=line.quantity if i == 0 else 0,
        )
        for i, c in enumerate(sorted(components))
    ]


def on_hand_from_warehouses(
    per_warehouse: Mapping[str, Mapping[str, int]], counted: Collection[str] | None = None
) -> dict[str, int]:
    """On-hand per SKU summed over the warehouses that count (None: all of them).

    ``per_warehouse`` maps warehouse -> SKU -> units; a negative figure (an ERP's backorders)
    counts as none, so one warehouse's debt never hides another's stock.
    """
    totals: Counter[str] = Counter()
    for warehouse, stock in per_warehouse.items():
        if counted is not None and warehouse not in counted:
            continue
        for sku, units in stock.items():
            totals[sku] += max(0, units)
    return {sku: totals[sku] for sku in sorted({s for stock in per_warehouse.values() for s in stock})}


def location_levels(target: int, locations: Sequence[str], current: Mapping[str, int]) -> dict[str, int]:
    """Per-location levels that add up to a channel's ``target``, changing as little as possible.

    The first location is the primary: an increase lands there; a decrease is taken from it first,
    then from the others, last listed first. What other locations show is otherwise left alone,
    since a channel routes orders to them by what they hold.
    """
    if not locations:
        raise ValueError("a channel writes to at least one location")
    if target < 0:
        raise ValueError(f"target {target} is negative")
    levels = {name: max(0, current.get(name, 0)) for name in locations}
    excess = sum(levels.values()) - target
    if excess < 0:
        levels[locations[0]] -= excess
        return levels
    for name in [locations[0], *reversed(locations[1:])]:
        take = min(excess, levels[name])
        levels[name] -= take
        excess -= take
    return levels


# ---------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class ChannelCheck:
    """What ``syncd mapping check`` found on one channel."""

    channel: str
    listings: int = 0
    mapped: list[str] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)  # channel SKU -> why
    duplicated: dict[str, int] = field(default_factory=dict)  # channel SKU -> listings carrying it
    conflicts: list[str] = field(default_factory=list)
    error: str | None = None
    kits: dict[str, str] = field(default_factory=dict)  # mapped kit listing -> its components

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "listings": self.listings,
            "mapped": len(self.mapped),
            "unmapped": self.unmapped,
            "duplicated": self.duplicated,
            "conflicts": self.conflicts,
            "error": self.error,
            "kits": self.kits,
        }


def check_channel(
    sku_map: SkuMap, channel: str, channel_skus: Sequence[str], erp_skus: Collection[str]
) -> ChannelCheck:
    """Sort one channel's listed SKUs into mapped, unmapped, duplicated and conflicting.

    Conflicts: rules that disagree, and two listings drawing one ERP SKU as a plain mapping (the
    channel would sell the same units twice, once on each).
    """
    counts = Counter(channel_skus)
    duplicated = {sku: n for sku, n in sorted(counts.items()) if n > 1}
    conflicts = [
        str(c)
        for c in sku_map.conflicts
        if (c.channel == channel or (c.channel is None and sku_map.conflicted(channel, c.channel_sku)))
    ]
    mapped: list[str] = []
    unmapped: dict[str, str] = {}
    kits: dict[str, str] = {}
    drawn: dict[str, list[str]] = defaultdict(list)
    for sku in sorted(counts):
        components = sku_map.resolve(channel, sku)
        if components is None:
            unmapped[sku] = "its mapping rules conflict"
            continue
        missing = [c.sku for c in components if c.sku not in erp_skus]
        if missing:
            unmapped[sku] = f"the ERP has no SKU {', '.join(missing)}"
            continue
        mapped.append(sku)
        if sku_map.is_kit(channel, sku):
            kits[sku] = _describe(components)
        else:
            drawn[components[0].sku].append(sku)
    for erp_sku, listed in sorted(drawn.items()):
        if len(listed) > 1:
            conflicts.append(
                f"{', '.join(listed)} all show ERP SKU {erp_sku} (each would offer its whole stock)"
            )
    return ChannelCheck(channel, len(channel_skus), mapped, unmapped, duplicated, conflicts, kits=kits)


@dataclass(frozen=True)
class MappingCheck:
    channels: list[ChannelCheck]
    problems: list[str] = field(default_factory=list)  # rules about channels not configured

    @property
    def has_conflicts(self) -> bool:
        return bool(self.problems) or any(c.conflicts for c in self.channels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conflicts": self.has_conflicts,
            "problems": self.problems,
            "channels": [c.as_dict() for c in self.channels],
        }

    def table(self) -> str:
        lines = [
            f"{'channel':<14} {'listings':>8} {'mapped':>7} {'unmapped':>9} {'duplicated':>11} {'conflicts':>10}"
        ]
        for c in self.channels:
            if c.error is not None:
                lines.append(f"{c.channel:<14} could not list listings: {c.error}")
                continue
            lines.append(
                f"{c.channel:<14} {c.listings:>8} {len(c.mapped):>7} {len(c.unmapped):>9} "
                f"{len(c.duplicated):>11} {len(c.conflicts):>10}"
            )
            lines += [
                f"  kit         {sku} = {parts}: shows the kits its scarcest part makes"
                for sku, parts in c.kits.items()
            ]
            lines += [f"  unmapped    {sku}: {why}" for sku, why in c.unmapped.items()]
            lines += [f"  duplicated  {sku}: on {n} listings" for sku, n in c.duplicated.items()]
            lines += [f"  conflict    {text}" for text in c.conflicts]
        lines += [f"problem: {text}" for text in self.problems]
        return "\n".join(lines)


def check_catalogue(
    sku_map: SkuMap,
    listed: Mapping[str, Sequence[str] | BaseException],
    erp_skus: Collection[str],
    channels: Collection[str] | None = None,
) -> MappingCheck:
    """Check every channel's listed SKUs (or the error met listing them) against the ERP's."""
    results = []
    for name, skus in sorted(listed.items()):
        if isinstance(skus, BaseException):
            results.append(ChannelCheck(name, error=str(skus)))
        else:
            results.append(check_channel(sku_map, name, skus, erp_skus))
    known = set(listed) if channels is None else set(channels)
    problems = [
        f"the mapping names channel {name!r}, which is not configured (channels: {sorted(known)})"
        for name in sorted(sku_map.channels_named() - known)
    ]
    return MappingCheck(results, problems)


async def read_catalogue(
    erp: ErpConnector, channels: Mapping[str, ChannelConnector]
) -> tuple[set[str], dict[str, list[str] | BaseException]]:
    """The ERP's SKUs and each channel's listed SKUs, read side by side; a channel that fails gives
    its error instead (the ERP failing raises: nothing can be checked without it)."""

    async def listed(channel: ChannelConnector) -> list[str] | BaseException:
        try:
            return [listing.sku for listing in await channel.list_listings()]
        except ConnectorError as exc:
            return exc

    stock_read = asyncio.ensure_future(erp.read_stock())
    try:
        found = await asyncio.gather(*(listed(c) for c in channels.values()))
    except BaseException:
        stock_read.cancel()
        raise
    stock = await stock_read
    return {record.sku for record in stock}, dict(zip(channels, found, strict=True))


async def check_configured(config: Config, store: Store) -> MappingCheck:
    """``syncd mapping check``: read the configured ERP and channels and check their SKUs against
    the config's mapping file. ``store`` keeps the tokens connectors refresh, as in the daemon."""
    sku_map = load_mapping(config.mapping.file) if config.mapping.file else SkuMap()
    erp = build_erp(config.erp, tokens=store, records=store)
    channels = {c.name: build_channel(c, tokens=store) for c in config.channels if c.enabled}
    try:
        erp_skus, listed = await read_catalogue(erp, channels)
    finally:
        for connector in [erp, *channels.values()]:
            await connector.aclose()
    return check_catalogue(sku_map, listed, erp_skus, [c.name for c in config.channels])


# ---------------------------------------------------------------------------- the file


def load_mapping(path: str | Path) -> SkuMap:
    """Read a mapping file: ``.csv`` or ``.yaml``/``.yml`` (see ``parse_csv`` and ``parse_yaml``)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(f"{source}: no such mapping file", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{source}: cannot read: {exc}", source=source) from exc
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return SkuMap(parse_csv(text, source))
    if suffix in (".yaml", ".yml"):
        return SkuMap(parse_yaml(text, source))
    raise MappingError(f"{source}: a mapping file ends in .csv, .yaml or .yml", source=source)


def _fail(problems: list[str], source: str) -> None:
    if problems:
        raise MappingError("\n".join(problems), source=source, problems=problems)


def _quantity(raw: Any, where: str, problems: list[str]) -> int:
    if raw is None or raw == "":
        return 1
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1 or isinstance(raw, bool):
        problems.append(f"{where}: quantity must be a whole number of at least 1, not {raw!r}")
        return 1
    return value


def parse_csv(text: str, source: str = "<csv>") -> list[Rule]:
    """Columns ``channel_sku``, ``erp_sku`` and optional ``quantity`` and ``channel`` (empty or ``*``:
    every channel). Several rows for one channel SKU are the components of a kit."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in ("channel_sku", "erp_sku") if name not in header]
    if missing:
        raise MappingError(f"{source}: the header needs the column(s) {', '.join(missing)}", source=source)
    unknown = sorted(set(header) - {"channel", "channel_sku", "erp_sku", "quantity"})
    if unknown:
        raise MappingError(
            f"{source}: unknown column(s) {', '.join(unknown)}; columns: channel, channel_sku, erp_sku, quantity",
            source=source,
        )
    problems: list[str] = []
    grouped: dict[tuple[str | None, str], list[tuple[Component, str]]] = defaultdict(list)
    for row in reader:
        where = f"{source} line {reader.line_num}"
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        channel_sku, erp_sku = clean.get("channel_sku", ""), clean.get("erp_sku", "")
        if not channel_sku and not erp_sku:
            continue  # blank line
        if not channel_sku or not erp_sku:
            problems.append(f"{where}: both channel_sku and erp_sku are needed")
            continue
        channel = clean.get("channel") or None
        key = (None if channel == "*" else channel, channel_sku)
        grouped[key].append((Component(erp_sku, _quantity(clean.get("quantity"), where, problems)), where))
    rules: list[Rule] = []
    for (channel, channel_sku), rows in grouped.items():
        skus = Counter(c.sku for c, _ in rows)
        for sku, n in sorted(skus.items()):
            if n > 1:
                lines = ", ".join(w.removeprefix(f"{source} ") for c, w in rows if c.sku == sku)
                problems.append(f"{source}: {channel_sku} lists ERP SKU {sku} {n} times ({lines})")
        components = tuple(sorted(c for c, _ in rows))
        kind: Literal["map", "kit"] = "map" if components == (Component(components[0].sku),) else "kit"
        rules.append(Rule(channel, channel_sku, components, kind, rows[0][1]))
    _fail(problems, source)
    return rules


def parse_yaml(text: str, source: str = "<yaml>") -> list[Rule]:
    """``map``: a list of ``{channel_sku, erp_sku, channel?}``; ``kits``: a list of
    ``{channel_sku, components: {ERP SKU: quantity}, channel?}``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{source}: not valid YAML: {exc}", source=source) from None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"map", "kits"}:
        raise MappingError(f"{source}: the top level has the keys map and kits only", source=source)
    problems: list[str] = []
    rules: list[Rule] = []
    for section in ("map", "kits"):
        entries = data.get(section) or []
        if not isinstance(entries, list):
            problems.append(f"{source}: {section} must be a list")
            continue
        for i, entry in enumerate(entries):
            rule = _yaml_rule(entry, section, f"{source}: {section}[{i}]", problems)
            if rule is not None:
                rules.append(rule)
    _fail(problems, source)
    return rules


def _yaml_rule(entry: Any, section: str, where: str, problems: list[str]) -> Rule | None:
    allowed = {"channel", "channel_sku", "erp_sku" if section == "map" else "components"}
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping with the keys {', '.join(sorted(allowed))}")
        return None
    extra = sorted(set(map(str, entry)) - allowed)
    if extra:
        problems.append(f"{where}: unknown key(s) {', '.join(extra)}; keys: {', '.join(sorted(allowed))}")
        return None
    channel_sku = str(entry.get("channel_sku") or "").strip()
    channel = entry.get("channel")
    if not channel_sku:
        problems.append(f"{where}.channel_sku: missing")
        return None
    if channel is not None and not isinstance(channel, str):
        problems.append(f"{where}.channel: must be a channel name")
        return None
    channel = None if channel in (None, "*") else channel
    if section == "map":
        erp_sku = str(entry.get("erp_sku") or "").strip()
        if not erp_sku:
            problems.append(f"{where}.erp_sku: missing")
            return None
        return Rule(channel, channel_sku, (Component(erp_sku),), "map", where)
    components = entry.get("components")
    if not isinstance(components, dict) or not components:
        problems.append(f"{where}.components: must map each ERP SKU to its quantity, e.g. {{MUG-1: 2}}")
        return None
    parts = tuple(
        sorted(
            Component(str(sku), _quantity(q, f"{where}.components.{sku}", problems))
            for sku, q in components.items()
        )
    )
    return Rule(channel, channel_sku, parts, "kit", where)


# ---------------------------------------------------------------------------- explain


def kit_listings(sku_map: SkuMap, channels: Sequence[str]) -> list[tuple[str, str, tuple[Component, ...]]]:
    """Every kit listing the mapping makes: (channel, kit code, components)."""
    found = set()
    for rule in sku_map.rules:
        for channel in [rule.channel] if rule.channel is not None else channels:
            if (
                sku_map.is_kit(channel, rule.channel_sku)
                and sku_map.resolve(channel, rule.channel_sku) == rule.components
            ):
                found.add((channel, rule.channel_sku, rule.components))
    return sorted(found)


def explain_kits(config: Config, store: Store, sku: str) -> dict[str, Any]:
    """For ``syncd explain``: the kit listings ``sku`` names (a kit's code), each with what every
    component allows, and the kit listings drawing on ``sku`` (an ERP SKU), with the units of it
    they expose."""
    from syncd.engine.beliefs import belief  # the engine imports this module

    sku_map = load_mapping(config.mapping.file) if config.mapping.file else SkuMap()
    listings = kit_listings(sku_map, [c.name for c in config.channels])
    related = [x for x in listings if x[1] == sku or any(c.sku == sku for c in x[2])]
    rows = {(r.channel, r.sku): r for r in store.listings(skus=sorted({x[1] for x in related}))}
    erp_skus = sorted({c.sku for x in related for c in x[2]})
    stock, reserved = store.skus(erp_skus), store.reserved_by_sku(erp_skus)
    ats = {
        s: available_to_sell(stock[s].on_hand, reserved.get(s, 0), config.stock.safety_for(s))
        for s in erp_skus
        if s in stock
    }
    is_kit: list[dict[str, Any]] = []
    in_kits: list[dict[str, Any]] = []
    for channel, code, components in related:
        row = rows.get((channel, code))
        shows = None if row is None else belief(row)
        if code == sku:
            parts = [
                {
                    "sku": c.sku,
                    "per_kit": c.quantity,
                    "ats": ats.get(c.sku),
                    "kits": ats.get(c.sku, 0) // c.quantity,
                }
                for c in components
            ]
            is_kit.append(
                {
                    "channel": channel,
                    "components": _describe(components),
                    "parts": parts,
                    "at_most": kit_ats(components, ats),
                    "shows": shows,
                }
            )
        else:
            per_kit = next(c.quantity for c in components if c.sku == sku)
            in_kits.append(
                {
                    "channel": channel,
                    "kit": code,
                    "components": _describe(components),
                    "per_kit": per_kit,
                    "shows": shows,
                    "units": None if shows is None else shows * per_kit,
                }
            )
    return {"kit": is_kit, "in_kits": in_kits}


def kit_text(sku: str, kits: Mapping[str, Any]) -> list[str]:
    """``explain_kits`` as lines for a person."""
    lines = []
    for k in kits["kit"]:
        lines.append(
            f"{sku} on {k['channel']}: a kit of {k['components']}; it shows the kits its scarcest part makes"
        )
        for p in k["parts"]:
            left = "unknown to the ERP" if p["ats"] is None else f"{p['ats']} available to sell"
            lines.append(f"  {p['sku']}: {left}, {p['per_kit']} a kit -> {p['kits']} kits")
        lines.append(f"  at most {k['at_most']} kits; each component's split or share may allot it fewer")
    if kits["in_kits"]:
        lines.append(f"kit listings drawing on {sku} (each kit shown counts its units of {sku}):")
    for k in kits["in_kits"]:
        units = "" if k["units"] is None else f" = {k['units']} x {sku}"
        lines.append(f"  {k['channel']} {k['kit']} = {k['components']}: shows {k['shows']} kits{units}")
    return lines
