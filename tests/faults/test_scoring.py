"""How bench/faults.py scores a run: placed orders against the ledger, the ERP and the channels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from faults import BY_NAME, parse_args, summarise, table
from harness import Rig


def _rig(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path, seed=1)
    rig.stock = {"A": 2, "B": 5}
    rig.hot = ["A"]
    return rig


def _seen(
    lines: list[tuple[str, str, int, str]], movements: list[tuple[str, int]], shown: int
) -> dict[str, Any]:
    return {
        "lines": [
            {"channel": c, "order_id": o, "line_key": "1", "sku": "A", "quantity": q, "state": s}
            for c, o, q, s in lines
        ],
        "movements": [{"reference": ref, "delta": d, "reason": "sale"} for ref, d in movements],
        "on_hand": {"A": 0, "B": 5},
        "shown": {name: {"A": shown, "B": 5} for name in ("tiktok", "shopify", "web")},
    }


CASES = [
    # (what happened, key, expected)
    (
        "every order once",
        _seen(
            [("tiktok", "1", 1, "posted"), ("web", "2", 1, "posted")], [("tiktok:1", -1), ("web:2", -1)], 0
        ),
        {"counted_once": 2, "erp_movements_once": 2},
    ),
    (
        "a lost order",
        _seen([("tiktok", "1", 1, "posted")], [("tiktok:1", -1)], 0),
        {"counted_once": 1, "lost": 1, "erp_movements_missing": 1},
    ),
    (
        "an order counted twice",
        _seen(
            [("tiktok", "1", 1, "posted"), ("tiktok", "1", 1, "reserved"), ("web", "2", 1, "posted")],
            [("tiktok:1", -1), ("web:2", -1)],
            0,
        ),
        {"counted_once": 1, "counted_twice": 1},
    ),
    (
        "a released line does not count",
        _seen(
            [("tiktok", "1", 1, "released"), ("web", "2", 1, "posted")], [("tiktok:1", -1), ("web:2", -1)], 0
        ),
        {"lost": 1},
    ),
    (
        "a movement posted twice",
        _seen(
            [("tiktok", "1", 1, "posted"), ("web", "2", 1, "posted")],
            [("tiktok:1", -1), ("tiktok:1", -1), ("web:2", -1)],
            0,
        ),
        {"erp_movements_twice": 1, "erp_movements_once": 1},
    ),
    (
        "Shopify's gid prefix is ignored",
        _seen(
            [("tiktok", "gid://shopify/Order/1", 1, "posted"), ("web", "2", 1, "posted")],
            [("tiktok:gid://shopify/Order/1", -1), ("web:2", -1)],
            0,
        ),
        {"counted_once": 2, "erp_movements_once": 2},
    ),
    (
        "units shown that are gone",
        _seen(
            [("tiktok", "1", 1, "posted"), ("web", "2", 1, "posted")], [("tiktok:1", -1), ("web:2", -1)], 1
        ),
        {"final_drift": 3, "phantom_units": 3},
    ),
]


@pytest.mark.parametrize(("seen", "expected"), [pytest.param(s, e, id=i) for i, s, e in CASES])
def test_score_counts_each_order_against_ledger_and_erp(
    tmp_path: Path, seen: dict[str, Any], expected: dict[str, int]
) -> None:
    """Two orders of SKU A placed: the score says how many the ledger and the ERP hold exactly once."""
    rig = _rig(tmp_path)
    rig.sales.placed = [("tiktok", "1", "A"), ("web", "2", "A")]
    result = rig.score(seen)
    assert result["placed"] == 2
    assert {k: result[k] for k in expected} == expected
    assert result["oversold"] == 0


def test_score_counts_units_sold_beyond_stock(tmp_path: Path) -> None:
    """Three units of a SKU that had two: one oversold unit, whatever the ledger says."""
    rig = _rig(tmp_path)
    rig.sales.placed = [("tiktok", "1", "A"), ("web", "2", "A"), ("shopify", "3", "A")]
    seen = _seen(
        [("tiktok", "1", 1, "posted"), ("web", "2", 1, "posted"), ("shopify", "3", 1, "posted")],
        [("tiktok:1", -1), ("web:2", -1), ("shopify:3", -1)],
        0,
    )
    assert rig.score(seen)["oversold"] == 1


def test_table_shows_losses_in_bold_and_skips_with_their_reason() -> None:
    """A row with a lost order shows the count in bold; a skipped fault says why."""
    run = {
        "seed": 3,
        "purchases_per_second": 5.0,
        "placed": 10,
        "counted_once": 9,
        "erp_movements_once": 10,
        "oversold": 0,
        "final_drift": 2,
        "time_to_recover": None,
    }
    run |= {
        k: 0
        for k in (
            "lost",
            "counted_twice",
            "erp_movements_missing",
            "erp_movements_twice",
            "phantom_units",
            "erp_off_units",
        )
    }
    rows = [summarise(BY_NAME["kill-random"], [run], None), summarise(BY_NAME["disk-full"], [], "no tmpfs")]
    text = table(rows)
    assert "| 1 | 3 | 10 | **9** | all | 0 | **2** | -; 1 of 1 not settled |" in text
    assert "skipped: no tmpfs" in text


def test_unknown_fault_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """--faults with a name the benchmark does not know exits 2 naming it and the known ones."""
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--faults", "kill-random,meteor"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'meteor'" in err and "disk-full" in err
