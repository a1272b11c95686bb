"""SKU mapping where channel data enters the engine: listings and order lines are renamed to their
ERP SKUs, and reads ask a channel by its own codes and answer by ERP SKU.

Connectors stay unaware of the mapping; the ledger, the planner and the allocation accounts see
ERP SKUs only, and kit listings (kept under their own code) in kits: a kit's order lines become
its components' lines (each reserves its component), and engine/kits.py plans it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

import structlog

from connectors.base import ChannelConnector, Listing, OrderLine
from syncd.mapping import Component, SkuMap, expand_line
from syncd.store import ListingRow, Store

log = structlog.get_logger("syncd.engine")

# Opens the detail of a listing the mapping leaves unmapped: such a listing is never planned.
MAPPING_DETAIL = "SKU mapping: "


def held_by_mapping(row: ListingRow) -> bool:
    """A listing left unmapped by the mapping itself (a conflict, two listings of one SKU)."""
    return row.status == "unmapped" and row.detail.startswith(MAPPING_DETAIL)


class ListingSkus:
    """Translates between each channel's codes and the ERP's, by one ``SkuMap``."""

    def __init__(self, sku_map: SkuMap | None = None) -> None:
        self.map = sku_map or SkuMap()
        # channel -> ERP SKU -> the channel's code, as its last listing read showed.
        self._codes: dict[str, dict[str, str]] = {}

    def listings(self, channel: str, listings: Sequence[Listing]) -> tuple[list[Listing], dict[str, str]]:
        """The channel's listings as the ledger keeps them, and the unmapped ones (by the SKU they
        are kept under) with the reason. A renamed listing is keyed by its ERP SKU with its ref
        unchanged; one the mapping cannot place keeps its own code."""
        claims: defaultdict[str, dict[str, tuple[Listing, str | None]]] = defaultdict(dict)
        for listing in listings:
            components = self.map.resolve(channel, listing.sku)
            if components is None:
                claims[listing.sku][listing.sku] = (listing, "its mapping rules conflict")
            elif len(components) > 1 or components[0].quantity > 1:
                # A kit keeps its own code: its account counts kits (engine/kits.py).
                claims[listing.sku][listing.sku] = (listing, None)
            else:
                # A later listing of the same code wins, as the ledger has always kept it.
                claims[components[0].sku][listing.sku] = (listing, None)
        kept: list[Listing] = []
        unmapped: dict[str, str] = {}
        codes: dict[str, str] = {}
        for key, by_code in sorted(claims.items()):
            if len(by_code) > 1:
                # Each would offer the whole stock of one ERP SKU: neither is written.
                names = sorted(by_code)
                unmapped[key] = f"listings {', '.join(names)} all draw on ERP SKU {key}"
                kept.append(replace(by_code[names[0]][0], sku=key))
                log.warning("listing.mapping_conflict", channel=channel, sku=key, listings=names)
                continue
            code, (listing, reason) = next(iter(by_code.items()))
            if reason is not None:
                unmapped[key] = reason
            else:
                codes[key] = code
            kept.append(listing if listing.sku == key else replace(listing, sku=key))
        self._codes[channel] = codes
        return kept, unmapped

    def mark(self, store: Store, channel: str, unmapped: Mapping[str, str]) -> None:
        """Record on the channel's listings why the mapping leaves them unmapped, and clear the
        reason from those it maps again."""
        for row in store.listings(channel):
            reason = unmapped.get(row.sku)
            if reason is not None:
                detail = MAPPING_DETAIL + reason
                if (row.status, row.detail) != ("unmapped", detail):
                    store.set_listing_status(channel, row.sku, "unmapped", detail)
                    log.warning("listing.unmapped", channel=channel, sku=row.sku, reason=reason)
            elif held_by_mapping(row):
                store.set_listing_status(channel, row.sku, "ok", "")

    def channel_sku(self, channel: str, erp_sku: str) -> str:
        """The code ``channel`` lists ``erp_sku`` under. Before its listings were read (after a
        restart), the mapping's own rule for it: the channel's first, then an every-channel one."""
        code = self._codes.get(channel, {}).get(erp_sku)
        if code is not None:
            return code
        plain = (Component(erp_sku),)
        rules = sorted(
            (r for r in self.map.drawing_on(erp_sku) if r.channel in (channel, None)),
            key=lambda r: (r.channel is None, r.channel_sku),
        )
        for rule in rules:
            if self.map.resolve(channel, rule.channel_sku) == plain:
                return rule.channel_sku
        return erp_sku

    async def read_quantities(
        self, name: str, channel: ChannelConnector, listings: Sequence[Listing], *, urgent: bool = False
    ) -> dict[str, int]:
        """``channel.read_quantities`` asked by the channel's codes, answered by ERP SKU."""
        asked = [replace(x, sku=self.channel_sku(name, x.sku)) for x in listings]
        back = {a.sku: x.sku for a, x in zip(asked, listings, strict=True)}
        shown = await channel.read_quantities(asked, urgent=urgent)
        return {back.get(sku, sku): quantity for sku, quantity in shown.items()}

    def lines(self, lines: Sequence[OrderLine]) -> list[OrderLine]:
        """Order lines with their ERP SKUs; the line key is kept, so a line seen before and after
        the mapping counts once. A kit's line becomes one line per component (``expand_line``);
        a line of a conflicting code keeps its own code."""
        if not self.map.rules and not self.map.conflicts:
            return list(lines)
        out: list[OrderLine] = []
        for line in lines:
            components = self.map.resolve(line.channel, line.sku)
            if components is None:
                out.append(line)
            else:
                out.extend(expand_line(line, components))
        return out
