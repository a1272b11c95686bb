"""Benchmark: the pure planner on a large catalogue, and a full reconcile through the sandboxes.

Run on demand (`make bench`, or `python bench/reconcile.py --json FILE`). Each figure is compared
with a baseline measured in the same run, and reported as a ratio:

* planner: syncd's planner (targets with policies and low-stock partitioning, plus the ordered
  push plan) against the naive planner most tools use (push on-hand to every channel).
* reconcile: API calls used against the fewest the channel's API allows (WooCommerce: one listing
  read per 100 items, one batch write per 100 changes; the ERP: one read per 5,000 records).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.config import parse_config
from syncd.core import ChannelPolicy, SkuStock, channel_targets, plan_pushes
from syncd.daemon import Daemon
from syncd.logs import configure_logging


def _measure(fn: Any) -> tuple[Any, float, float, int]:
    """Run ``fn``; return its result, CPU seconds, wall seconds and peak traced memory in bytes."""
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, cpu, wall, peak


def bench_planner(skus: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    policies = [
        ChannelPolicy("tiktok", share=100, priority=1, weight=3),
        ChannelPolicy("shopify", share=80, buffer=1, priority=2, weight=2),
        ChannelPolicy("webstore", share=100, cap=500, priority=3, weight=1),
    ]
    stock = [SkuStock(f"SKU-{i:06d}", rng.randint(0, 400), rng.randint(0, 5), 1, 5) for i in range(skus)]
    believed = {(p.channel, s.sku): rng.randint(0, 400) for s in stock for p in policies}

    def syncd_plan() -> int:
        targets: dict[tuple[str, str], int] = {}
        for s in stock:
            for channel, target in channel_targets(s, policies).items():
                targets[(channel, s.sku)] = target
        return len(plan_pushes(targets, believed, "bench"))

    def naive_plan() -> int:
        pushes = [(p.channel, s.sku, s.on_hand) for s in stock for p in policies]
        return len(pushes)

    pushes, cpu, wall, peak = _measure(syncd_plan)
    _, base_cpu, _, base_peak = _measure(naive_plan)
    return {
        "skus": skus,
        "channels": len(policies),
        "pushes_planned": pushes,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "peak_memory_mb": round(peak / 2**20, 1),
        "baseline_naive_cpu_seconds": round(base_cpu, 3),
        "baseline_naive_peak_memory_mb": round(base_peak / 2**20, 1),
        "cpu_ratio_vs_naive": round(cpu / base_cpu, 1) if base_cpu else None,
        "microseconds_per_sku_channel": round(cpu / (skus * len(policies)) * 1e6, 2),
    }


async def bench_reconcile(skus: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        erp = erp_app(api_key="bench-key-0001", db_path=str(Path(tmp) / "erp.db"))
        shop = woo_app(consumer_key="ck_bench", consumer_secret="cs_bench")
        config = parse_config(
            {
                "database_url": f"sqlite:///{tmp}/syncd.db",
                "stock": {"safety_stock": 1, "low_stock_threshold": 3},
                "erp": {"type": "mock_erp", "base_url": "http://erp.bench", "api_key": "bench-key-0001"},
                "channels": [
                    {
                        "name": "webstore",
                        "type": "woocommerce",
                        "base_url": "http://shop.bench",
                        "consumer_key": "ck_bench",
                        "consumer_secret": "cs_bench",
                        "rate_limit": 10_000,
                        "burst": 100,
                    }
                ],
            },
            "bench",
            env={},
        )
        catalogue = {f"SKU-{i:06d}": rng.randint(0, 300) for i in range(skus)}
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=erp), base_url="http://erp.bench") as e,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=shop), base_url="http://shop.bench") as s,
        ):
            await e.post(
                "/_sandbox/seed", json={"items": [{"sku": k, "quantity": v} for k, v in catalogue.items()]}
            )
            # Every listing is off, so every one must be written: the worst case for the writes.
            await s.post(
                "/_sandbox/seed",
                json={"items": [{"sku": k, "quantity": v + 7} for k, v in catalogue.items()]},
            )
            daemon = Daemon(
                config,
                transports={"erp": httpx.ASGITransport(app=erp), "webstore": httpx.ASGITransport(app=shop)},
            )
            cpu, wall = time.process_time(), time.perf_counter()
            report = await daemon.engine.reconcile()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            calls = (await s.get("/_sandbox/stats")).json()["calls"]
            erp_calls = (await e.get("/_sandbox/stats")).json()["calls"]
            listings = {row["sku"]: row["quantity"] for row in (await s.get("/_sandbox/listings")).json()}
            await daemon.engine.aclose()
            daemon.store.close()
    writes = sum(v for k, v in calls.items() if k.endswith("/batch"))
    reads = sum(v for k, v in calls.items() if k.startswith("GET /wp-json/wc/v3/products"))
    min_writes = math.ceil(skus / 100)
    min_reads = math.ceil(skus / 100)
    correct = sum(1 for k, v in catalogue.items() if listings.get(k) == max(0, v - 1))
    return {
        "skus": skus,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "errors": report.errors,
        "pushes_sent": report.counts.get("pushes_sent", 0),
        "listings_at_target": correct,
        "webstore_calls": calls.get("total", 0),
        "webstore_batch_writes": writes,
        "webstore_batch_writes_minimum": min_writes,
        "webstore_reads": reads,
        "webstore_reads_minimum": min_reads,
        "webstore_calls_ratio_vs_minimum": round(calls.get("total", 0) / (min_writes + min_reads), 2),
        "erp_calls": erp_calls.get("total", 0),
        "note": "sandboxes in-process over ASGI (no sockets); the figures measure syncd and the sandboxes together",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--planner-skus", type=int, default=100_000)
    parser.add_argument("--reconcile-skus", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    configure_logging("warning", "console")
    results = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}",
        "planner": bench_planner(args.planner_skus, args.seed),
        "reconcile": asyncio.run(bench_reconcile(args.reconcile_skus, args.seed)),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
