"""The fast path: a sale on one channel reaches the others within a debounce and a round trip,
bursts are batched, and low-stock mode keeps the channels from promising the same last units."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.base import OrderLine
from syncd.daemon import Daemon
from tests.daemon.conftest import Shops


async def sale_lines(shops: Shops, channel: str) -> list[OrderLine]:
    """What a webhook would deliver: the channel's recent order lines."""
    page = await shops.engine.channels[channel].orders_since(shops.engine.clock().replace(year=2000))
    return page.lines


async def test_sale_on_one_channel_reaches_the_other(make_shops: Any) -> None:
    """A webhook-delivered sale on `main` lowers `outlet` after the debounce, and is timed."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 0}, {"A": 10})
    await shops.engine.reconcile()
    assert await shops.listings("outlet") == {"A": 10}
    assert (await shops.buy("main", "A", 3)).status_code == 201
    result = shops.engine.ingest(await sale_lines(shops, "main"))
    shops.engine.touch(result.touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 7}
    # Channels stamp sales in whole seconds: a sale in the same second as main's last baseline
    # may hold main back by its own units until the next plan, never above what exists.
    assert await shops.listings("main") in ({"A": 7}, {"A": 4})
    await shops.engine.replan_all()
    assert await shops.listings("main") == {"A": 7}
    percentiles = shops.engine.propagation_percentiles()
    assert percentiles["samples"] == 1 and percentiles["p50"] is not None


async def test_a_burst_is_batched_into_one_push_per_channel(make_shops: Any) -> None:
    """Ten sales of ten SKUs touched within the debounce cost one batch write to the other shop."""
    skus = {f"S{i}": 20 for i in range(10)}
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 0}, skus)
    await shops.engine.reconcile()
    before = (await shops.shops["outlet"].get("/_sandbox/stats")).json()["calls"]
    for sku in skus:
        await shops.buy("main", sku)
    lines = await sale_lines(shops, "main")
    for line in lines:  # one webhook per order
        shops.engine.touch(shops.engine.ingest([line]).touched_skus)
    await shops.engine.drain_fast_path()
    after = (await shops.shops["outlet"].get("/_sandbox/stats")).json()["calls"]
    batch = "POST /wp-json/wc/v3/products/batch"
    assert after.get(batch, 0) - before.get(batch, 0) == 1
    assert await shops.listings("outlet") == {sku: 19 for sku in skus}


async def test_low_stock_mode_splits_the_last_units(make_shops: Any) -> None:
    """At or below the threshold the shops' quantities add up to at most the available units."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 5}, {"A": 5, "B": 50})
    await shops.engine.reconcile()
    main, outlet = await shops.listings("main"), await shops.listings("outlet")
    assert main["A"] + outlet["A"] <= 5 and main["A"] == 5  # priority 1 is served first
    assert main["B"] == outlet["B"] == 50  # plenty: both show everything


async def test_low_stock_mode_prevents_oversell_when_both_shops_sell_at_once(make_shops: Any) -> None:
    """With low-stock mode off both shops sell the same last units; with it on they cannot."""
    for threshold, oversold_expected in ((0, True), (5, False)):
        shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": threshold}, {"A": 3})
        await shops.engine.reconcile()
        sold = 0
        # Both shops sell before any push lands: the slow-propagation worst case.
        for name in ("main", "outlet"):
            for _ in range(3):
                if (await shops.buy(name, "A")).status_code == 201:
                    sold += 1
        assert (sold > 3) is oversold_expected, f"threshold {threshold}: sold {sold} of 3"


async def test_event_reserve_ring_fences_units_and_expires(make_shops: Any) -> None:
    """An active event reserving 4 units for `outlet` hides them from `main`; once over, it stops."""
    from datetime import timedelta

    from syncd.config import EventSettings

    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 0}, {"A": 10})
    await shops.engine.reconcile()
    now = shops.engine.clock()
    event = EventSettings(
        name="live",
        channel="outlet",
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
        reserve=4,
    )
    shops.engine.save_event(event)
    await shops.engine.replan_all()
    assert await shops.listings("main") == {"A": 6}
    assert await shops.listings("outlet") == {"A": 10}
    # The event is kept in the ledger: a restarted engine still knows it.
    restarted = Daemon(shops.daemon.config)
    assert [e.name for e in restarted.engine.events] == ["live"]
    await restarted.engine.aclose()
    restarted.store.close()
    shops.engine.clock = lambda: now + timedelta(hours=2)
    await shops.engine.poll_erp()  # two hours on, the ERP has been read meanwhile (no outage mode)
    await shops.engine.replan_all()
    assert await shops.listings("main") == {"A": 10}


async def test_auto_threshold_follows_the_sales_rate(make_shops: Any) -> None:
    """With `auto`, a SKU selling fast enters low-stock mode at a higher ats than a quiet one."""
    shops: Shops = await make_shops(
        {
            "safety_stock": 0,
            "low_stock_threshold": "auto",
            "auto_threshold": {"floor": 1, "cap": 40, "window": "1m", "latency": "30s"},
        },
        {"HOT": 12, "QUIET": 12},
    )
    await shops.engine.reconcile()
    assert (await shops.listings("outlet")) == {"HOT": 12, "QUIET": 12}  # nothing sold yet: threshold 1
    for _ in range(6):
        assert (await shops.buy("main", "HOT")).status_code == 201
    shops.engine.ingest(await sale_lines(shops, "main"))
    await shops.engine.replan_all()
    # 6 units a minute x 30 s x 2 channels = 6: HOT (ats 6) is now split, QUIET is not.
    main, outlet = await shops.listings("main"), await shops.listings("outlet")
    assert main["HOT"] + outlet["HOT"] <= 6
    assert main["QUIET"] == outlet["QUIET"] == 12


async def test_push_leaves_out_sales_the_channel_made_that_syncd_has_not_heard_of(make_shops: Any) -> None:
    """Without compare-and-set, a write would put unseen sales back on sale; syncd reads the
    listing first and leaves them out, so no unit is offered twice."""
    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 0}, {"A": 10})
    await shops.engine.reconcile()
    assert (await shops.buy("outlet", "A", 3)).status_code == 201  # its webhook is late
    assert (await shops.buy("main", "A", 2)).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    # 10 - 2 seen = 8 would resurrect the 3 units outlet sold: it is set to 8 - 3 = 5.
    assert await shops.listings("outlet") == {"A": 5}
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "outlet")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("main") == {"A": 5} and await shops.listings("outlet") == {"A": 5}


async def test_planning_one_channel_keeps_the_low_stock_split_of_all(make_shops: Any) -> None:
    """Re-planning a single channel (after a stale write) splits the units among every channel
    listing the SKU, not just that one: `outlet` must not be handed what `main` already shows."""
    from syncd.engine import CycleReport

    shops: Shops = await make_shops({"safety_stock": 0, "low_stock_threshold": 10}, {"A": 8})
    await shops.engine.reconcile()
    assert await shops.listings("main") == {"A": 8} and await shops.listings("outlet") == {"A": 0}
    plan = await shops.engine.plan_and_push({"A"}, CycleReport("replan"), channels={"outlet"})
    assert plan.pushes == []  # outlet's share of the split is still 0
    assert await shops.listings("outlet") == {"A": 0}


async def test_shipped_defaults_split_the_last_units(make_shops: Any) -> None:
    """With no stock settings at all, a SKU's last units are split: both shops buying all of them
    at the same moment sell no more than exist."""
    shops: Shops = await make_shops({}, {"A": 3, "B": 40})
    await shops.engine.reconcile()
    main, outlet = await shops.listings("main"), await shops.listings("outlet")
    assert main["A"] + outlet["A"] <= 3
    assert main["B"] == outlet["B"] == 40  # plenty: both show it all
    sold = 0
    for shop, shown in (("main", main["A"]), ("outlet", outlet["A"])):
        for _ in range(3):
            sold += (await shops.buy(shop, "A")).status_code == 201
        assert sold <= 3, f"{shop} sold beyond the units it showed ({shown})"
    assert sold == 3


async def test_the_last_units_are_split_where_the_sku_sells(make_shops: Any) -> None:
    """Shipped split (by demand): a SKU that sold on `main` gets more of its last units there when
    it enters low-stock mode than an even split by weight gives it, so that neither shop runs out
    long before the other; never more than exist."""
    shown: dict[str, dict[str, int]] = {}
    for split_by in ("demand", "weight"):
        stock = {"safety_stock": 0, "low_stock_threshold": 8, "split_by": split_by}
        shops: Shops = await make_shops(stock, {"A": 10}, priorities=(1, 1))
        await shops.engine.reconcile()
        # Past the second of the reconcile's writes: a sale stamped in it (whole seconds) would be
        # held as possibly overwritten until an order poll, whichever the split.
        await asyncio.sleep(1.1)
        assert (await shops.buy("main", "A", 3)).status_code == 201
        shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
        await shops.engine.drain_fast_path()
        await shops.engine.replan_all()
        await shops.engine.drain_fast_path()
        shown[split_by] = {name: (await shops.listings(name))["A"] for name in ("main", "outlet")}
        assert sum(shown[split_by].values()) <= 7, split_by
    assert shown["demand"]["main"] > shown["weight"]["main"], shown
    assert shown["demand"]["outlet"] < shown["weight"]["outlet"], shown


async def test_a_sku_split_in_a_burst_stays_split_when_the_estimate_falls(make_shops: Any) -> None:
    """Shipped threshold (auto, floor 5): two quick sales leave 6 units with one more likely on
    its way, so the SKU is split. Seconds later the in-flight estimate is back at 0, 6 is above the
    floor, but the SKU stays split for the burst window: shown again in full on both shops, the
    last units could be bought on both at once."""
    from datetime import timedelta

    shops: Shops = await make_shops({"safety_stock": 0, "hold_in_flight": True}, {"A": 8})
    await shops.engine.reconcile()
    await asyncio.sleep(1.1)  # past the second of the reconcile's writes (orders are stamped in seconds)
    for _ in range(2):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    shown = [(await shops.listings(name))["A"] for name in ("main", "outlet")]
    assert sum(shown) <= 6, shown

    now = shops.engine.clock()
    shops.engine.clock = lambda: now + timedelta(seconds=10)
    await shops.engine.replan_all()
    await shops.engine.drain_fast_path()
    shown = [(await shops.listings(name))["A"] for name in ("main", "outlet")]
    assert sum(shown) <= 6, shown
