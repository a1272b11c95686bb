"""Benchmark: is syncd's drift report right? A demo-like run scored against the sandboxes' journals.

The mock ERP and the three channel sandboxes run in this process on loopback (API latency and
imperfect webhooks as in ``bench/flash_sale.py``); the daemon runs as a subprocess on its shipped
defaults, its schedule compressed by ``--time-scale``; ``syncd.demo``'s shoppers buy, restock, edit
listings by hand and cancel orders. Each channel sandbox journals the true cause of every change of
a shown quantity (``GET /_sandbox/changes``). At the end the ledger's drift rows, reconcile runs and
order lines are read (SQL on its SQLite file) and every reported drift is scored.

Matching rules (``score`` implements them; times are wall-clock UTC, one machine):

- A drift row belongs to the last reconcile run that started at or before its ``at``. The *read*
  of a channel in a run is the ``observed_at`` the run stamped on all of that channel's listings
  (the benchmark polls the ledger for it every 0.25 s); where none was seen, the run's start
  stands for it, and the drift's ``at`` for the read of the drift's own run (wider, never
  narrower). A drift's *window* runs from the start of the previous reconcile (the start of
  the benchmark if none) to its channel's read in its own run: a read of a whole catalogue takes
  seconds, and the listing may have been read at any moment of it, so a change made while the
  previous run was reading may show in that run or only in this one.
- ``manual_edit`` is true iff a ``manual_edit`` change of that listing lies in the window.
- ``missed_order`` is true iff a ``purchase`` of that listing lies in the window whose order syncd
  had not stored by the window's end (no order line of it, or its first line stored later).
- ``missed_cancellation`` is true iff a ``cancellation`` of that listing lies in the window whose
  cancellation syncd had not stored by the window's end (its lines still reserved, posted or
  settled, or moved to a cancelled state later).
- ``unknown_baseline`` is true iff syncd expected nothing (``expected`` is null) and had never
  written the listing before the read of its own run (before that run's start where no read was
  seen): corrections pushed after the read do not count.
- A drift has *no real cause* when none of the four holds, whatever its label says.
- Recall. A manual edit is *real* when a reconcile reads its channel after it (else ``unread``)
  and no other manual edit of the listing comes before that read (else ``superseded``: nobody
  could see it); it is *found* when a ``manual_edit`` drift of that listing has it in its
  window. A purchase (cancellation) is a real miss when syncd had not stored its order (its
  cancellation) by the end of the read of the first reconcile that began after it (a read begun
  before it may have read the listing before the purchase, and could not show it); it is found
  when a ``missed_order`` (``missed_cancellation``) drift of that listing has it in its window.

Run ``python bench/drift.py --json bench/results/drift.json`` (10 minutes) or ``--quick`` (~60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import os
import platform
import random
import shlex
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.flash_sale import (  # noqa: E402
    CHANNELS,
    CRED,
    ERP_LATENCY_MS,
    WEBHOOK_FAULTS,
    Child,
    Servers,
    _commit,
    _config_dict,
    _reconciled,
    _sandbox_factory,
    free_port,
    schedule_for,
    wait_until,
)
from connectors.sandbox_kit import Faults  # noqa: E402
from syncd.demo import DEMAND, seed, shoppers  # noqa: E402
from syncd.logs import configure_logging  # noqa: E402

CAUSES = ("manual_edit", "missed_order", "missed_cancellation", "unknown_baseline")
EPOCH = datetime.min.replace(tzinfo=UTC)
KNOWN_STATES = ("reserved", "posted", "settled")  # an order line in any other state was cancelled


# ---------------------------------------------------------------------------- scoring (pure)


@dataclass(frozen=True)
class Change:
    """One journaled change of a listing's shown quantity (the sandbox's ground truth)."""

    channel: str
    sku: str
    at: datetime
    cause: str
    order_id: str | None = None


@dataclass(frozen=True)
class Reported:
    """One drift row of the ledger."""

    channel: str
    sku: str
    at: datetime
    cause: str
    expected: int | None
    observed: int


@dataclass(frozen=True)
class Reconcile:
    """A reconcile run, and when it read each channel back (where the benchmark saw it)."""

    started: datetime
    finished: datetime | None
    reads: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Known:
    """When syncd stored an order's first line, and its cancellation (None: not by the end)."""

    stored: datetime | None
    cancelled: datetime | None = None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def score(
    changes: Iterable[Change],
    reported: Iterable[Reported],
    reconciles: Iterable[Reconcile],
    known: Mapping[tuple[str, str], Known],
) -> dict[str, Any]:
    """Precision and recall of the drift report per cause (rules in the module docstring)."""
    runs = sorted(reconciles, key=lambda r: r.started)
    starts = [r.started for r in runs]
    by_listing: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for change in sorted(changes, key=lambda c: c.at):
        by_listing[(change.channel, change.sku)].append(change)
    drifts = sorted(reported, key=lambda d: d.at)

    def read_at(index: int, channel: str) -> datetime:
        return runs[index].reads.get(channel, runs[index].started)

    def window(drift: Reported) -> tuple[datetime, datetime]:
        own = bisect.bisect_right(starts, drift.at) - 1
        end = runs[own].reads.get(drift.channel, drift.at) if own >= 0 else drift.at
        return (runs[own - 1].started if own >= 1 else EPOCH), end

    def read_begun_after(change: Change) -> datetime | None:
        """The end of the channel's read in the first reconcile that began after the change."""
        index = bisect.bisect_right(starts, change.at)
        return read_at(index, change.channel) if index < len(runs) else None

    def next_read(change: Change) -> datetime | None:
        """The first reconcile read of the change's channel after it."""
        for index in range(max(0, bisect.bisect_right(starts, change.at) - 1), len(runs)):
            if read_at(index, change.channel) > change.at:
                return read_at(index, change.channel)
        return None

    def stored_by(change: Change, when: datetime | None) -> bool:
        fact = known.get((change.channel, change.order_id or ""))
        at = None if fact is None else fact.cancelled if change.cause == "cancellation" else fact.stored
        return at is not None and when is not None and at <= when

    def real_causes(drift: Reported) -> set[str]:
        start, end = window(drift)
        inside = [c for c in by_listing[(drift.channel, drift.sku)] if start < c.at <= end]
        causes = {"manual_edit"} if any(c.cause == "manual_edit" for c in inside) else set()
        for kind, cause in (("purchase", "missed_order"), ("cancellation", "missed_cancellation")):
            if any(c.cause == kind and not stored_by(c, end) for c in inside):
                causes.add(cause)
        # Corrections this reconcile pushed after its read do not count.
        own = bisect.bisect_right(starts, drift.at) - 1
        read = read_at(own, drift.channel) if own >= 0 else drift.at
        written = any(
            c.cause == "syncd_write" and c.at < read for c in by_listing[(drift.channel, drift.sku)]
        )
        if drift.expected is None and not written:
            causes.add("unknown_baseline")
        return causes

    precision: dict[str, dict[str, Any]] = {c: {"reported": 0, "true": 0} for c in CAUSES}
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    no_cause = 0
    for drift in drifts:
        real = real_causes(drift)
        row = precision.setdefault(drift.cause, {"reported": 0, "true": 0})
        row["reported"] += 1
        row["true"] += drift.cause in real
        no_cause += not real
        actual = drift.cause if drift.cause in real else next((c for c in CAUSES if c in real), "none")
        confusion[drift.cause][actual] += 1
    for row in precision.values():
        row["precision"] = _share(row["true"], row["reported"])

    drifts_of: dict[tuple[str, str], list[Reported]] = defaultdict(list)
    for drift in drifts:
        drifts_of[(drift.channel, drift.sku)].append(drift)

    def found_by(change: Change, cause: str) -> bool:
        windows = (window(d) for d in drifts_of[(change.channel, change.sku)] if d.cause == cause)
        return any(start < change.at <= end for start, end in windows)

    edits: list[dict[str, Any]] = []
    misses = {c: {"real": 0, "found": 0} for c in ("missed_order", "missed_cancellation")}
    for journal in by_listing.values():
        for i, change in enumerate(journal):
            read = next_read(change)
            if change.cause == "manual_edit":
                edits.append(_edit_verdict(change, journal[i + 1 :], read, found_by(change, "manual_edit")))
            elif change.cause in ("purchase", "cancellation") and (begun := read_begun_after(change)):
                cause = "missed_order" if change.cause == "purchase" else "missed_cancellation"
                if not stored_by(change, begun):
                    misses[cause]["real"] += 1
                    misses[cause]["found"] += found_by(change, cause)
    statuses = Counter(e["status"] for e in edits)
    real_edits = statuses["found"] + statuses["missed"]
    recall: dict[str, dict[str, Any]] = {
        "manual_edit": {
            "real": real_edits,
            "found": statuses["found"],
            "unread": statuses["unread"],
            "superseded": statuses["superseded"],
            "missed_after_syncd_wrote_over_it": sum(
                e["overwritten"] for e in edits if e["status"] == "missed"
            ),
        },
        **misses,
    }
    for row in recall.values():
        row["recall"] = _share(row["found"], row["real"])
    labelled = len(drifts) - precision["unknown_baseline"]["reported"]
    return {
        "drifts": len(drifts),
        "no_real_cause": no_cause,
        "no_real_cause_share": _share(no_cause, len(drifts)),
        # First sightings dilute the share; this one is over the drifts with another label.
        "no_real_cause_share_of_other_labels": _share(
            sum(
                n
                for label, row in confusion.items()
                if label != "unknown_baseline"
                for a, n in row.items()
                if a == "none"
            ),
            labelled,
        ),
        "precision": precision,
        "recall": recall,
        "confusion": {label: dict(counts) for label, counts in sorted(confusion.items())},
        "reconciles": len(runs),
        "changes": dict(Counter(c.cause for journal in by_listing.values() for c in journal)),
        "manual_edits": edits,
    }


def _edit_verdict(
    edit: Change, later: list[Change], next_read: datetime | None, found: bool
) -> dict[str, Any]:
    before_read = [c for c in later if next_read is None or c.at < next_read]
    status = (
        "unread"
        if next_read is None
        else "superseded"
        if any(c.cause == "manual_edit" for c in before_read)
        else "found"
        if found
        else "missed"
    )
    return {
        "channel": edit.channel,
        "sku": edit.sku,
        "at": edit.at.isoformat(),
        "status": status,
        "overwritten": any(c.cause == "syncd_write" for c in before_read),
    }


def table(result: dict[str, Any]) -> str:
    """The scores as a Markdown table, and the share of drifts with no real cause."""
    lines = [
        "| Cause | Reported | True | Precision | Real | Found | Recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    for cause in CAUSES:
        p = result["precision"].get(cause, {"reported": 0, "true": 0, "precision": None})
        r = result["recall"].get(cause)
        real = "n/a" if r is None else str(r["real"])
        found = "n/a" if r is None else str(r["found"])
        lines.append(
            f"| `{cause}` | {p['reported']} | {p['true']} | {pct(p['precision'])} | {real} | {found} | "
            f"{pct(None if r is None else r['recall'])} |"
        )
    lines.append(
        f"\nReported drifts with no real cause: {result['no_real_cause']} of {result['drifts']} "
        f"({pct(result['no_real_cause_share'])}; {pct(result['no_real_cause_share_of_other_labels'])} of "
        f"those not labelled `unknown_baseline`); {result['reconciles']} reconciles."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- reading the run


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_ledger(path: Path) -> tuple[list[Reported], list[Reconcile], dict[tuple[str, str], Known]]:
    """Drift rows, reconcile runs and what syncd knew of each order, from the daemon's SQLite file."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        drifts = [
            Reported(channel, sku, _utc(at) or EPOCH, cause, expected, observed)
            for at, channel, sku, cause, expected, observed in db.execute(
                "SELECT at, channel, sku, cause, expected, observed FROM drift ORDER BY at, id"
            )
        ]
        runs = [
            Reconcile(_utc(started) or EPOCH, _utc(finished))
            for started, finished in db.execute(
                "SELECT started_at, finished_at FROM run WHERE kind = 'reconcile' ORDER BY started_at"
            )
        ]
        known: dict[tuple[str, str], Known] = {}
        for channel, order_id, state, created, updated in db.execute(
            "SELECT channel, order_id, state, created_at, updated_at FROM order_line"
        ):
            was = known.get((channel, order_id), Known(None))
            stored = min(t for t in (was.stored, _utc(created)) if t is not None)
            cancelled = was.cancelled
            if state not in KNOWN_STATES:
                at = _utc(updated)
                cancelled = at if cancelled is None or (at is not None and at > cancelled) else cancelled
            known[(channel, order_id)] = Known(stored, cancelled)
    return drifts, runs, known


def with_reads(runs: list[Reconcile], stamps: Iterable[tuple[str, datetime]]) -> list[Reconcile]:
    """The runs with each channel's read-back time: the first stamp of the channel inside the run."""
    starts = [r.started for r in runs]
    reads: list[dict[str, datetime]] = [dict(r.reads) for r in runs]
    for channel, stamp in sorted(stamps, key=lambda s: s[1]):
        index = bisect.bisect_right(starts, stamp) - 1
        finished = runs[index].finished if index >= 0 else None
        if index >= 0 and (finished is None or stamp <= finished):
            reads[index].setdefault(channel, stamp)
    return [Reconcile(r.started, r.finished, found) for r, found in zip(runs, reads, strict=True)]


async def watch_reads(ledger: Path, stamps: set[tuple[str, datetime]]) -> None:
    """Collect the times of the channels' full read-backs until cancelled.

    A reconcile stores a channel's listings with one ``observed_at`` for all of them, so a time
    most of a channel's listings share is the time of its last full read; polled every 0.25 s.
    """
    query = (
        "SELECT channel, observed_at, COUNT(*) FROM listing WHERE observed_at IS NOT NULL "
        "GROUP BY channel, observed_at"
    )
    while True:
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
                rows = db.execute(query).fetchall()
            totals: Counter[str] = Counter()
            for channel, _stamp, count in rows:
                totals[channel] += count
            stamps.update(
                (channel, _utc(stamp) or EPOCH)
                for channel, stamp, count in rows
                if 2 * count > totals[channel]
            )
        await asyncio.sleep(0.25)


async def read_journals(clients: Mapping[str, httpx.AsyncClient], since: datetime) -> list[Change]:
    changes = []
    for name, client in clients.items():
        response = await client.get("/_sandbox/changes", params={"since": since.isoformat()})
        response.raise_for_status()
        changes += [
            Change(name, row["sku"], _utc(row["at"]) or EPOCH, row["cause"], row["order_id"])
            for row in response.json()
        ]
    return changes


# ---------------------------------------------------------------------------- one run


async def _reconciled_after(ledger: Path, after: datetime) -> bool:
    """Whether a reconcile that started after ``after`` has finished (SQLite keeps naive UTC text)."""
    bound = after.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
        query = "SELECT 1 FROM run WHERE kind = 'reconcile' AND finished_at IS NOT NULL AND started_at > ?"
        return db.execute(query, (bound,)).fetchone() is not None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Sandboxes, the daemon, the shoppers for ``args.duration`` seconds, one last reconcile, the scores."""
    channels = list(CHANNELS)
    servers = Servers()
    child: Child | None = None
    daemon_port = free_port()
    rng = random.Random(args.seed)
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        try:
            from connectors.mock_erp.sandbox import create_app as erp_app

            erp_url = await servers.start(
                erp_app(
                    api_key=CRED["SYNCD_BENCH_ERP_KEY"],
                    db_path=f"{tmp}/erp.db",
                    faults=Faults(latency_ms=ERP_LATENCY_MS),
                    seed=args.seed,
                )
            )
            urls = {}
            for i, name in enumerate(channels):
                kind, _share, _weight, latency = CHANNELS[name]
                faults = Faults(latency_ms=latency, **WEBHOOK_FAULTS)
                hook = f"http://127.0.0.1:{daemon_port}/webhooks/{name}"
                urls[name] = await servers.start(_sandbox_factory(kind)(hook, faults, args.seed * 100 + i))
            async with contextlib.AsyncExitStack() as stack:

                async def client(url: str) -> httpx.AsyncClient:
                    return await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))

                erp = await client(erp_url)
                shops = {name: await client(url) for name, url in urls.items()}
                catalogue = await seed(erp, shops, args.skus, rng)
                config = _config_dict(
                    daemon_port,
                    httpx.URL(erp_url).port or 0,
                    {n: httpx.URL(u).port or 0 for n, u in urls.items()},
                    schedule_for(args.time_scale),
                    f"sqlite:///{tmp}/syncd.db",
                    None,
                    args.log_level,
                )
                config_path = Path(tmp) / "syncd.yaml"
                config_path.write_text(yaml.safe_dump(config, sort_keys=False))
                env = {**os.environ, **CRED, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
                argv = [sys.executable, "-m", "syncd.cli", "run", "--config", str(config_path)]
                child = Child(argv, Path(tmp) / "syncd.log", env)
                stamps: set[tuple[str, datetime]] = set()
                watcher = asyncio.create_task(watch_reads(Path(tmp) / "syncd.db", stamps))
                daemon = await client(f"http://127.0.0.1:{daemon_port}")
                await wait_until(
                    lambda: _reconciled(daemon), args.ready_timeout, "the first reconcile", child
                )

                # One edit the scoring must count: the least popular SKU, well away from its level.
                target = ("web", catalogue[-1])
                shown = {
                    r["sku"]: r["quantity"] for r in (await shops["web"].get("/_sandbox/listings")).json()
                }
                edit = {"sku": target[1], "quantity": (shown.get(target[1]) or 0) + 23}
                (await shops["web"].post("/_sandbox/listings", json=edit)).raise_for_status()
                demand = {name: DEMAND[CHANNELS[name][0]] for name in channels}
                started = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        shoppers(erp, shops, demand, catalogue, args.rate, rng), timeout=args.duration
                    )
                stopped = datetime.now(UTC)
                # Shoppers' last changes are scored only if a reconcile reads after them; one that
                # never finishes leaves them "unread" rather than failing the whole run.
                final_reconcile = "finished"
                try:
                    await wait_until(
                        lambda: _reconciled_after(Path(tmp) / "syncd.db", stopped),
                        args.final_wait,
                        "a reconcile after the shoppers stopped",
                        child,
                    )
                except TimeoutError as exc:
                    final_reconcile = f"not finished: {exc}"
                shopping_seconds = time.monotonic() - started
                watcher.cancel()
                changes = await read_journals(shops, began)
        finally:
            uvicorn_errors = logging.getLogger("uvicorn.error")
            level = uvicorn_errors.level
            uvicorn_errors.setLevel(logging.CRITICAL)
            try:
                if child is not None:
                    child.stop()
                    if args.keep_logs is not None:
                        args.keep_logs.mkdir(parents=True, exist_ok=True)
                        (args.keep_logs / "drift-syncd.log").write_bytes(child.log.read_bytes())
                await servers.stop()
            finally:
                uvicorn_errors.setLevel(level)
        drifts, reconciles, known = read_ledger(Path(tmp) / "syncd.db")
    reconciles = with_reads(reconciles, stamps)
    result = score(changes, drifts, reconciles, known)
    result["final_reconcile"] = final_reconcile
    result["reconciles_with_every_read_seen"] = sum(len(r.reads) == len(channels) for r in reconciles)
    injected = [e for e in result["manual_edits"] if (e["channel"], e["sku"]) == target]
    return {
        **result,
        "injected_edit": {**edit, "channel": target[0], "verdicts": injected},
        "shopping_seconds": round(shopping_seconds, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of shoppers (wall clock)")
    parser.add_argument("--rate", type=float, default=2.0, help="shopper actions per second (the demo's)")
    parser.add_argument("--skus", type=int, default=300, help="catalogue size (the demo's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=10.0,
        help="divide the daemon's shipped poll and reconcile intervals by this",
    )
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument(
        "--final-wait",
        type=float,
        default=600.0,
        help="seconds to wait for a reconcile after the shoppers stop (changes after the last read "
        "are reported as unread)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep-logs", type=Path, help="copy the daemon's log here")
    parser.add_argument("--log-level", default="info", choices=["debug", "info"], help="the daemon's")
    parser.add_argument("--quick", action="store_true", help="about a minute: smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.time_scale, args.skus = 20.0, 30.0, 60
    if args.duration <= 0 or args.rate <= 0 or args.skus < 2 or args.time_scale <= 0:
        parser.error("--duration, --rate and --time-scale must be > 0 and --skus >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", "console")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(run(args))
    command = ("python bench/drift.py " + shlex.join(sys.argv[1:])).strip()
    output = {
        "command": command,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "daemon_commit": _commit(ROOT),
        "parameters": {
            "duration_seconds": args.duration,
            "rate_per_second": args.rate,
            "skus": args.skus,
            "seed": args.seed,
            "time_scale": args.time_scale,
            "time_scale_note": "the daemon runs on its shipped defaults (no stock section, default "
            "policies) except its schedule: order poll, ERP poll and reconcile intervals divided by "
            "the time scale; shoppers, API latency and webhook delays are not scaled",
            "schedule": schedule_for(args.time_scale),
            "channels": {c: {"type": CHANNELS[c][0], "api_latency_ms": CHANNELS[c][3]} for c in CHANNELS},
            "webhook_faults": WEBHOOK_FAULTS,
            "shoppers": "syncd.demo.shoppers: 90% purchases, 5% ERP restocks, 3% manual edits, 2% cancellations",
        },
        **result,
        "table_markdown": table(result),
    }
    print(f"{command}\n\n{output['table_markdown']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
