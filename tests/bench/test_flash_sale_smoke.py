"""Smoke test of the flash-sale benchmark: the quick run completes and reports every metric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METRICS = {
    "units_sold",
    "oversold_units",
    "undersold_units",
    "hot_sell_through",
    "propagation_p50_seconds",
    "propagation_p95_seconds",
    "propagation_p99_seconds",
    "api_calls",
    "process_cpu_seconds",
    "process_peak_rss_mb",
}


@pytest.mark.slow
def test_quick_run_reports_every_metric(tmp_path: Path) -> None:
    """`flash_sale.py --quick --modes syncd` exits 0 and writes each metric per run, its spread and the table."""
    out = tmp_path / "flash_sale.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/flash_sale.py",
            "--quick",
            "--modes",
            "syncd",
            "--settle",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    (run,) = results["runs"]["syncd"]
    assert METRICS <= set(run)
    assert {"oversold_units", "undersold_units", "units_sold"} <= set(results["summary"]["syncd"])
    assert set(results["summary"]["syncd"]["oversold_units"]) == {"min", "median", "max"}
    assert "| **Oversold units** |" in results["table_markdown"]
    assert results["parameters"]["attempts"] == 300
