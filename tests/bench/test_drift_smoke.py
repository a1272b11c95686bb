"""Smoke test of the drift benchmark: the quick run completes, scores every cause and counts the
manual edit it injected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAUSES = {"manual_edit", "missed_order", "missed_cancellation", "unknown_baseline"}


@pytest.mark.slow
def test_quick_run_scores_the_report_and_counts_the_injected_edit(tmp_path: Path) -> None:
    """`drift.py --quick` exits 0, writes precision and recall per cause, and journals and scores its edit."""
    out = tmp_path / "drift.json"
    done = subprocess.run(
        [sys.executable, "bench/drift.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert CAUSES <= set(results["precision"])
    assert {"manual_edit", "missed_order", "missed_cancellation"} <= set(results["recall"])
    for row in results["precision"].values():
        assert 0 <= row["true"] <= row["reported"]
    assert results["reconciles"] >= 2
    assert results["parameters"]["time_scale"] == 30.0
    assert results["parameters"]["schedule"]["reconcile_interval"] == "10s"
    # The injected edit was journaled by the web sandbox and judged by the scoring.
    injected = results["injected_edit"]
    [verdict] = injected["verdicts"]
    assert (verdict["channel"], verdict["sku"]) == ("web", injected["sku"])
    assert verdict["status"] in ("found", "missed")
    assert results["changes"]["manual_edit"] >= 1
    assert results["recall"]["manual_edit"]["real"] >= 1
    assert "| `manual_edit` |" in results["table_markdown"]
    assert "| `manual_edit` |" in done.stdout
