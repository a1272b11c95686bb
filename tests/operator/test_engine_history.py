"""The engine's history hooks, through real cycles against the sandboxes: what a SKU's history
holds after a reconcile, a sale and an ERP poll, and a sale the ERP refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from syncd.daemon import Daemon
from syncd.errors import ConfigError
from tests.daemon.conftest import World, make_config


async def test_a_sale_leaves_reads_orders_decisions_and_pushes_in_the_history(world: World) -> None:
    """Reconcile, a web-store sale and an ERP poll: the SKU's history holds the ERP figures, the
    level read, the order, the decisions with their figures and the pushes with their outcome."""
    await world.seed({"A": 10}, {"A": 4})
    await world.engine.reconcile()
    assert (await world.purchase("A", 3)).status_code == 201
    await world.engine.poll_orders()
    await world.engine.poll_erp()
    world.engine.history.flush()
    events = world.store.history(sku="A")
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["on_hand", "read", "decision", "push"]  # reconcile: 4 shown, set to 9
    first = events[2]
    assert (first.channel, first.quantity, first.detail["reason"]) == ("webstore", 9, "reconcile")
    assert (first.detail["on_hand"], first.detail["reserved"], first.detail["ats"]) == (10, 0, 9)
    assert (events[3].outcome, events[3].quantity) == ("sent", 9)
    order = next(e for e in events if e.kind == "order")
    assert (order.channel, order.quantity) == ("webstore", 3)
    assert [e.quantity for e in events if e.kind == "on_hand"] == [10, 7]  # the ERP took the sale
    assert "refused" not in kinds


async def test_a_sale_the_erp_refuses_is_in_the_history(world: World) -> None:
    """More sold than the ERP holds: the refused sale is recorded with its order and units."""
    await world.seed({"A": 1}, {"A": 3})
    assert (await world.purchase("A", 2)).status_code == 201
    await world.engine.poll_orders()
    world.engine.history.flush()
    (refused,) = world.store.history(sku="A", kinds=["refused"])
    assert (refused.channel, refused.quantity) == ("webstore", 2)
    assert refused.outcome.startswith("webstore:")


async def test_scheduled_order_polls_are_runs_with_durations(world: World) -> None:
    """The daemon's scheduled order poll is recorded as a run, like reconcile."""
    from syncd.history import record_run

    await world.seed({"A": 5}, {"A": 5})
    await record_run(world.store, "orders", world.engine.poll_orders, world.engine.clock)
    (run,) = world.store.recent_runs()
    assert run.kind == "orders" and run.finished_at is not None and run.error is None


def test_the_retention_comes_from_the_config_and_must_be_positive(tmp_path: Path) -> None:
    """history.retention sets how long the recorder keeps rows; 0 is refused naming the key."""
    daemon = Daemon(make_config(tmp_path, history={"retention": "2h"}))
    try:
        assert daemon.engine.history.retention == timedelta(hours=2)
    finally:
        daemon.store.close()
    with pytest.raises(ConfigError, match=r"history\.retention"):
        make_config(tmp_path, history={"retention": "0s"})
