"""Kit arithmetic, pure: what a kit listing shows from its components' allotments, how a plan's kit
listing becomes one listing per component and back, and that the allocation accounts, counting
each kit listing at its kits' units of every component, never let the listings together promise
more units of a component than exist; and how the ledger counts a kit's sale."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Listing, OrderLine
from syncd.accounts import (
    Accounts,
    ComponentStock,
    KitShare,
    MemoryAccountStore,
    SendRequest,
    kit_key,
    listing_sold,
)
from syncd.core import ChannelPolicy
from syncd.engine.demand import IN_FLIGHT_WINDOW, Demand
from syncd.engine.kits import KitListings, kit_quantity
from syncd.mapping import Component, Rule, SkuMap, expand_line, kit_exposure
from syncd.store import Store
from tests.daemon.conftest import make_config

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
GIFT = (Component("MUG", 2), Component("TEE", 1))
PLAIN = ChannelPolicy("shop")


@pytest.mark.parametrize(
    ("allotted", "policy", "expected"),
    [
        ({"MUG": 10, "TEE": 4}, PLAIN, 4),  # TEE is scarcest
        ({"MUG": 5, "TEE": 9}, PLAIN, 2),  # 5 mugs make 2 pairs, the odd one is left
        ({"MUG": 1, "TEE": 9}, PLAIN, 0),  # not even one kit
        ({"MUG": 10}, PLAIN, 0),  # a component with nothing allotted
        ({"MUG": -3, "TEE": 2}, PLAIN, 0),  # never negative
        ({"MUG": 20, "TEE": 20}, ChannelPolicy("shop", buffer=3), 7),  # buffer in kits
        ({"MUG": 20, "TEE": 20}, ChannelPolicy("shop", cap=4), 4),  # cap in kits
    ],
    ids=["tee-scarcest", "odd-mug", "none", "missing", "negative", "buffer", "cap"],
)
def test_a_kit_shows_the_kits_its_scarcest_allotment_makes(
    allotted: dict[str, int], policy: ChannelPolicy, expected: int
) -> None:
    """min over components of floor(allotted / quantity), less the channel's buffer, at most its cap."""
    assert kit_quantity(GIFT, allotted, policy) == expected


@given(st.dictionaries(st.sampled_from(["MUG", "TEE"]), st.integers(0, 50)), st.integers(0, 30))
def test_the_kits_shown_never_expose_more_than_was_allotted(allotted: dict[str, int], buffer: int) -> None:
    """Whatever the allotments, k kits expose k x quantity units of each component, never more than
    that component's allotment."""
    kits = kit_quantity(GIFT, allotted, ChannelPolicy("shop", buffer=buffer))
    for sku, units in kit_exposure(GIFT, kits).items():
        assert units <= allotted.get(sku, 0)


KITS = KitListings(
    SkuMap([Rule("shop", "GIFT", GIFT, "kit"), Rule(None, "PAIR", (Component("MUG", 2),), "kit")]),
    ["shop", "outlet"],
)


def test_a_plans_kit_listing_is_a_listing_of_each_component_in_its_units() -> None:
    """GIFT showing 3 on shop is 6 MUG and 3 TEE under `shop/GIFT`; a queued 2 is 4 and 2; the
    plain listing is left as it is."""
    split = KITS.split({("shop", "GIFT"): 3, ("shop", "MUG"): 7, ("outlet", "PAIR"): None}, {("shop", "GIFT"): 2})
    assert split.believed == {
        ("shop/GIFT", "MUG"): 6,
        ("shop/GIFT", "TEE"): 3,
        ("shop", "MUG"): 7,
        ("outlet/PAIR", "MUG"): None,
    }
    assert split.pending == {("shop/GIFT", "MUG"): 4, ("shop/GIFT", "TEE"): 2}
    assert split.derived == {"shop/GIFT": "shop", "outlet/PAIR": "outlet"}
    policies = split.policies({"shop": ChannelPolicy("shop", share=50, buffer=1, cap=9, priority=2)})
    assert policies["shop/GIFT"] == ChannelPolicy("shop/GIFT", share=50, buffer=0, cap=None, priority=2)
    assert split.channels({"shop"}) == {"shop", "shop/GIFT"}


def test_a_plans_targets_turn_back_into_kits() -> None:
    """Allotted 7 MUG and 2 TEE, GIFT is set to 2; a kit whose component the ERP does not know is
    reported unmapped under its own code."""
    split = KITS.split({("shop", "GIFT"): 0, ("outlet", "PAIR"): 0, ("shop", "MUG"): 1}, {})
    unmapped = [("outlet/PAIR", "MUG")]
    targets = {("shop/GIFT", "MUG"): 7, ("shop/GIFT", "TEE"): 2, ("shop", "MUG"): 1}
    policies = {"shop": PLAIN, "outlet": ChannelPolicy("outlet")}
    assert split.targets(targets, policies, unmapped) == {("shop", "GIFT"): 2, ("shop", "MUG"): 1}
    assert unmapped == [("outlet", "PAIR")]


def test_the_kits_drawing_on_a_sku_and_what_is_planned_with_it() -> None:
    """MUG is in GIFT on shop and in PAIR everywhere; planning TEE takes in GIFT, so MUG, so PAIR."""
    assert KITS.kits_of("MUG") == [
        KitShare("outlet", "PAIR", 2),
        KitShare("shop", "GIFT", 2),
        KitShare("shop", "PAIR", 2),
    ]
    assert KITS.closure({"TEE"}) == {"TEE", "GIFT", "MUG", "PAIR"}
    assert KITS.closure({"CAP"}) == {"CAP"}
    assert KITS.with_kits({("shop", "MUG"): 5, ("shop", "TEE"): 1}, [("shop", "GIFT"), ("shop", "MUG")]) == {
        ("shop", "MUG"): 5,
        ("shop", "TEE"): 1,
        ("shop", "GIFT"): 1,
    }


# ---------------------------------------------------------------------------- the accounts

# Listings: shop sells MUG and TEE by themselves and the kit GIFT (2 MUG + TEE); outlet sells MUG
# and the kit PAIR (2 MUG).
DIRECT = [("shop", "MUG"), ("shop", "TEE"), ("outlet", "MUG")]
KIT_LISTINGS = {("shop", "GIFT"): GIFT, ("outlet", "PAIR"): (Component("MUG", 2),)}
SHARES = {
    "MUG": [KitShare("shop", "GIFT", 2), KitShare("outlet", "PAIR", 2)],
    "TEE": [KitShare("shop", "GIFT", 1)],
}
LISTINGS = [*DIRECT, *KIT_LISTINGS]


def promised(accounts: Accounts, sku: str) -> int:
    """Units of ``sku`` the listings may sell between them: their own, and each kit's kits x quantity."""
    own = sum(accounts.get(sku).listing(c).exposure or 0 for c, s in DIRECT if s == sku)
    kits = sum((accounts.get(k.kit_sku).listing(k.channel).exposure or 0) * k.per_kit for k in SHARES[sku])
    return own + kits


steps = st.lists(
    st.tuples(st.sampled_from(LISTINGS), st.integers(0, 12), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 15), st.integers(0, 8), steps)
def test_in_low_stock_no_mix_of_writes_promises_more_component_units_than_exist(
    mugs: int, tees: int, writes: list[tuple[tuple[str, str], int, bool]]
) -> None:
    """Whatever writes of plain and kit listings are sent, in any order, answered or not: after
    each, the MUG and TEE units all listings may sell (a kit counting its kits x quantity) are at
    most the units there are."""
    ats = {"MUG": mugs, "TEE": tees}
    accounts = Accounts(MemoryAccountStore(), lambda sku: SHARES.get(sku, []))
    for channel in ("shop", "outlet"):
        shown = {s: 0 for c, s in LISTINGS if c == channel}
        accounts.read(channel, shown, T0, T0)
    for i, ((channel, sku), target, answered) in enumerate(writes, start=1):
        at = T0 + timedelta(seconds=i)
        components = tuple(ComponentStock(c.sku, c.quantity, ats[c.sku], 50) for c in KIT_LISTINGS.get((channel, sku), ()))
        request = SendRequest(i, sku, target, None, ats.get(sku, 0), 50, components=components)
        granted = accounts.send_many(channel, [request], at)[sku]
        assert granted.quantity <= target
        if answered:
            accounts.acknowledged(channel, sku, i, at, granted.quantity)
        for component, units in ats.items():
            assert promised(accounts, component) <= units, (component, granted)


def test_a_kit_write_is_granted_what_its_scarcest_component_has_free() -> None:
    """5 MUG and 9 TEE, shop's MUG showing 3: GIFT asked for 4 gets 1 (2 MUG left make one pair);
    once granted, shop's MUG asked for 3 more gets none."""
    ats = {"MUG": 5, "TEE": 9}
    accounts = Accounts(MemoryAccountStore(), lambda sku: SHARES.get(sku, []))
    accounts.read("shop", {"MUG": 3, "TEE": 0, "GIFT": 0}, T0, T0)
    accounts.read("outlet", {"MUG": 0, "PAIR": 0}, T0, T0)
    parts = tuple(ComponentStock(c.sku, c.quantity, ats[c.sku], 50) for c in GIFT)
    kit = accounts.send_many("shop", [SendRequest(1, "GIFT", 4, None, 0, 0, components=parts)], T0)
    assert kit["GIFT"].quantity == 1
    assert accounts.get("GIFT").listing("shop").exposure == 1
    more = accounts.send_many("shop", [SendRequest(2, "MUG", 6, None, 5, 50)], T0)
    assert more["MUG"].quantity == 3  # what it shows already; nothing free
    assert accounts.get("MUG").book(5, 50, kits=[(SHARES["MUG"][0], accounts.get("GIFT"))]).listings[
        kit_key("shop", "GIFT")
    ].exposure == 2


# ---------------------------------------------------------------------------- the ledger


def test_the_ledger_counts_a_kit_sale_on_the_kit_listing_and_its_units_on_the_components(tmp_path: Path) -> None:
    """2 GIFT sold on shop, which also lists MUG: 4 MUG and 2 TEE reserved; the GIFT listing sold 2
    (its row and its account), shop's own MUG listing sold none; the cancellation puts them back."""
    store = Store(f"sqlite:///{tmp_path / 'syncd.db'}")
    store.migrate()
    store.sync_listings("shop", [Listing("GIFT", "1", 5), Listing("MUG", "2", 9)], T0)
    store.record_pushed("shop", {"GIFT": 5, "MUG": 9}, T0)
    accounts = Accounts(store)
    accounts.read("shop", {"GIFT": 5, "MUG": 9}, T0, T0)
    sold = OrderLine("shop", "o1", "1", "GIFT", 2, "open", T0 + timedelta(seconds=2))
    lines = expand_line(sold, GIFT)
    assert [listing_sold(x) for x in lines] == [("GIFT", 2), None]
    store.ingest_lines(lines, T0 + timedelta(seconds=3))
    assert store.reserved_by_sku() == {"MUG": 4, "TEE": 2}
    rows = {r.sku: r.sold_since_push for r in store.listings("shop")}
    assert rows == {"GIFT": 2, "MUG": 0}
    assert accounts.get("GIFT").listing("shop").exposure == 3
    assert accounts.get("MUG").listing("shop").exposure == 9
    store.ingest_lines(expand_line(replace(sold, status="cancelled"), GIFT), T0 + timedelta(seconds=4))
    assert {r.sku: r.sold_since_push for r in store.listings("shop")} == {"GIFT": 0, "MUG": 0}
    assert accounts.get("GIFT").listing("shop").exposure == 5
    store.close()


def test_a_kit_sale_counts_in_the_kit_listings_sales_rate(tmp_path: Path) -> None:
    """2 GIFT sold: the rate of GIFT (a write's race allowance on a channel without compare-and-set)
    counts 2 kits, MUG's counts 4 units and TEE's 2."""
    demand = Demand(make_config(tmp_path), deque())
    sold = OrderLine("shop", "o1", "1", "GIFT", 2, "open", T0)
    demand.record(expand_line(sold, GIFT), T0)
    window = IN_FLIGHT_WINDOW.total_seconds()
    rates = {sku: demand.recent_rate(sku, T0) * window for sku in ("GIFT", "MUG", "TEE")}
    assert rates == {"GIFT": 2, "MUG": 4, "TEE": 2}
