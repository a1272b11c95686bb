"""The demo as a newcomer runs it: every sandbox and the daemon come up, /health answers within
30 seconds, and after the first reconcile every channel shows exactly its target (in low-stock mode:
a split of the units that planning again would leave as it is)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from syncd.config import load_config
from syncd.core import (
    ChannelPolicy,
    SkuStock,
    available_to_sell,
    channel_targets,
    is_low_stock,
    keep_split,
    policy_target,
)
from tests.daemon.test_e2e import free_port, wait_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# The demo sets api.token, which guards /api/status.
DEMO_AUTH = {"Authorization": "Bearer demo-api-token-0123456789"}


def test_demo_converges_every_channel_to_its_target(tmp_path: Path) -> None:
    """`syncd demo` (shoppers off) ends its first reconcile with every listing at target."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    ports = {"daemon": free_port(), "erp": free_port()}
    config["server"]["port"] = ports["daemon"]
    config["database_url"] = f"sqlite:///{tmp_path / 'demo' / 'syncd.db'}"
    config["erp"]["base_url"] = f"http://127.0.0.1:{ports['erp']}"
    for channel in config["channels"]:
        port = free_port()
        channel["base_url"] = f"http://127.0.0.1:{port}"
        if "auth_base_url" in channel:
            channel["auth_base_url"] = channel["base_url"]
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "demo.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "demo", "--config", str(path), "--skus", "60", "--rate", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_DEMO_")},
    )
    base = f"http://127.0.0.1:{ports['daemon']}"
    try:
        with httpx.Client(base_url=base, timeout=10, headers=DEMO_AUTH) as daemon:
            wait_for(lambda: daemon.get("/health").status_code == 200, timeout=30, what="/health within 30 s")
            assert time.monotonic() - started < 30
            wait_for(
                lambda: any(
                    r["kind"] == "reconcile" and r["finished_at"]
                    for r in daemon.get("/api/status").json()["runs"]
                ),
                timeout=120,
                what="the first reconcile",
            )
            status = daemon.get("/api/status").json()
            first = [r for r in status["runs"] if r["kind"] == "reconcile"][-1]
            assert first["error"] is None, first
            assert all(c["healthy"] for c in status["connectors"]), status["connectors"]
        loaded = load_config(path, env={})
        with httpx.Client(timeout=10) as client:
            stock = {
                r["sku"]: r["on_hand"]
                for r in client.get(f"{config['erp']['base_url']}/_sandbox/stock").json()
            }
            shown = {
                c.name: {
                    r["sku"]: r["quantity"]
                    for r in client.get(f"{config['channels'][i]['base_url']}/_sandbox/listings").json()
                }
                for i, c in enumerate(loaded.channels)
            }
        policies = [
            ChannelPolicy(
                c.name, c.policy.share, c.policy.buffer, c.policy.cap, c.policy.priority, c.policy.weight
            )
            for c in loaded.channels
        ]
        exact = frozenset(c.name for c in loaded.channels if c.type == "shopify")
        for sku, on_hand in stock.items():
            state = SkuStock(
                sku, on_hand, 0, loaded.stock.safety_for(sku), int(loaded.stock.threshold_for(sku))
            )
            targets = channel_targets(state, policies)
            now = {name: listings[sku] for name, listings in shown.items()}
            if is_low_stock(state):
                ats = available_to_sell(on_hand, 0, state.safety_stock)
                limits = {p.channel: policy_target(ats, p) for p in policies}
                assert sum(now.values()) <= ats, (sku, ats, now)
                targets = keep_split(ats, targets, now, limits, exact=exact)
            assert now == targets, (sku, now, targets)
        for name, listings in shown.items():
            legacy = {sku: qty for sku, qty in listings.items() if sku.startswith("LEGACY-")}
            assert legacy and all(qty in (3, 7) for qty in legacy.values()), (
                name,
                legacy,
            )  # unmapped, untouched
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
