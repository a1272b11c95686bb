"""End to end, with real processes: the daemon killed in the middle of its start-up reconcile, sales
made on one web store while it is down, and the next start takes them in and lowers the other
store before its own (slow) reconcile is over; the run the kill left open is closed as such."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.demo import DEMO_ENV
from tests.daemon.test_e2e import Proc, free_port, sandboxes, wait_for

pytestmark = pytest.mark.slow

SKUS = [f"SKU-{i:03d}" for i in range(20)]
SOLD = {"SKU-001": 2, "SKU-002": 3}  # units sold on the web store while the daemon is down


def config_text(tmp_path: Path, ports: dict[str, int]) -> str:
    shop = """
  - name: {name}
    type: woocommerce
    base_url: "http://127.0.0.1:{port}"
    consumer_key: "${{SYNCD_DEMO_WC_KEY}}"
    consumer_secret: "${{SYNCD_DEMO_WC_SECRET}}"
    webhook_secret: "${{SYNCD_DEMO_WC_WEBHOOK_SECRET}}"
"""
    return (
        f"""
database_url: sqlite:///{tmp_path / "data" / "syncd.db"}
server: {{host: 127.0.0.1, port: {ports["daemon"]}}}
schedule: {{reconcile_interval: 1h, order_poll_interval: 1h, erp_poll_interval: 1h, jitter: 0s}}
stock: {{safety_stock: 2, low_stock_threshold: 0}}
logging: {{format: json}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:{ports["erp"]}", api_key: "${{SYNCD_DEMO_ERP_KEY}}"}}
channels:"""
        + shop.format(name="webstore", port=ports["webstore"])
        + shop.format(name="outlet", port=ports["outlet"])
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = {**os.environ, **DEMO_ENV, "SYNCD_DEMO_WC_WEBHOOK_SECRET": "e2e-webhook-secret-77"}
    ports = {"erp": free_port(), "webstore": free_port(), "outlet": free_port(), "daemon": free_port()}
    daemon_url = f"http://127.0.0.1:{ports['daemon']}"
    shops = {
        "webstore": (ports["webstore"], f"{daemon_url}/webhooks/webstore"),
        "outlet": (ports["outlet"], None),
    }
    procs = sandboxes(tmp_path, env, ports["erp"], shops)
    clients = {
        name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for name, port in ports.items()
    }
    config = tmp_path / "syncd.yaml"
    config.write_text(config_text(tmp_path, ports))
    try:
        wait_for(lambda: clients["erp"].get("/_sandbox/stock").status_code == 200, what="ERP sandbox")
        for shop in ("webstore", "outlet"):
            wait_for(lambda s=shop: clients[s].get("/_sandbox/listings").status_code == 200, what=shop)  # type: ignore[misc]
        clients["erp"].post(
            "/_sandbox/seed", json={"items": [{"sku": s, "quantity": 10} for s in SKUS]}
        ).raise_for_status()
        for shop in ("webstore", "outlet"):
            # Already what syncd would set (10 less the safety stock of 2): no push is due before the sales.
            clients[shop].post(
                "/_sandbox/seed", json={"items": [{"sku": s, "quantity": 8} for s in SKUS]}
            ).raise_for_status()
        yield {"clients": clients, "config": config, "env": env, "procs": procs, "tmp": tmp_path}
    finally:
        for client in clients.values():
            client.close()
        for proc in reversed(procs):
            proc.stop()


def runs(daemon: httpx.Client) -> list[dict[str, Any]]:
    return list(daemon.get("/api/status").json().get("runs", []))


def test_sales_made_while_down_are_pushed_before_the_start_up_reconcile_ends(world: dict[str, Any]) -> None:
    """A daemon that has run once is SIGKILLed while its next start-up reconcile runs (the ERP
    answering slowly), five units sell on the web store while it is down (their webhooks lost),
    and it starts again: its start-up poll takes the sales in before the reconcile starts, the
    fast path lowers the outlet before that reconcile finishes, and the killed reconcile is
    closed as interrupted."""
    clients: dict[str, httpx.Client] = world["clients"]
    daemon, erp = clients["daemon"], clients["erp"]
    tmp: Path = world["tmp"]

    def start(n: int) -> Proc:
        proc = Proc(["run", "--config", str(world["config"])], tmp / f"daemon{n}.log", world["env"])
        world["procs"].append(proc)
        return proc

    first = start(1)
    wait_for(
        lambda: [r for r in runs(daemon) if r["kind"] == "reconcile" and r["finished_at"]],
        what=f"the first reconcile\n{first.output()}",
    )
    assert first.stop() == 0
    # Every ERP call takes 1.5 s from here on: a reconcile (ERP movements, the full stock read) takes seconds.
    erp.post("/_sandbox/faults", json={"latency_ms": 1500}).raise_for_status()
    second = start(2)
    running = wait_for(
        lambda: [r for r in runs(daemon) if r["kind"] == "reconcile" and r["finished_at"] is None],
        what=f"the second start's reconcile under way\n{second.output()}",
    )
    second.popen.send_signal(signal.SIGKILL)
    second.popen.wait(timeout=10)
    killed = running[0]["id"]

    for sku, units in SOLD.items():
        response = clients["webstore"].post("/_sandbox/purchase", json={"sku": sku, "quantity": units})
        assert response.status_code == 201, response.text

    third = start(3)
    finished = wait_for(
        lambda: [
            r for r in runs(daemon) if r["kind"] == "reconcile" and r["id"] > killed and r["finished_at"]
        ],
        timeout=60,
        what=f"the third start's reconcile to finish\n{third.output()}",
    )
    outlet = {row["sku"]: row["quantity"] for row in clients["outlet"].get("/_sandbox/listings").json()}
    assert third.stop() == 0

    reconcile = finished[-1]
    ledger = sqlite3.connect(tmp / "data" / "syncd.db")
    ledger.row_factory = sqlite3.Row
    with ledger:
        by_id = {row["id"]: row for row in ledger.execute("SELECT * FROM run")}
        start_up = [row for row in by_id.values() if row["kind"] == "start-up" and row["id"] > killed]
        lines = list(ledger.execute("SELECT sku, quantity, created_at FROM order_line"))
        pushes = list(
            ledger.execute(
                "SELECT sku, target, reason, updated_at FROM push WHERE channel = 'outlet' AND state = 'sent'"
            )
        )
    ledger.close()

    assert by_id[killed]["error"].startswith("interrupted:")
    [poll] = start_up
    assert poll["finished_at"] <= by_id[reconcile["id"]]["started_at"]  # the poll came first
    assert {row["sku"]: row["quantity"] for row in lines} == SOLD
    assert all(row["created_at"] <= poll["finished_at"] for row in lines)
    # The outlet was lowered by the fast path (not by the reconcile's plan) before the reconcile ended.
    # (At most what is left: the daemon may hold back a unit or so for sales on their way.)
    early = {
        row["sku"]: row["target"]
        for row in pushes
        if row["reason"] == "fast-path" and row["updated_at"] < by_id[reconcile["id"]]["finished_at"]
    }
    assert set(early) == set(SOLD)
    assert all(early[sku] <= 8 - units and outlet[sku] <= 8 - units for sku, units in SOLD.items())
