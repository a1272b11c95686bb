"""The operator's view as data: drift wording and grouping, oversell risk, runs, chart buckets,
outbox reasons, and a SKU's level series (table tests and properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.accounts import KitShare
from syncd.status.channels import channel_health, outbox
from syncd.status.drift import correction_label, drift_summary
from syncd.status.overview import listing_label
from syncd.status.runs import activity, run_rows
from syncd.status.sku_report import level_series, sku_report
from syncd.status.stock import oversell_risk, refused_sales, sold_by_sku, sold_out
from syncd.store import DriftRow, HistoryEvent, ListingRow, PushRow, RunRow, SkuRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def listing(
    channel: str, sku: str, pushed: int | None, sold: int = 0, observed: int | None = None
) -> ListingRow:
    return ListingRow(
        channel, sku, "ref", pushed, T0 if pushed is not None else None, sold, observed, T0, "ok", ""
    )


def push(i: int, channel: str, sku: str, target: int, compare: int | None, **kw: object) -> PushRow:
    fields = {"reason": "sale", "state": "pending", "attempts": 0, "created_at": T0, "last_error": ""} | kw
    return PushRow(i, channel, sku, target, compare, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("correction", "observed", "label"),
    [
        (None, 4, "already right: left at 4 (its target)"),
        (4, 4, "kept at 4"),
        (6, 4, "set to 6"),
        (0, 4, "set to 0"),
    ],
)
def test_a_drift_correction_is_spelled_out(correction: int | None, observed: int, label: str) -> None:
    """No correction reads as "already right", never as a dash; a push reads "set to N"."""
    assert correction_label(DriftRow(T0, "shop", "A", 5, observed, "manual_edit", correction)) == label


def test_drift_is_grouped_by_cause_with_what_was_done() -> None:
    """Each cause counts its rows, listings, units off, corrections and listings already right."""
    rows = [
        DriftRow(T0, "shop", "A", 5, 3, "missed_order", 3),
        DriftRow(T0 + timedelta(minutes=5), "shop", "A", 3, 1, "missed_order", None),
        DriftRow(T0, "web", "B", 2, 9, "manual_edit", 2),
    ]
    groups = {g["cause"]: g for g in drift_summary(rows)}
    missed = groups["missed_order"]
    assert (missed["count"], missed["listings"], missed["units_off"]) == (2, 1, 4)
    assert (missed["corrected"], missed["already_right"]) == (0, 2)
    assert missed["last_at"] == (T0 + timedelta(minutes=5)).isoformat()
    assert missed["latest"][0]["done"].startswith("already right")
    assert (
        groups["manual_edit"]["corrected"] == 1 and groups["manual_edit"]["latest"][0]["done"] == "set to 2"
    )


def test_a_run_in_progress_is_shown_as_such_with_its_age() -> None:
    """A finished run has its duration and non-zero counts; an unfinished one is in progress."""
    done = RunRow(1, "reconcile", T0, T0 + timedelta(seconds=2.5), {"pushes_sent": 3, "drift": 0}, None)
    running = RunRow(2, "orders", T0 + timedelta(seconds=10), None, {}, None)
    first, second = run_rows([done, running], T0 + timedelta(seconds=12))
    assert (first["duration_seconds"], first["in_progress"], first["counts"]) == (
        2.5,
        False,
        {"pushes_sent": 3},
    )
    assert (second["in_progress"], second["duration_seconds"]) == (True, 2.0)


def test_oversell_risk_compares_what_each_channel_shows_now_with_its_part() -> None:
    """A low-stock SKU whose channel still shows more than its part is flagged and listed first."""
    low = [
        {"sku": "A", "ats": 3, "threshold": 5, "targets": {"shop": 2, "web": 1}},
        {"sku": "B", "ats": 2, "threshold": 5, "targets": {"shop": 1, "web": 1}},
    ]
    rows = oversell_risk(
        low,
        {"C": 7},
        {"A": SkuRow("A", 5, T0), "B": SkuRow("B", 3, T0), "C": SkuRow("C", 40, T0)},
        {"A": 2, "B": 1, "C": 3},
        [
            listing("shop", "A", 4, sold=1),  # shows 3, its part is 2
            listing("web", "A", 1),
            listing("shop", "B", 1),
            listing("web", "B", 1),
            listing("shop", "C", 30),
        ],
        [push(1, "shop", "C", 28, 30)],
        {"C": 1},
    )
    # C (hot) is not in low-stock mode: its queued decrease is on its way, within what exists.
    assert [r["sku"] for r in rows] == ["A", "C", "B"]
    a = rows[0]
    assert (a["on_hand"], a["reserved"], a["ats"], a["shown_total"]) == (5, 2, 3, 4)
    assert a["risk"] == "channels show 4 units, 3 available; shop shows 1 more than its part"
    assert [(c["channel"], c["shows"], c["part"], c["over"]) for c in a["channels"]] == [
        ("shop", 3, 2, True),
        ("web", 1, 1, False),
    ]
    assert rows[2]["risk"] is None
    c = rows[1]
    assert c["risk"] is None and c["catching_up"] == "shop lowering 30 to 28"
    assert c["hot"] and not c["low_stock"] and c["ats"] == 36 and c["sold_recently"] == 7
    assert c["channels"][0]["part"] == 28 and c["channels"][0]["queued"] == 28


def test_a_kit_listing_counts_in_units_of_its_component() -> None:
    """A kit of 2 mugs showing 2 kits on `web` exposes 4 mugs: beside `shop`'s 2 mugs, 6 shown of
    the 5 that exist, and the kit listing over its part (2 mugs) is the risk."""
    low = [{"sku": "MUG", "ats": 5, "threshold": 8, "targets": {"shop": 3, "web/GIFT": 2}}]
    rows = oversell_risk(
        low,
        {},
        {"MUG": SkuRow("MUG", 5, T0)},
        {},
        [listing("shop", "MUG", 2), listing("web", "GIFT", 2)],
        [],
        {},
        kits_of=lambda sku: [KitShare("web", "GIFT", 2)] if sku == "MUG" else [],
    )
    [mug] = rows
    assert [(c["channel"], c["shows"], c["part"], c["over"]) for c in mug["channels"]] == [
        ("shop", 2, 3, False),
        ("web/GIFT", 4, 2, True),
    ]
    assert mug["shown_total"] == 6
    assert mug["risk"] == "channels show 6 units, 5 available; web/GIFT shows 2 more than its part"
    assert listing_label(mug["channels"][1]) == "web (kit GIFT, 2 per kit)"
    assert listing_label(mug["channels"][0]) == "shop"


def test_channel_health_reports_lag_and_queued_pushes() -> None:
    """Lag is the age of the last success; pending pushes are counted per channel."""
    connectors = [
        {
            "name": "shop",
            "kind": "channel",
            "type": "woocommerce",
            "healthy": True,
            "needs_human": False,
            "last_success": T0.isoformat(),
            "last_error": None,
        },
        {
            "name": "tt",
            "kind": "channel",
            "type": "tiktok_shop",
            "healthy": False,
            "needs_human": True,
            "last_success": None,
            "last_error": "401",
        },
    ]
    pushes = [
        push(1, "shop", "A", 1, 2, created_at=T0 - timedelta(seconds=30)),
        push(2, "shop", "B", 1, 2, state="failed"),
    ]
    shop, tt = channel_health(connectors, pushes, T0 + timedelta(seconds=42))
    assert (shop["state"], shop["lag_seconds"], shop["pending_pushes"], shop["oldest_pending_seconds"]) == (
        "healthy",
        42.0,
        1,
        72.0,
    )
    assert (tt["state"], tt["lag_seconds"], tt["pending_pushes"]) == ("needs a human", None, 0)


def test_outbox_says_why_each_push_waits() -> None:
    """Given up, retrying, blocked by a failing channel, or simply next in line."""
    health = {"shop": {"healthy": True}, "tt": {"healthy": False, "needs_human": True}}
    rows = outbox(
        [
            push(1, "shop", "A", 0, 3),
            push(2, "shop", "B", 5, 2, attempts=2, last_error="HTTP 503"),
            push(3, "tt", "C", 4, None),
            push(4, "shop", "D", 1, 1, state="failed", attempts=5, last_error="HTTP 500"),
        ],
        health,
        T0 + timedelta(seconds=9),
    )
    assert [(r["direction"], r["waiting_seconds"]) for r in rows][:3] == [
        ("decrease", 9.0),
        ("increase", 9.0),
        ("set", 9.0),
    ]
    assert rows[0]["why"].startswith("queued")
    assert rows[1]["why"] == "retrying after 2 failed attempts: HTTP 503"
    assert rows[2]["why"] == "channel tt is refusing credentials"
    assert rows[3]["why"] == "given up after 5 attempts: HTTP 500"


def test_level_series_follows_reads_writes_and_sales() -> None:
    """A channel's line starts at a read or write and drops with each of its own sales."""
    events = [
        HistoryEvent(T0, "A", "", "on_hand", 10),
        HistoryEvent(T0 + timedelta(seconds=1), "A", "shop", "push", 8, "sent"),
        HistoryEvent(T0 + timedelta(seconds=2), "A", "shop", "order", 3, "o1"),
        HistoryEvent(T0 + timedelta(seconds=3), "A", "shop", "push", 2, "stale"),
        HistoryEvent(T0 + timedelta(seconds=4), "A", "web", "order", 1, "o2"),  # no level known yet
        HistoryEvent(T0 + timedelta(seconds=5), "A", "shop", "cancel", 1, "o1"),
    ]
    series = level_series(events)
    assert [v for _, v in series["on hand"]] == [10]
    assert [v for _, v in series["shop"]] == [8, 5, 6]
    assert "web" not in series


def test_chart_series_come_from_the_counted_slices() -> None:
    """Units sold per slice and pushes (events) per slice; slices with nothing are zeros."""
    counts = {("order", 0): (2, 5), ("push", 0): (3, 3), ("push", 2): (1, 1), ("read", 1): (4, 4)}
    chart = activity(T0, 300.0, counts, T0 + timedelta(minutes=15), 3)
    assert chart["sales"] == [5, 0, 0] and chart["pushes"] == [3, 0, 1]
    assert (chart["start"], chart["bucket_seconds"]) == (T0.isoformat(), 300.0)


@given(
    st.lists(st.tuples(st.sampled_from(["order", "cancel", "read", "push"]), st.integers(0, 20)), max_size=40)
)
def test_a_shown_level_is_never_negative(steps: list[tuple[str, int]]) -> None:
    """However sales, cancellations, reads and writes interleave, the drawn level stays >= 0."""
    events = [
        HistoryEvent(T0 + timedelta(seconds=i), "A", "shop", kind, q, "sent" if kind == "push" else "")
        for i, (kind, q) in enumerate(steps)
    ]
    for points in level_series(events).values():
        assert all(v >= 0 for _, v in points)


def test_sku_report_explains_each_channel() -> None:
    """Per channel: what it shows, the last decision with its figures, the last push and read."""
    events = [
        HistoryEvent(T0, "A", "", "on_hand", 9),
        HistoryEvent(
            T0,
            "A",
            "shop",
            "decision",
            3,
            "",
            {
                "reason": "fast-path",
                "on_hand": 9,
                "reserved": 2,
                "safety_stock": 1,
                "ats": 6,
                "low_stock": True,
                "threshold": 8,
                "split": {"shop": 3, "web": 3},
                "policy": {"share": 100},
                "events": ["live"],
                "unaccounted": 1,
            },
        ),
        HistoryEvent(T0, "A", "shop", "push", 3, "sent", {"read": 4}),
    ]
    report = sku_report(
        "A",
        SkuRow("A", 9, T0),
        2,
        1,
        [],
        [listing("shop", "A", 3, observed=4)],
        [],
        events,
        {"shop": {"share": 100, "buffer": 2}},
        [{"name": "live", "channel": "shop"}],
        T0,
    )
    (shop,) = report["channels"]
    assert report["ats"] == 6 and shop["shows"] == 3 and shop["last_read"] == 4
    assert shop["unaccounted"] == 1 and shop["events"] == ["live"] and shop["rules"]["buffer"] == 2
    assert shop["decision"]["text"] == (
        "decided shop = 3: on hand 9 - reserved 2 - safety 1 = 6 available; 1 probably sold, not "
        "reported yet; low stock (threshold 8): split shop 3, web 3; events live -> 3 (fast-path)"
    )
    assert shop["last_push"]["text"] == "push sent: shop set to 3 (read 4 just before)"
    assert sold_by_sku({("A", "order"): 3, ("A", "cancel"): 1, ("B", "read"): 9}) == {"A": 2}


def test_a_sale_refused_again_and_again_is_listed_once() -> None:
    """The engine offers a refused sale again after a back-off: it is one row, counted."""
    events = [
        HistoryEvent(T0 + timedelta(seconds=s), "A", "shop", "refused", 2, "shop:o1") for s in (0, 10, 30)
    ] + [HistoryEvent(T0 + timedelta(seconds=5), "B", "shop", "refused", 1, "shop:o2")]
    rows = refused_sales(events)
    assert [(r["order"], r["times"]) for r in rows] == [("shop:o2", 1), ("shop:o1", 3)]
    assert rows[1]["at"] == T0.isoformat() and rows[1]["last_at"] == (T0 + timedelta(seconds=30)).isoformat()


def test_sold_out_skus_are_counted_not_listed() -> None:
    """A low-stock SKU at 0 everywhere, not selling, is no risk: it is left out of the rows and
    named among the sold-out ones; one a channel still shows is kept."""
    low = [
        {"sku": "GONE", "ats": 0, "threshold": 3, "targets": {"shop": 0}},
        {"sku": "LEAK", "ats": 0, "threshold": 3, "targets": {"shop": 0}},
    ]
    rows = oversell_risk(
        low,
        {},
        {"GONE": SkuRow("GONE", 0, T0), "LEAK": SkuRow("LEAK", 0, T0)},
        {},
        [listing("shop", "GONE", 0), listing("shop", "LEAK", 2)],
        [],
        {},
    )
    assert [(r["sku"], r["risk"]) for r in rows] == [
        ("LEAK", "channels show 2 units, 0 available; shop shows 2 more than its part")
    ]
    assert sold_out(low) == ["GONE", "LEAK"]


def test_outside_low_stock_only_more_than_exists_is_a_risk() -> None:
    """Channels share the pool outside low-stock mode: a channel above the pool is at risk, one
    above its target but within the pool is catching up."""
    rows = oversell_risk(
        [],
        {"A": 5, "B": 5},
        {"A": SkuRow("A", 10, T0), "B": SkuRow("B", 10, T0)},
        {},
        [listing("shop", "A", 12), listing("shop", "B", 9)],
        [push(1, "shop", "A", 10, 12), push(2, "shop", "B", 8, 9)],
        {},
    )
    by_sku = {r["sku"]: r for r in rows}
    assert by_sku["A"]["risk"] == "shop shows 2 more than exist"
    assert by_sku["B"]["risk"] is None and by_sku["B"]["catching_up"] == "shop lowering 9 to 8"
