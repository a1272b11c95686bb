"""SIGKILL at the worst moments: the allocation accounts in the ledger carry the daemon's safety
across the restart, so no channel can sell a unit another can also sell."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.allocation import WriteState
from syncd.demo import DEMO_ENV
from syncd.store import Store
from tests.daemon.test_e2e import Proc, free_port, wait_for

pytestmark = pytest.mark.slow

SHOPS = ("main", "outlet")


class Stack:
    """The mock ERP and two web stores as sandbox processes, and the daemon, restartable."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.env = {**os.environ, **DEMO_ENV, "SYNCD_DEMO_WC_WEBHOOK_SECRET": "crash-webhook-secret-1"}
        self.ports = {name: free_port() for name in ("erp", *SHOPS, "daemon")}
        self.url = f"sqlite:///{tmp_path / 'data' / 'syncd.db'}"
        self.procs: list[Proc] = []
        self.daemon: Proc | None = None
        self.runs = 0
        daemon_url = f"http://127.0.0.1:{self.ports['daemon']}"
        erp_dir = str(tmp_path / "erp")
        self.procs.append(
            Proc(
                ["sandbox", "mock_erp", "--port", str(self.ports["erp"]), "--data-dir", erp_dir],
                tmp_path / "erp.log",
                self.env,
            )
        )
        for shop in SHOPS:
            args = [
                "sandbox",
                "woocommerce",
                "--port",
                str(self.ports[shop]),
                "--webhook-url",
                f"{daemon_url}/webhooks/{shop}",
            ]
            self.procs.append(Proc(args, tmp_path / f"{shop}.log", self.env))
        self.erp = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['erp']}", timeout=10)
        self.shops = {
            s: httpx.Client(base_url=f"http://127.0.0.1:{self.ports[s]}", timeout=30) for s in SHOPS
        }
        self.api = httpx.Client(base_url=daemon_url, timeout=10)
        wait_for(lambda: self.erp.get("/_sandbox/stock").status_code == 200, what="ERP sandbox")
        for client in self.shops.values():
            wait_for(lambda c=client: c.get("/_sandbox/listings").status_code == 200, what="shop sandbox")
        channels = "".join(
            f"""
  - name: {shop}
    type: woocommerce
    base_url: "http://127.0.0.1:{self.ports[shop]}"
    consumer_key: "${{SYNCD_DEMO_WC_KEY}}"
    consumer_secret: "${{SYNCD_DEMO_WC_SECRET}}"
    webhook_secret: "${{SYNCD_DEMO_WC_WEBHOOK_SECRET}}"
    timeout: 30s"""
            for shop in SHOPS
        )
        self.config = tmp_path / "syncd.yaml"
        # No stock section: the shipped defaults.
        self.config.write_text(
            f"""
database_url: {self.url}
server: {{host: 127.0.0.1, port: {self.ports["daemon"]}}}
schedule: {{reconcile_interval: 1h, order_poll_interval: 2s, erp_poll_interval: 1h, jitter: 0s}}
logging: {{format: json, level: debug}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:{self.ports["erp"]}", api_key: "${{SYNCD_DEMO_ERP_KEY}}"}}
channels:{channels}
"""
        )

    def seed(self, erp: dict[str, int], shown: dict[str, int]) -> None:
        self.erp.post("/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in erp.items()]})
        for client in self.shops.values():
            client.post(
                "/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in shown.items()]}
            )

    def start(self) -> None:
        self.runs += 1
        self.daemon = Proc(
            ["run", "--config", str(self.config)], self.tmp / f"daemon-{self.runs}.log", self.env
        )
        self.procs.append(self.daemon)
        wait_for(self.reconciled, timeout=60, what="the first reconcile")

    def reconciled(self) -> bool:
        runs = self.api.get("/api/status").json().get("runs", [])
        return any(r["kind"] == "reconcile" and r["finished_at"] for r in runs)

    def kill(self) -> None:
        assert self.daemon is not None
        self.daemon.popen.send_signal(signal.SIGKILL)
        self.daemon.popen.wait(timeout=10)

    def shown(self, sku: str) -> dict[str, int]:
        return {
            shop: next(r["quantity"] for r in client.get("/_sandbox/listings").json() if r["sku"] == sku)
            for shop, client in self.shops.items()
        }

    def faults(self, shop: str, **faults: Any) -> None:
        self.shops[shop].post("/_sandbox/faults", json=faults).raise_for_status()

    def buy(self, shop: str, sku: str) -> bool:
        return (
            self.shops[shop].post("/_sandbox/purchase", json={"sku": sku, "quantity": 1}).status_code == 201
        )

    def close(self) -> None:
        for client in (self.erp, self.api, *self.shops.values()):
            client.close()
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    world = Stack(tmp_path)
    try:
        yield world
    finally:
        world.close()


def buy_everything_at_once(stack: Stack, sku: str, attempts: int) -> int:
    """Both shops try to buy ``attempts`` units each at the same moment; the units sold."""
    sold = [0]
    lock = threading.Lock()

    def shopper(shop: str) -> None:
        for _ in range(attempts):
            if stack.buy(shop, sku):
                with lock:
                    sold[0] += 1

    threads = [threading.Thread(target=shopper, args=(shop,)) for shop in SHOPS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sold[0]


def test_killed_between_a_write_sent_and_its_answer(stack: Stack) -> None:
    """The daemon is SIGKILLed while a write of the last units is on its way to a slow shop. The
    ledger still holds that write as exposed; after the restart both shops together never sell
    more units than exist."""
    stack.seed({"A": 4, "B": 30}, {"A": 0, "B": 0})
    stack.faults("outlet", latency_ms=4000)
    stack.runs += 1
    stack.daemon = Proc(["run", "--config", str(stack.config)], stack.tmp / "daemon-1.log", stack.env)
    stack.procs.append(stack.daemon)
    wait_for(lambda: stack.shown("A")["main"] > 0, timeout=60, what="main's write of A")
    time.sleep(0.5)  # outlet's write is on its way (4 s of latency)
    stack.kill()

    store = Store(stack.url)
    try:
        accounts = store.load_accounts(["A"])["A"]
        on_the_wire = [w for a in accounts.listings.values() for w in a.writes]
        assert on_the_wire and all(w.state is WriteState.SENT for w in on_the_wire)
    finally:
        store.close()

    stack.faults("outlet", latency_ms=0)
    time.sleep(4)  # the request the killed daemon left behind has landed, or never will
    stack.start()
    shown = stack.shown("A")
    assert sum(shown.values()) <= 4, shown
    assert buy_everything_at_once(stack, "A", attempts=4) <= 4


def test_killed_between_a_sale_and_its_pushes(stack: Stack) -> None:
    """A sale is recorded (its webhook answered) and the daemon is SIGKILLed before the other shop
    is lowered. After the restart the sale is counted once, the other shop comes down, and the
    shops never sell more than exists."""
    stack.seed({"A": 3, "B": 30}, {"A": 0, "B": 0})
    stack.start()
    wait_for(lambda: stack.shown("B") == {"main": 30, "outlet": 30}, timeout=30, what="B everywhere")
    stack.faults("outlet", latency_ms=3000)
    assert stack.buy("main", "B")
    assert stack.buy("main", "A") or stack.buy("outlet", "A")

    def recorded() -> bool:
        store = Store(stack.url)
        try:
            return len(store.lines_in_state("reserved")) + len(store.lines_in_state("posted")) >= 2
        finally:
            store.close()

    wait_for(recorded, timeout=30, what="the sales in the ledger")
    stack.kill()
    stack.faults("outlet", latency_ms=0)
    time.sleep(3.5)
    stack.start()
    wait_for(lambda: stack.shown("B")["outlet"] == 29, timeout=30, what="outlet lowered after the restart")
    assert sum(stack.shown("A").values()) <= 2
    assert buy_everything_at_once(stack, "A", attempts=3) <= 2

    store = Store(stack.url)
    try:
        lines = [
            *store.lines_in_state("reserved"),
            *store.lines_in_state("posted"),
            *store.lines_in_state("settled"),
        ]
        assert sorted(line.sku for line in lines if line.channel == "main" and line.sku == "B") == ["B"]
    finally:
        store.close()
