"""End to end: the sandboxes and the daemon as real processes, talked to over HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.demo import DEMO_ENV

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self.log = log
        self.handle = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", *args], stdout=self.handle, stderr=subprocess.STDOUT, env=env
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.handle.close()
        return self.popen.returncode


def sandboxes(
    tmp_path: Path, env: dict[str, str], erp: int, shops: dict[str, tuple[int, str | None]]
) -> list[Proc]:
    """The mock ERP on port ``erp`` and a WooCommerce sandbox per name in ``shops`` (its port, and
    the URL it sends its webhooks to, if any), each logging to ``<name>.log``."""
    procs = [
        Proc(
            ["sandbox", "mock_erp", "--port", str(erp), "--data-dir", str(tmp_path / "erp")],
            tmp_path / "erp.log",
            env,
        )
    ]
    for name, (port, webhooks) in shops.items():
        hooks = ["--webhook-url", webhooks] if webhooks else []
        procs.append(
            Proc(["sandbox", "woocommerce", "--port", str(port), *hooks], tmp_path / f"{name}.log", env)
        )
    return procs


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    env = {**os.environ, **DEMO_ENV, "SYNCD_DEMO_WC_WEBHOOK_SECRET": "e2e-webhook-secret-77"}
    ports = {"erp": free_port(), "shop": free_port(), "daemon": free_port()}
    daemon_url = f"http://127.0.0.1:{ports['daemon']}"
    procs = sandboxes(
        tmp_path, env, ports["erp"], {"shop": (ports["shop"], f"{daemon_url}/webhooks/webstore")}
    )
    erp = httpx.Client(base_url=f"http://127.0.0.1:{ports['erp']}", timeout=10)
    shop = httpx.Client(base_url=f"http://127.0.0.1:{ports['shop']}", timeout=10)
    daemon_client = httpx.Client(base_url=daemon_url, timeout=10)
    try:
        wait_for(lambda: erp.get("/_sandbox/stock").status_code == 200, what="ERP sandbox")
        wait_for(lambda: shop.get("/_sandbox/listings").status_code == 200, what="shop sandbox")
        stock = {f"SKU-{i:03d}": (i * 7) % 23 for i in range(120)}
        erp.post(
            "/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in stock.items()]}
        ).raise_for_status()
        shop.post(
            "/_sandbox/seed",
            json={"items": [{"sku": s, "quantity": 50} for s in stock] + [{"sku": "GHOST", "quantity": 4}]},
        ).raise_for_status()
        config = tmp_path / "syncd.yaml"
        config.write_text(
            f"""
database_url: sqlite:///{tmp_path / "data" / "syncd.db"}
server: {{host: 127.0.0.1, port: {ports["daemon"]}}}
schedule: {{reconcile_interval: 1h, order_poll_interval: 1h, erp_poll_interval: 1h, jitter: 0s}}
stock: {{safety_stock: 2}}
logging: {{format: json}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:{ports["erp"]}", api_key: "${{SYNCD_DEMO_ERP_KEY}}"}}
channels:
  - name: webstore
    type: woocommerce
    base_url: "http://127.0.0.1:{ports["shop"]}"
    consumer_key: "${{SYNCD_DEMO_WC_KEY}}"
    consumer_secret: "${{SYNCD_DEMO_WC_SECRET}}"
    webhook_secret: "${{SYNCD_DEMO_WC_WEBHOOK_SECRET}}"
"""
        )
        daemon = Proc(["run", "--config", str(config)], tmp_path / "daemon.log", env)
        procs.append(daemon)
        yield {"erp": erp, "shop": shop, "daemon": daemon_client, "proc": daemon, "stock": stock, "env": env}
    finally:
        for client in (erp, shop, daemon_client):
            client.close()
        for proc in reversed(procs):
            proc.stop()


def test_daemon_reconciles_serves_status_and_takes_webhooks(stack: dict[str, object]) -> None:
    """Started for real: /health answers, the first reconcile sets every listing to its target,
    /ready, /metrics, /api/status and /status report it, and a sale arrives by signed webhook."""
    daemon: httpx.Client = stack["daemon"]  # type: ignore[assignment]
    shop: httpx.Client = stack["shop"]  # type: ignore[assignment]
    erp: httpx.Client = stack["erp"]  # type: ignore[assignment]
    proc: Proc = stack["proc"]  # type: ignore[assignment]
    stock: dict[str, int] = stack["stock"]  # type: ignore[assignment]

    assert wait_for(lambda: daemon.get("/health").status_code == 200, what=f"/health\n{proc.output()}")
    assert daemon.get("/health").json() == {"status": "ok"}
    # The start-up order poll runs first; the reconcile follows it.
    status = wait_for(
        lambda: [
            r
            for r in daemon.get("/api/status").json().get("runs", [])
            if r["finished_at"] and r["kind"] == "reconcile"
        ],
        what="first reconcile",
    )
    assert status[0]["error"] is None
    listings = {row["sku"]: row["quantity"] for row in shop.get("/_sandbox/listings").json()}
    assert listings == {**{s: max(0, q - 2) for s, q in stock.items()}, "GHOST": 4}
    assert daemon.get("/ready").status_code == 200

    metrics = daemon.get("/metrics").text
    assert 'syncd_cycles_total{kind="reconcile",outcome="ok"} 1.0' in metrics
    assert "syncd_ledger_rows" in metrics

    # A purchase on the web store reaches the daemon by signed webhook and is sent to the ERP.
    hot = max(stock, key=lambda s: stock[s])
    assert shop.post("/_sandbox/purchase", json={"sku": hot, "quantity": 2}).status_code == 201
    wait_for(
        lambda: {r["sku"]: r["on_hand"] for r in erp.get("/_sandbox/stock").json()}[hot] == stock[hot] - 2,
        what="the sale to reach the ERP",
    )
    page = daemon.get("/status")
    assert page.status_code == 200 and "webstore" in page.text and "Last runs" in page.text

    assert proc.stop() == 0
    lines = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"daemon.started", "cycle.finished", "order.ingested", "daemon.stopped"} <= events
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]
    for name in (
        "SYNCD_DEMO_ERP_KEY",
        "SYNCD_DEMO_WC_KEY",
        "SYNCD_DEMO_WC_SECRET",
        "SYNCD_DEMO_WC_WEBHOOK_SECRET",
    ):
        assert env[name] not in proc.output()


def test_bad_webhooks_are_refused(stack: dict[str, object]) -> None:
    """Wrong signature: 401; malformed body: 400; unknown channel: 404; the WooCommerce ping: 200."""
    daemon: httpx.Client = stack["daemon"]  # type: ignore[assignment]
    wait_for(lambda: daemon.get("/health").status_code == 200, what="/health")
    headers = {
        "X-WC-Webhook-Signature": "AAAA",
        "X-WC-Webhook-Topic": "order.created",
        "Content-Type": "application/json",
    }
    assert daemon.post("/webhooks/webstore", content=b'{"id": 1}', headers=headers).status_code == 401
    assert daemon.post("/webhooks/nowhere", content=b"{}").status_code == 404
    ping = daemon.post(
        "/webhooks/webstore",
        content=b"webhook_id=12",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200
    import base64
    import hashlib
    import hmac

    body = b'{"id": "not-an-order"'
    signature = base64.b64encode(hmac.new(b"e2e-webhook-secret-77", body, hashlib.sha256).digest()).decode()
    bad = daemon.post(
        "/webhooks/webstore", content=body, headers={**headers, "X-WC-Webhook-Signature": signature}
    )
    assert bad.status_code == 400


def test_bad_config_refuses_to_start(tmp_path: Path) -> None:
    """`syncd run` with a bad config exits 2 and names the key."""
    config = tmp_path / "bad.yaml"
    config.write_text("erp: {type: sap}\nchannels: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "erp" in proc.stderr and "sap" in proc.stderr and str(config) in proc.stderr


def test_unwritable_database_is_a_clear_error(tmp_path: Path) -> None:
    """A database path that cannot be written stops the daemon with a message naming it (exit 1)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    config = tmp_path / "syncd.yaml"
    config.write_text(
        f"""
database_url: sqlite:///{blocker}/syncd.db
erp: {{type: mock_erp, base_url: "http://127.0.0.1:9", api_key: k}}
channels: [{{name: web, type: woocommerce, base_url: "http://127.0.0.1:9", consumer_key: a, consumer_secret: b}}]
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "not-a-dir" in proc.stderr
