"""Kits in the engine, through the sandboxes: a kit listing shows the kits its components make, its
components' sales elsewhere bring it down, its own sales reserve its components and bring their
other listings down, and together the channels never promise more component units than exist."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from syncd.cli import main
from tests.mapping.test_engine_mapping import Build, World, make_world

__all__ = ["make_world"]  # the fixture, shared with the other mapping tests

async def settle(world: World, reserved: int) -> None:
    """Wait until the ledger reserves ``reserved`` units in all (the webhook is in), then for the
    fast path it starts."""
    for _ in range(100):
        if sum(world.daemon.store.reserved_by_sku().values()) >= reserved:
            break
        await asyncio.sleep(0.05)
    await world.settle()


async def next_second() -> None:
    """Wait for the clock's next whole second: shops stamp orders in whole seconds, and a sale in
    the second of syncd's last write is taken as one that write may have overwritten."""
    await asyncio.sleep(1.01 - datetime.now(UTC).microsecond / 1e6)


GIFT = """
kits:
  - {channel: main, channel_sku: GIFT, components: {MUG: 2, TEE: 1}}
"""


async def test_a_kit_comes_down_as_its_components_sell_elsewhere_and_its_sale_reserves_them(
    make_world: Build,
) -> None:
    """GIFT (2 MUG + 1 TEE) on main shows min(10 // 2, 4 // 1) = 4 (a dry run plans as much); 3 TEE
    sold on outlet take it to 1; one GIFT sold on main reserves 2 MUG and 1 TEE and takes outlet's
    TEE to 0, MUG to 8."""
    world: World = await make_world(
        GIFT, {"MUG": 10, "TEE": 4}, {"GIFT": 0}, {"MUG": 0, "TEE": 0}
    )
    engine = world.daemon.engine
    dry = await engine.reconcile(dry_run=True)
    assert {(p.channel, p.sku, p.target) for p in dry.pushes} == {
        ("main", "GIFT", 4), ("outlet", "MUG", 10), ("outlet", "TEE", 4)
    }
    assert await world.listings("main") == {"GIFT": 0}  # a dry run writes nothing
    await engine.reconcile()
    assert await world.listings("main") == {"GIFT": 4}
    assert await world.listings("outlet") == {"MUG": 10, "TEE": 4}

    await world.buy("outlet", "TEE", 3)  # outlet sends no webhooks: the order poll finds it
    await engine.poll_orders()
    assert world.daemon.store.reserved_by_sku() == {"TEE": 3}
    assert await world.listings("main") == {"GIFT": 1}

    await world.buy("main", "GIFT")
    await settle(world, 6)
    assert world.daemon.store.reserved_by_sku() == {"MUG": 2, "TEE": 4}
    assert await world.listings("outlet") == {"MUG": 8, "TEE": 0}
    assert await world.listings("main") == {"GIFT": 0}
    report = await engine.poll_orders()  # the poll finds the webhook's sale again: counted once
    assert report.counts["order_lines_new"] == 0
    assert world.daemon.store.reserved_by_sku() == {"MUG": 2, "TEE": 4}


async def test_a_kit_sale_brings_down_another_kit_sharing_a_component(make_world: Build) -> None:
    """GIFT (2 MUG + 1 TEE) on main and PAIR (2 MUG) on outlet, with 9 MUG: PAIR shows 4; 2 GIFT
    sold leave 5 MUG, and PAIR comes down to 2."""
    mapping = GIFT + """  - {channel: outlet, channel_sku: PAIR, components: {MUG: 2}}
"""
    world: World = await make_world(mapping, {"MUG": 9, "TEE": 5}, {"GIFT": 0}, {"PAIR": 0})
    await world.daemon.engine.reconcile()
    assert await world.listings("main") == {"GIFT": 4}
    assert await world.listings("outlet") == {"PAIR": 4}
    await world.buy("main", "GIFT", 2)
    await settle(world, 6)
    assert world.daemon.store.reserved_by_sku() == {"MUG": 4, "TEE": 2}
    assert await world.listings("outlet") == {"PAIR": 2}


async def test_a_kit_sale_lowers_the_kit_listing_not_its_components_on_the_same_shop(
    make_world: Build,
) -> None:
    """main lists GIFT and MUG: a GIFT sold lowers what syncd believes GIFT shows by one kit, and
    main's own MUG listing is lowered by the plan (to the 8 MUG left), not counted as sold."""
    world: World = await make_world(
        GIFT, {"MUG": 10, "TEE": 5}, {"GIFT": 0, "MUG": 0}, {"TEE": 0}
    )
    engine = world.daemon.engine
    await engine.reconcile()
    assert await world.listings("main") == {"GIFT": 5, "MUG": 10}
    await next_second()
    await world.buy("main", "GIFT", 2)
    await settle(world, 6)
    assert world.daemon.store.reserved_by_sku() == {"MUG": 4, "TEE": 2}
    assert await world.listings("main") == {"GIFT": 3, "MUG": 6}
    assert await world.listings("outlet") == {"TEE": 3}
    accounts = engine.allocations.accounts
    assert accounts.get("GIFT").listing("main").exposure == 3
    assert accounts.get("MUG").listing("main").exposure == 6


async def test_in_low_stock_the_channels_never_promise_more_component_units_than_exist(
    make_world: Build,
) -> None:
    """Every SKU in low-stock mode, GIFT and MUG on main, MUG and TEE on outlet: after the first
    plan and after each sale, what the listings show (GIFT counting 2 MUG and 1 TEE a kit) adds up
    to at most the units left; shoppers buying until nothing shows never buy more than exist."""
    world: World = await make_world(
        GIFT,
        {"MUG": 7, "TEE": 3},
        {"GIFT": 0, "MUG": 0},
        {"MUG": 0, "TEE": 0},
        stock={"safety_stock": 0, "low_stock_threshold": 50},
    )
    engine = world.daemon.engine
    await engine.reconcile()
    await engine.reconcile()  # the split's free units handed out once the first writes landed

    async def promised() -> Counter[str]:
        main, outlet = await world.listings("main"), await world.listings("outlet")
        units: Counter[str] = Counter({"MUG": main["MUG"] + outlet["MUG"], "TEE": outlet["TEE"]})
        units.update({"MUG": 2 * main["GIFT"], "TEE": main["GIFT"]})
        return units

    sold: Counter[str] = Counter()
    stock = {"MUG": 7, "TEE": 3}
    assert all(units <= stock[sku] for sku, units in (await promised()).items())
    assert sum((await world.listings("main")).values()) > 0
    for shop, sku in [("main", "GIFT"), ("outlet", "MUG"), ("main", "MUG"), ("outlet", "TEE")] * 4:
        if (await world.listings(shop))[sku] == 0:
            continue
        await world.buy(shop, sku)
        sold.update({"MUG": 2, "TEE": 1} if sku == "GIFT" else {sku: 1})
        if shop == "main":
            await settle(world, sum(sold.values()))
        else:
            await engine.poll_orders()
        left = {s: stock[s] - sold[s] for s in stock}
        assert all(units <= left[s] for s, units in (await promised()).items()), (sold, await promised())
    assert all(sold[s] <= stock[s] for s in stock)
    assert sold["TEE"] > 0 and sold["MUG"] > 0


async def test_explain_shows_a_kit_by_its_components_and_a_component_with_its_kits(
    make_world: Build, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syncd explain GIFT` gives what each component allows in kits; `syncd explain MUG` lists
    GIFT among the listings drawing on MUG, with the MUG units it shows."""
    world: World = await make_world(GIFT, {"MUG": 10, "TEE": 3}, {"GIFT": 0}, {"MUG": 0})
    await world.daemon.engine.reconcile()
    world.daemon.engine.history.flush()
    config = tmp_path / "syncd.yaml"
    config.write_text(
        f"""
database_url: sqlite:///{tmp_path / "syncd.db"}
stock: {{safety_stock: 0}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:9", api_key: k}}
mapping: {{file: {tmp_path / "mapping.yaml"}}}
channels:
  - {{name: main, type: woocommerce, base_url: "http://127.0.0.1:9", consumer_key: a, consumer_secret: b}}
  - {{name: outlet, type: woocommerce, base_url: "http://127.0.0.1:9", consumer_key: a, consumer_secret: b}}
"""
    )
    assert main(["explain", "GIFT", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "GIFT on main: a kit of 2 x MUG + TEE" in out
    assert "MUG: 10 available to sell, 2 a kit -> 5 kits" in out
    assert "TEE: 3 available to sell, 1 a kit -> 3 kits" in out
    assert "at most 3 kits" in out
    assert "main shows 3" in out and "ERP on hand" not in out
    assert "why: decided main = 3: the kits its components allow" in out
    assert main(["explain", "MUG", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ERP on hand 10" in out
    assert "main GIFT = 2 x MUG + TEE: shows 3 kits = 6 x MUG" in out
    assert main(["explain", "MUG", "-c", str(config), "--json"]) == 0
    (drawing,) = json.loads(capsys.readouterr().out)["kits"]["in_kits"]
    assert (drawing["kit"], drawing["shows"], drawing["units"]) == ("GIFT", 3, 6)
    # The daemon's own SKU page says the same of the kit's decision.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as client:
        page = (await client.get("/status/sku/GIFT")).text
    assert "the kits its components allow" in page and "on hand None" not in page
