"""Benchmark: the cost of planning one SKU after a sale, with an empty outbox and with a backlog.

A sale's fast path plans only the SKUs it touched; that must not cost more when thousands of
pushes wait in the outbox (a throttled channel, a long reconcile). Runs the engine on a SQLite
ledger with fake channels (the contract, no network), queues a backlog of pending pushes for
other SKUs, and times ``plan_and_push`` of one SKU without sending. ``--baseline-root`` runs the
same measurement on another checkout (say, a worktree of an older commit) in a subprocess, for a
ratio in the same run. ``python bench/plan_cost.py --json bench/results/plan_cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _fakes() -> tuple[type, type]:
    """A channel and an ERP implementing the contracts in memory (written here, not imported from
    the tests, so an older checkout runs the same measurement)."""
    from connectors.base import (
        ChannelConnector,
        ErpConnector,
        Listing,
        OrderPage,
        StockPage,
        StockRecord,
        UpdateResult,
    )

    class Channel(ChannelConnector):
        def __init__(self, name: str, shown: dict[str, int]) -> None:
            self.name, self.shown = name, dict(shown)

        async def list_listings(self, **_: Any) -> list[Listing]:
            return [Listing(sku, sku, q) for sku, q in self.shown.items()]

        async def read_quantities(self, listings: Any, **_: Any) -> dict[str, int]:
            return {x.sku: self.shown[x.sku] for x in listings}

        async def set_quantities(self, updates: Any, **_: Any) -> UpdateResult:
            for u in updates:
                self.shown[u.sku] = u.quantity
            return UpdateResult(applied={u.sku: u.quantity for u in updates})

        async def orders_since(self, since: Any, **_: Any) -> OrderPage:
            return OrderPage([], None)

        def parse_webhook(self, headers: Any, body: bytes) -> Any:
            raise NotImplementedError

    class Erp(ErpConnector):
        def __init__(self, stock: dict[str, int]) -> None:
            self.name, self.stock = "erp", stock

        async def read_stock(self) -> list[StockRecord]:
            return [StockRecord(s, q) for s, q in self.stock.items()]

        async def stock_changes(self, cursor: str | None) -> StockPage:
            return StockPage(await self.read_stock(), None)

        async def record_movements(self, movements: Any) -> list[str]:
            return [m.key for m in movements]

    return Channel, Erp


async def measure(backlogs: list[int], rounds: int) -> dict[str, float]:
    """Median milliseconds to plan one SKU, per backlog size (run inside the checkout measured)."""
    from syncd.config import parse_config
    from syncd.core import PlannedPush
    from syncd.engine import CycleReport, Engine
    from syncd.store import Store

    channel_type, erp_type = _fakes()
    out: dict[str, float] = {}
    for backlog in backlogs:
        with tempfile.TemporaryDirectory() as tmp:
            skus = {f"S{i:05d}": 50 for i in range(max(1, backlog))}
            stock = {"HOT": 40, **skus}
            config = parse_config(
                {
                    "database_url": f"sqlite:///{tmp}/ledger.db",
                    "stock": {"low_stock_threshold": 0},
                    "erp": {"type": "mock_erp", "base_url": "http://erp.test", "api_key": "k"},
                    "channels": [
                        {
                            "name": n,
                            "type": "woocommerce",
                            "base_url": f"http://{n}.test",
                            "consumer_key": "ck",
                            "consumer_secret": "cs",
                            "webhook_secret": "w",
                        }
                        for n in ("main", "outlet")
                    ],
                },
                env={},
            )
            store = Store(config.database_url)
            store.migrate()
            channels = {n: channel_type(n, stock) for n in ("main", "outlet")}
            engine = Engine(config, store, erp_type(stock), channels)
            try:
                await engine.reconcile()
                now = engine.clock()
                store.enqueue_pushes(
                    [PlannedPush("outlet", sku, 49, 50, "fast-path") for sku in list(skus)[:backlog]], now
                )
                # Older checkouts named it with an underscore.
                plan = getattr(engine, "plan_and_push", None) or engine._plan_and_push
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    await plan(["HOT"], CycleReport("bench"), send=False)
                    times.append((time.perf_counter() - started) * 1000)
                out[str(backlog)] = round(statistics.median(times), 3)
            finally:
                await engine.aclose()
                store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlogs", default="0,10000")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--baseline-root", type=Path, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log-quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backlogs = [int(b) for b in args.backlogs.split(",")]
    if args.inner:
        from syncd.logs import configure_logging

        configure_logging("error", "json")
        print(json.dumps(asyncio.run(measure(backlogs, args.rounds))))
        return 0
    results: dict[str, Any] = {"command": "python bench/plan_cost.py " + " ".join(argv or sys.argv[1:])}
    roots = {"this checkout": ROOT, **({"baseline": args.baseline_root} if args.baseline_root else {})}
    for label, root in roots.items():
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "plan_cost.py"),
                "--inner",
                "--backlogs",
                args.backlogs,
                "--rounds",
                str(args.rounds),
                "--log-quiet",
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise SystemExit(f"{label} ({root}) failed:\n{run.stderr[-2000:]}")
        results[label] = json.loads(run.stdout.strip().splitlines()[-1])
    print("| backlog | " + " | ".join(f"{label} (ms)" for label in roots) + " |")
    print("|---|" + "---|" * len(roots))
    for backlog in backlogs:
        print(f"| {backlog} | " + " | ".join(f"{results[label][str(backlog)]:.1f}" for label in roots) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
