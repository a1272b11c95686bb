"""``syncd demo --erp bling``: the Bling sandbox takes the mock ERP's place, syncd is authorised at
start, and the first reconcile reads every SKU from it and finishes without errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.daemon.test_e2e import free_port, wait_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
# The demo sets api.token, which guards /api/status.
DEMO_AUTH = {"Authorization": "Bearer demo-api-token-0123456789"}


def test_demo_runs_on_the_bling_sandbox(tmp_path: Path) -> None:
    """The demo on Bling: /health answers, the first reconcile reads the 40 SKUs and the ERP is healthy."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    daemon_port, erp_port = free_port(), free_port()
    config["server"]["port"] = daemon_port
    config["database_url"] = f"sqlite:///{tmp_path / 'demo' / 'syncd.db'}"
    config["erp"]["base_url"] = f"http://127.0.0.1:{erp_port}"
    for channel in config["channels"]:
        channel["base_url"] = f"http://127.0.0.1:{free_port()}"
        if "auth_base_url" in channel:
            channel["auth_base_url"] = channel["base_url"]
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.cli",
            "demo",
            "--config",
            str(path),
            "--skus",
            "40",
            "--rate",
            "0",
            "--erp",
            "bling",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_DEMO_")},
        cwd=REPO,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{daemon_port}", timeout=10, headers=DEMO_AUTH) as daemon:
            wait_for(lambda: daemon.get("/health").status_code == 200, timeout=60, what="/health")

            def reconciled() -> bool:
                runs = daemon.get("/api/status").json()["runs"]
                return any(r["kind"] == "reconcile" and r["finished_at"] for r in runs)

            wait_for(reconciled, timeout=120, what="the first reconcile")
            status = daemon.get("/api/status").json()
        first = [r for r in status["runs"] if r["kind"] == "reconcile"][-1]
        assert first["error"] is None and first["counts"]["skus_read"] == 40, first
        erp = next(c for c in status["connectors"] if c["kind"] == "erp")
        assert erp["healthy"], erp
        stock = httpx.get(f"http://127.0.0.1:{erp_port}/_sandbox/stats", timeout=10).json()
        assert stock["calls"]["GET /estoques/saldos"] >= 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
