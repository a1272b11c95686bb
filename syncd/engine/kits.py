"""Kit listings in the engine: one channel SKU made of several ERP SKUs (``syncd/mapping.py``).

A kit listing is kept in the ledger under its own code and its account counts kits. To plan it,
it takes part in each component's plan as one more listing of that component (named
``channel/kit code``, its belief and queued target in the component's units), and shows the kits
its scarcest allotment makes: ``min(floor(allotted[c] / quantity[c]))``, less its channel's buffer,
at most its cap. As it is written, each component's allocation account counts it at k x quantity
units, alongside the component's own listings (``syncd/accounts.py``), so no unit is promised
twice, whichever listing sells it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from syncd.accounts import KitShare, kit_key
from syncd.core import ChannelPolicy
from syncd.engine.reports import Key
from syncd.mapping import Component, SkuMap, kit_ats, kit_listings


@dataclass
class KitSplit:
    """A plan's listings with every kit listing replaced by its listing of each component."""

    believed: dict[Key, int | None]
    pending: dict[Key, int]
    kits: dict[Key, tuple[Component, ...]]  # (channel, kit code) -> its components
    derived: dict[str, str] = field(default_factory=dict)  # "channel/kit" -> channel

    def policies(self, policies: Mapping[str, ChannelPolicy]) -> dict[str, ChannelPolicy]:
        """Each kit listing shares in its components as its channel does (share, priority,
        weight); its buffer and cap are of kits, applied to the kits its allotments make."""
        out = dict(policies)
        for name, channel in self.derived.items():
            if channel in policies:
                out[name] = replace(policies[channel], channel=name, buffer=0, cap=None)
        return out

    def channels(self, names: Collection[str]) -> frozenset[str]:
        """``names`` (compare-and-set, down) with the kit listings of those channels."""
        return frozenset(names) | {k for k, channel in self.derived.items() if channel in names}

    def targets(
        self, targets: Mapping[Key, int], policies: Mapping[str, ChannelPolicy], unmapped: list[Key]
    ) -> dict[Key, int]:
        """The plan's targets with each kit listing's allotments turned into its kits; a kit with a
        component the ERP does not know takes the components' place in ``unmapped``."""
        out = {k: v for k, v in targets.items() if k[0] not in self.derived}
        unknown = {k for k in unmapped if k[0] in self.derived}
        unmapped[:] = [k for k in unmapped if k[0] not in self.derived]
        for (channel, kit), components in sorted(self.kits.items()):
            name = kit_key(channel, kit)
            if any((name, c.sku) in unknown for c in components):
                unmapped.append((channel, kit))
                continue
            allotted = {c.sku: targets[(name, c.sku)] for c in components if (name, c.sku) in targets}
            if len(allotted) < len(components) or channel not in policies:
                continue
            out[(channel, kit)] = kit_quantity(components, allotted, policies[channel])
        return out


def kit_quantity(components: Iterable[Component], allotted: Mapping[str, int], policy: ChannelPolicy) -> int:
    """What a kit listing shows: the kits its scarcest allotment makes, less the channel's buffer,
    at most its cap."""
    kits = kit_ats(tuple(components), allotted) - policy.buffer
    if policy.cap is not None:
        kits = min(kits, policy.cap)
    return max(0, kits)


class KitListings:
    """Which listings are kits, of what, and which kits draw on a SKU, by one ``SkuMap``."""

    def __init__(self, sku_map: SkuMap, channels: Iterable[str]) -> None:
        self.map = sku_map
        self.channel_names = sorted(channels)
        shares: defaultdict[str, list[KitShare]] = defaultdict(list)
        self._kit_codes: set[str] = set()
        for channel, code, components in kit_listings(sku_map, self.channel_names):
            self._kit_codes.add(code)
            for c in components:
                shares[c.sku].append(KitShare(channel, code, c.quantity))
        self._shares = {sku: sorted(found, key=lambda s: (s.channel, s.kit_sku)) for sku, found in shares.items()}

    def __bool__(self) -> bool:
        return bool(self._kit_codes)

    def components(self, channel: str, sku: str) -> tuple[Component, ...] | None:
        """The components of ``sku`` on ``channel`` if it is a kit there, else None."""
        if not self.map.is_kit(channel, sku):
            return None
        return self.map.resolve(channel, sku)

    def kits_of(self, sku: str) -> list[KitShare]:
        """The kit listings (on any channel) drawing on the ERP SKU ``sku``."""
        return self._shares.get(sku, [])

    def closure(self, skus: Iterable[str]) -> set[str]:
        """``skus`` with everything planned with them: the kits drawing on them, those kits'
        components, and so on (a component's split takes in every listing of it)."""
        found: set[str] = set()
        todo = list(skus)
        while todo:
            sku = todo.pop()
            if sku in found:
                continue
            found.add(sku)
            todo += [share.kit_sku for share in self.kits_of(sku)]
            if sku in self._kit_codes:
                for channel in self.channel_names:
                    todo += [c.sku for c in self.components(channel, sku) or ()]
        return found

    def with_kits(self, sold: Mapping[Key, int], listings: Iterable[Key]) -> dict[Key, int]:
        """Units sold per listing (``(channel, sku)``, as the ledger's order lines count them, by
        component) with those of the kit ``listings`` added in kits: at most as many kits as the
        scarcest component's units make (a component's own listing on the channel sells it too,
        so this is the most the kit can have sold)."""
        out = dict(sold)
        for channel, sku in listings:
            components = self.components(channel, sku)
            if components is not None:
                out[(channel, sku)] = kit_ats(components, {c.sku: sold.get((channel, c.sku), 0) for c in components})
        return out

    def split(self, believed: Mapping[Key, int | None], pending: Mapping[Key, int]) -> KitSplit:
        """The plan's listings with each kit listing as a listing of each of its components."""
        split = KitSplit({}, {}, {})
        for key, shown in believed.items():
            channel, sku = key
            components = self.components(channel, sku)
            if components is None:
                split.believed[key] = shown
                if key in pending:
                    split.pending[key] = pending[key]
                continue
            split.kits[key] = components
            name = kit_key(channel, sku)
            split.derived[name] = channel
            for c in components:
                split.believed[(name, c.sku)] = None if shown is None else shown * c.quantity
                if key in pending:
                    split.pending[(name, c.sku)] = pending[key] * c.quantity
        return split
