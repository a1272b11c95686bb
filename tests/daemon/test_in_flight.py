"""Units a SKU has likely sold but not yet reported are held back from every channel, and come
back once sales stop arriving."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.daemon.conftest import Shops
from tests.daemon.test_fast_path import sale_lines


async def test_a_burst_holds_back_its_unreported_units_until_it_stops(make_shops: Any) -> None:
    """10 units reported within the window at 2 s of lag: 10 / 5 s x 2 s = 4 units held back."""
    shops: Shops = await make_shops(
        {"safety_stock": 0, "hold_in_flight": True, "auto_threshold": {"default_latency": "2s"}}, {"A": 50}
    )
    await shops.engine.reconcile()
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 36}  # 50 - 10 reported - 4 likely in flight
    # Sales stopped: after the window nothing is in flight any more and the units return.
    later = shops.engine.clock() + timedelta(seconds=6)
    shops.engine.clock = lambda: later
    await shops.engine.replan_all()
    assert await shops.listings("outlet") == {"A": 40}


async def test_off_counts_only_reported_sales(make_shops: Any) -> None:
    shops: Shops = await make_shops({"safety_stock": 0, "hold_in_flight": False}, {"A": 50})
    await shops.engine.reconcile()
    for _ in range(10):
        assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 40}


async def test_a_single_quiet_sale_holds_nothing(make_shops: Any) -> None:
    """One unit in the window at 2 s of lag rounds to 0: normal trade is not held back."""
    shops: Shops = await make_shops(
        {"safety_stock": 0, "hold_in_flight": True, "auto_threshold": {"default_latency": "2s"}}, {"A": 50}
    )
    await shops.engine.reconcile()
    assert (await shops.buy("main", "A")).status_code == 201
    shops.engine.touch(shops.engine.ingest(await sale_lines(shops, "main")).touched_skus)
    await shops.engine.drain_fast_path()
    assert await shops.listings("outlet") == {"A": 49}
