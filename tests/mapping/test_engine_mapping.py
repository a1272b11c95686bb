"""SKU mapping in the engine, through the sandboxes: a listing whose code differs from the ERP's is
synced under its ERP SKU, its sales reserve that SKU, a kit shows the kits its components make,
and what the mapping cannot place is left unmapped with its reason and never written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import Listing, OrderLine
from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.accounts import listing_sold
from syncd.daemon import Daemon
from syncd.engine.mapping import MAPPING_DETAIL, ListingSkus
from syncd.mapping import Component, Rule, SkuMap
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, WEBHOOK_SECRET, make_config

RENAME = """
map:
  - {channel: main, channel_sku: WEB-TEE-01, erp_sku: TEE-01}
"""


class LateApp:
    """The daemon's app, set once the daemon exists (the sandbox needs its address first)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class World:
    daemon: Daemon
    erp: httpx.AsyncClient
    shops: dict[str, httpx.AsyncClient]

    async def listings(self, name: str) -> dict[str, int]:
        rows = (await self.shops[name].get("/_sandbox/listings")).json()
        return {row["sku"]: row["quantity"] for row in rows}

    async def buy(self, name: str, sku: str, quantity: int = 1) -> None:
        answer = await self.shops[name].post("/_sandbox/purchase", json={"sku": sku, "quantity": quantity})
        assert answer.status_code == 201, answer.text

    async def settle(self) -> None:
        """Wait for the sandbox's webhook deliveries and the fast path they start."""
        for _ in range(100):
            if self.daemon.store.reserved_by_sku():
                break
            await asyncio.sleep(0.05)
        await asyncio.gather(*self.daemon.supervisor.running())
        await self.daemon.engine.drain_fast_path()


Build = Callable[..., Any]


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[Build]:
    """Build a world: the mock ERP, shop `main` (webhooks to the daemon) and shop `outlet`, each
    seeded with its own SKU codes, and the daemon with the given mapping file."""
    async with AsyncExitStack() as stack:

        async def build(
            mapping: str,
            erp: dict[str, int],
            main: dict[str, int],
            outlet: dict[str, int],
            stock: dict[str, Any] | None = None,
        ) -> World:
            path = tmp_path / "mapping.yaml"
            path.write_text(mapping)
            target = LateApp()
            apps = {
                "main": woo_app(
                    consumer_key=WC_KEY,
                    consumer_secret=WC_SECRET,
                    webhook_url="http://syncd/webhooks/main",
                    webhook_secret=WEBHOOK_SECRET,
                    webhook_transport=httpx.ASGITransport(app=target),
                ),
                "outlet": woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET),
            }
            shop = {"type": "woocommerce", "consumer_key": WC_KEY, "consumer_secret": WC_SECRET}
            config = make_config(
                tmp_path,
                stock=stock or {"safety_stock": 0, "low_stock_threshold": 0},
                schedule={"push_debounce": "20ms"},
                mapping={"file": str(path)},
                channels=[
                    {**shop, "name": "main", "base_url": "http://main.test", "webhook_secret": WEBHOOK_SECRET},
                    {**shop, "name": "outlet", "base_url": "http://outlet.test"},
                ],
            )
            erp_sandbox = erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))
            transports = {
                "erp": httpx.ASGITransport(app=erp_sandbox),
                **{n: httpx.ASGITransport(app=a) for n, a in apps.items()},
            }
            daemon = Daemon(config, transports=transports)
            target.app = daemon.app()
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            shops = {
                n: await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=f"http://{n}.test")
                )
                for n, a in apps.items()
            }
            erp_hooks = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=erp_sandbox), base_url="http://erp.test")
            )

            async def close() -> None:
                await asyncio.gather(*daemon.supervisor.running())
                await daemon.engine.aclose()
                daemon.store.close()

            stack.push_async_callback(close)
            seeds = [(erp_hooks, erp), (shops["main"], main), (shops["outlet"], outlet)]
            for client, stock in seeds:
                items = [{"sku": s, "quantity": q} for s, q in stock.items()]
                (await client.post("/_sandbox/seed", json={"items": items})).raise_for_status()
            return World(daemon, erp_hooks, shops)

        yield build


async def test_a_renamed_listing_is_set_to_the_erp_stock_of_its_erp_sku(make_world: Build) -> None:
    """`WEB-TEE-01` on main, mapped to ERP `TEE-01`, is set to TEE-01's stock and kept in the
    ledger under TEE-01 with the channel's own ref."""
    world: World = await make_world(RENAME, {"TEE-01": 10}, {"WEB-TEE-01": 0}, {"TEE-01": 0})
    await world.daemon.engine.reconcile()
    assert await world.listings("main") == {"WEB-TEE-01": 10}
    assert await world.listings("outlet") == {"TEE-01": 10}
    rows = world.daemon.store.listings("main")
    assert [(r.sku, r.status) for r in rows] == [("TEE-01", "ok")]
    listed = await world.daemon.engine.channels["main"].list_listings()
    assert rows[0].ref == listed[0].ref


async def test_a_sale_of_a_renamed_listing_reserves_the_erp_sku_and_lowers_the_other_shop(
    make_world: Build,
) -> None:
    """A webhook sale of 3 x WEB-TEE-01 on main reserves TEE-01 once (the order poll after it
    counts nothing again) and lowers outlet's TEE-01 to 7."""
    world: World = await make_world(RENAME, {"TEE-01": 10}, {"WEB-TEE-01": 0}, {"TEE-01": 0})
    engine = world.daemon.engine
    await engine.reconcile()
    await world.buy("main", "WEB-TEE-01", 3)
    await world.settle()
    assert world.daemon.store.reserved_by_sku() == {"TEE-01": 3}
    assert await world.listings("outlet") == {"TEE-01": 7}
    report = await engine.poll_orders()
    assert report.counts["order_lines_new"] == 0
    assert world.daemon.store.reserved_by_sku() == {"TEE-01": 3}
    await engine.replan_all()
    assert await world.listings("main") == {"WEB-TEE-01": 7}


async def test_a_sale_found_by_the_order_poll_reserves_the_erp_sku(make_world: Build) -> None:
    """A sale of WEB-TEE-01 whose webhook is lost, found by the order poll, reserves TEE-01 and
    lowers outlet's TEE-01."""
    world: World = await make_world(RENAME, {"TEE-01": 10}, {"WEB-TEE-01": 0}, {"TEE-01": 0})
    engine = world.daemon.engine
    await engine.reconcile()
    (await world.shops["main"].post("/_sandbox/faults", json={"webhook_drop_rate": 1.0})).raise_for_status()
    await world.buy("main", "WEB-TEE-01", 4)
    await engine.poll_orders()
    assert world.daemon.store.reserved_by_sku() == {"TEE-01": 4}
    assert await world.listings("outlet") == {"TEE-01": 6}


async def test_reads_before_writes_ask_the_shop_by_its_own_code(make_world: Build) -> None:
    """A read of the ledger's TEE-01 on main asks the shop for WEB-TEE-01 and answers by TEE-01,
    also before main's listings were read (after a restart) from the mapping's rule."""
    world: World = await make_world(RENAME, {"TEE-01": 10}, {"WEB-TEE-01": 5}, {"TEE-01": 0})
    engine = world.daemon.engine
    (listed,) = await engine.channels["main"].list_listings()
    asked = [Listing("TEE-01", listed.ref, None)]
    assert await engine.skus.read_quantities("main", engine.channels["main"], asked) == {"TEE-01": 5}
    await engine.reconcile()
    assert await engine.skus.read_quantities("main", engine.channels["main"], asked) == {"TEE-01": 10}


async def test_a_conflicting_mapping_leaves_the_listing_unmapped_and_unwritten(make_world: Build) -> None:
    """WEB-TEE-01 mapped to two ERP SKUs is kept as unmapped with the reason; its shop quantity
    is left alone while the other SKUs sync."""
    mapping = """
map:
  - {channel_sku: WEB-TEE-01, erp_sku: TEE-01}
  - {channel_sku: WEB-TEE-01, erp_sku: TEE-02}
"""
    world: World = await make_world(
        mapping, {"TEE-01": 10, "TEE-02": 8, "CAP": 3}, {"WEB-TEE-01": 4, "CAP": 0}, {"TEE-01": 0}
    )
    await world.daemon.engine.reconcile()
    assert await world.listings("main") == {"WEB-TEE-01": 4, "CAP": 3}
    rows = {r.sku: r for r in world.daemon.store.listings("main")}
    assert rows["WEB-TEE-01"].status == "unmapped"
    assert rows["WEB-TEE-01"].detail == MAPPING_DETAIL + "its mapping rules conflict"
    assert rows["CAP"].status == "ok"


async def test_two_listings_of_one_erp_sku_on_a_shop_are_both_left_alone(make_world: Build) -> None:
    """main lists TEE-01 and WEB-TEE-01, which the mapping makes TEE-01 too: neither is written
    (each would offer the whole stock) and the ledger says why; outlet still syncs."""
    world: World = await make_world(
        RENAME, {"TEE-01": 10}, {"WEB-TEE-01": 2, "TEE-01": 1}, {"TEE-01": 0}
    )
    await world.daemon.engine.reconcile()
    assert await world.listings("main") == {"WEB-TEE-01": 2, "TEE-01": 1}
    assert await world.listings("outlet") == {"TEE-01": 10}
    (row,) = world.daemon.store.listings("main")
    assert (row.sku, row.status) == ("TEE-01", "unmapped")
    assert "TEE-01, WEB-TEE-01 all draw on ERP SKU TEE-01" in row.detail


async def test_a_kit_listing_is_kept_under_its_code_and_shows_the_kits_its_components_make(
    make_world: Build,
) -> None:
    """MUG-PAIR (2 x MUG) beside MUG on main, with 11 MUG: the pair shows 5 and is kept, mapped,
    under its own code; a kit whose component the ERP does not know is left unmapped, unwritten."""
    mapping = """
kits:
  - {channel_sku: MUG-PAIR, components: {MUG: 2}}
  - {channel_sku: ODD-SET, components: {MUG: 1, NOPE: 1}}
"""
    world: World = await make_world(
        mapping, {"MUG": 11}, {"MUG-PAIR": 1, "MUG": 0, "ODD-SET": 3}, {"MUG": 0}
    )
    await world.daemon.engine.reconcile()
    assert await world.listings("main") == {"MUG-PAIR": 5, "MUG": 11, "ODD-SET": 3}
    rows = {r.sku: r for r in world.daemon.store.listings("main")}
    assert (rows["MUG-PAIR"].status, rows["MUG-PAIR"].detail) == ("ok", "")
    assert rows["ODD-SET"].status == "unmapped"


async def test_fixing_the_mapping_maps_the_listing_again(make_world: Build) -> None:
    """A listing held unmapped by the mapping is synced once the mapping places it (the reason
    is cleared at the next listing read)."""
    world: World = await make_world(
        RENAME, {"TEE-01": 10, "TEE-02": 5}, {"WEB-TEE-01": 2, "TEE-01": 1}, {"TEE-01": 0}
    )
    engine = world.daemon.engine
    await engine.reconcile()
    assert await world.listings("main") == {"WEB-TEE-01": 2, "TEE-01": 1}
    engine.skus.map = SkuMap([Rule("main", "WEB-TEE-01", (Component("TEE-02"),))])
    await engine.reconcile()
    assert await world.listings("main") == {"WEB-TEE-01": 5, "TEE-01": 10}
    assert {(r.sku, r.status, r.detail) for r in world.daemon.store.listings("main")} == {
        ("TEE-01", "ok", ""),
        ("TEE-02", "ok", ""),
    }


# ---------------------------------------------------------------------------- the translation


def line(channel: str, sku: str, key: str = "1") -> OrderLine:
    return OrderLine(channel, "o1", key, sku, 2, "open", datetime(2026, 1, 1, tzinfo=UTC))


RULES = SkuMap(
    [
        Rule("main", "WEB-TEE-01", (Component("TEE-01"),)),
        Rule(None, "OLD-CAP", (Component("CAP"),)),
        Rule(None, "PAIR", (Component("MUG", 2),), "kit"),
        Rule(None, "BAD", (Component("X"),), source="a"),
        Rule(None, "BAD", (Component("Y"),), source="b"),
    ]
)


@pytest.mark.parametrize(
    ("channel", "sku", "erp_sku"),
    [
        ("main", "WEB-TEE-01", "TEE-01"),  # renamed on this channel
        ("outlet", "WEB-TEE-01", "WEB-TEE-01"),  # the rule is main's only
        ("outlet", "OLD-CAP", "CAP"),  # an every-channel rule
        ("main", "TEE-01", "TEE-01"),  # by code
        ("main", "BAD", "BAD"),  # a conflicting code keeps its own
    ],
)
def test_order_lines_take_their_erp_sku(channel: str, sku: str, erp_sku: str) -> None:
    """Each line's SKU becomes its ERP SKU where the mapping places it; its key never changes."""
    (out,) = ListingSkus(RULES).lines([line(channel, sku, "k9")])
    assert (out.sku, out.key) == (erp_sku, f"{channel}:o1:k9")


def test_a_kit_line_becomes_a_line_per_component_and_lowers_the_kit_listing_once() -> None:
    """2 x PAIR (2 x MUG each) is a line of 4 MUG keyed by the kit line and the component; it
    counts as 2 kits sold on the PAIR listing."""
    (out,) = ListingSkus(RULES).lines([line("main", "PAIR", "k9")])
    assert (out.sku, out.quantity, out.key) == ("MUG", 4, "main:o1:k9#MUG")
    assert listing_sold(out) == ("PAIR", 2)


@pytest.mark.parametrize(
    ("channel", "erp_sku", "code"),
    [("main", "TEE-01", "WEB-TEE-01"), ("outlet", "TEE-01", "TEE-01"), ("outlet", "CAP", "OLD-CAP")],
)
def test_before_any_read_the_channel_code_comes_from_the_rules(channel: str, erp_sku: str, code: str) -> None:
    """Without a listing read, an ERP SKU is asked for by the code its rule gives the channel."""
    assert ListingSkus(RULES).channel_sku(channel, erp_sku) == code


codes = st.sampled_from(["A", "B", "C", "WA", "WB", "KIT", "BAD"])
maps = st.lists(st.tuples(codes, st.sampled_from(["A", "B", "C"])), max_size=6).map(
    lambda pairs: SkuMap(Rule(None, c, (Component(e),), source=f"{c}>{e}") for c, e in pairs)
)


@given(maps, st.lists(codes, max_size=8))
def test_listings_are_kept_once_per_sku_and_none_is_ever_written_under_another_erp_sku(
    sku_map: SkuMap, listed: list[str]
) -> None:
    """Whatever the mapping and listings: one ledger row per SKU, each row's ref is a listing's
    ref, and a row that is not unmapped is keyed by the ERP SKU its listing resolves to."""
    listings = [Listing(sku, f"ref-{i}", 1) for i, sku in enumerate(listed)]
    kept, unmapped = ListingSkus(sku_map).listings("main", listings)
    assert len({x.sku for x in kept}) == len(kept)
    assert set(unmapped) <= {x.sku for x in kept}
    by_ref = {x.ref: x.sku for x in listings}
    for x in kept:
        if x.sku not in unmapped:
            assert sku_map.resolve("main", by_ref[x.ref]) == (Component(x.sku),)
