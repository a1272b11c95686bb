"""The report commands through the CLI, on a ledger filled through the Store's public methods:
drift, runs, explain and outbox, as tables and as JSON, and their errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Listing, OrderLine
from syncd.cli import main
from syncd.core import Drift, DriftCause, PlannedPush
from syncd.store import HistoryEvent, Store

NOW = datetime.now(UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose ledger holds two SKUs, drift, runs, an order, history and an outbox."""
    db = tmp_path / "syncd.db"
    path = tmp_path / "syncd.yaml"
    path.write_text(
        f"""
database_url: sqlite:///{db}
stock: {{safety_stock: 1}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:9", api_key: k}}
channels:
  - {{name: web, type: woocommerce, base_url: "http://127.0.0.1:9", consumer_key: a, consumer_secret: b,
      policy: {{buffer: 2}}}}
"""
    )
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.apply_stock([("A-1", 10), ("B-2", 4)], NOW, NOW)
    store.sync_listings("web", [Listing("A-1", "11", 9), Listing("B-2", "12", 3)], NOW)
    store.record_pushed("web", {"A-1": 7}, NOW - timedelta(minutes=5))
    store.ingest_lines([OrderLine("web", "1001", "1", "A-1", 2, "open", NOW - timedelta(minutes=1))], NOW)
    store.record_drift(
        [Drift("web", "A-1", 9, 6, DriftCause.MISSED_ORDER)], {("web", "A-1"): 6}, NOW - timedelta(hours=30)
    )
    store.record_drift(
        [
            Drift("web", "A-1", 7, 9, DriftCause.MANUAL_EDIT),
            Drift("web", "B-2", 3, 5, DriftCause.MANUAL_EDIT),
        ],
        {("web", "A-1"): 5},
        NOW - timedelta(hours=1),
    )
    done = store.start_run("reconcile", NOW - timedelta(minutes=10))
    store.finish_run(done, NOW - timedelta(minutes=10) + timedelta(seconds=4), {"pushes_sent": 3})
    store.start_run("orders", NOW - timedelta(seconds=20))
    store.record_history(
        [
            HistoryEvent(
                NOW - timedelta(minutes=5),
                "A-1",
                "web",
                "decision",
                7,
                "",
                {
                    "reason": "reconcile",
                    "on_hand": 10,
                    "reserved": 0,
                    "safety_stock": 1,
                    "ats": 9,
                    "low_stock": False,
                    "policy": {"buffer": 2},
                    "events": [],
                },
            ),
            HistoryEvent(NOW - timedelta(minutes=5), "A-1", "web", "push", 7, "sent", {"read": 9}),
        ]
    )
    store.enqueue_pushes(
        [PlannedPush("web", "A-1", 5, 7, "sale"), PlannedPush("web", "B-2", 1, 3, "sale")], NOW
    )
    store.fail_push(store.pending_pushes()[1].id, "HTTP 500 from the shop", NOW, give_up=True)
    store.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_drift_groups_the_last_24_hours_by_cause(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default window leaves out the 30-hour-old row; what was done is spelled out."""
    code, out, _ = run(capsys, "drift", "-c", str(config))
    assert code == 0 and "2 rows" in out
    assert "manual_edit" in out and "missed_order" not in out
    assert "set to 5" in out and "already right: left at 5 (its target)" in out


def test_drift_as_json_with_a_window_and_a_sku(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since 2d reaches the older row, --sku keeps one SKU, --json is machine-readable."""
    code, out, _ = run(capsys, "drift", "-c", str(config), "--since", "2d", "--sku", "A-1", "--json")
    data = json.loads(out)
    assert code == 0 and {g["cause"] for g in data["groups"]} == {"missed_order", "manual_edit"}
    assert [r["sku"] for r in data["rows"]] == ["A-1", "A-1"]


def test_a_bad_window_is_a_usage_error_naming_it(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since with no duration in it exits 2 and says what it expected."""
    with pytest.raises(SystemExit) as exit_info:
        main(["drift", "-c", str(config), "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday' is not a duration" in capsys.readouterr().err


def test_runs_show_durations_and_a_run_in_progress(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run shows how long it took and its counts; an unfinished one is in progress."""
    code, out, _ = run(capsys, "runs", "-c", str(config))
    assert code == 0 and "4.00 s" in out and "pushes_sent 3" in out and "in progress" in out
    data = json.loads(run(capsys, "runs", "-c", str(config), "--json")[1])
    assert [(r["kind"], r["in_progress"]) for r in data] == [("orders", True), ("reconcile", False)]


def test_explain_says_why_the_channel_shows_what_it_shows(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stock, reservations, rules, the decision with its figures, last push and read, the queue."""
    code, out, _ = run(capsys, "explain", "A-1", "-c", str(config))
    assert code == 0
    assert "ERP on hand 10" in out and "reserved 2" in out and "-> 7 available to sell" in out
    assert "web order 1001: 2 (reserved)" in out
    assert "web shows 5" in out and "buffer 2" in out  # set to 7, sold 2 since
    assert "why: decided web = 7: on hand 10 - reserved 0 - safety 1 = 9 available; rules buffer 2" in out
    assert "last push: push sent: web set to 7 (read 9 just before)" in out
    assert "last read: 9" in out and "queued: set to 5 (pending, sale)" in out
    data = json.loads(run(capsys, "explain", "A-1", "-c", str(config), "--json")[1])
    assert data["ats"] == 7 and data["channels"][0]["queued"]["target"] == 5


def test_explain_an_unknown_sku_fails_with_near_matches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SKU the ledger does not know exits 1, naming it and the SKUs that look like it."""
    code, _, err = run(capsys, "explain", "a-", "-c", str(config))
    assert code == 1 and "no SKU named 'a-'" in err and "similar: A-1" in err


def test_outbox_lists_what_waits_and_why(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pending pushes and given-up ones, with direction, reason and the last error."""
    code, out, _ = run(capsys, "outbox", "-c", str(config))
    assert code == 0 and "1 pushes waiting, 1 given up" in out
    assert "given up after 1 attempts: HTTP 500 from the shop" in out and "queued: the channel" in out
    data = json.loads(run(capsys, "outbox", "-c", str(config), "--json")[1])
    assert [(r["sku"], r["direction"], r["state"]) for r in data] == [
        ("A-1", "decrease", "pending"),
        ("B-2", "decrease", "failed"),
    ]


def test_a_missing_ledger_is_named_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pointing at a ledger file that does not exist exits 1 naming it, and creates nothing."""
    path = tmp_path / "syncd.yaml"
    db = tmp_path / "none" / "syncd.db"
    path.write_text(
        f"""
database_url: sqlite:///{db}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:9", api_key: k}}
channels: [{{name: web, type: woocommerce, base_url: "http://127.0.0.1:9", consumer_key: a, consumer_secret: b}}]
"""
    )
    code, _, err = run(capsys, "runs", "-c", str(path))
    assert code == 1 and str(db) in err and not db.exists()
