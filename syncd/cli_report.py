"""The report commands: ``syncd drift``, ``runs``, ``explain SKU`` and ``outbox``, read from the
ledger named by ``--config`` (no running daemon needed), each as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.settings import Duration
from syncd.config import Config, EventSettings, load_config
from syncd.mapping import explain_kits, kit_text
from syncd.status.channels import outbox
from syncd.status.drift import drift_row, drift_summary
from syncd.status.load import explain_kit_decisions, load_sku, matching_skus
from syncd.status.runs import run_rows
from syncd.store import Store

EVENTS_KEY = "api-events"  # where the daemon keeps events added over the API (engine planner)
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


def add_report_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the report commands on the ``syncd`` parser's subcommands."""
    p = sub.add_parser("drift", help="drift the reconciles found, grouped by cause (from the ledger)")
    with_config(p)
    p.add_argument("--since", type=_since, default=timedelta(hours=24), help="how far back (default 24h)")
    p.add_argument("--sku", help="only this SKU")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("runs", help="the last runs of every cycle kind, with durations and counts")
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("explain", help="why each channel shows what it shows for one SKU")
    p.add_argument("sku", help="the SKU, as the ERP names it")
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("outbox", help="pushes waiting to be sent (and given up), and why")
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_outbox)


def _since(text: str) -> timedelta:
    try:
        value = _DURATION.validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (try 24h, 90m or 7 days)") from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
    return value


def _open(config: Config) -> Store:
    """The config's ledger; a SQLite file that does not exist is an error, not a new empty ledger."""
    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise FileNotFoundError(f"no ledger at {path} (database_url); has the daemon run yet?")
    store = Store(url)
    store.migrate()
    return store


def _now() -> datetime:
    return datetime.now(UTC)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _short(value: str | None) -> str | None:
    """An ISO time as YYYY-MM-DD HH:MM:SS (UTC)."""
    return value[:19].replace("T", " ") if value else None


# ---------------------------------------------------------------------- commands
def cmd_drift(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = _now()
    with closing(_open(config)) as store:
        rows = store.drift_since(now - args.since, sku=args.sku)
    groups = drift_summary(rows)
    if args.json:
        _print_json(
            {
                "since": (now - args.since).isoformat(),
                "sku": args.sku,
                "groups": groups,
                "rows": [drift_row(r) for r in rows],
            }
        )
        return 0
    scope = f" for {args.sku}" if args.sku else ""
    if not rows:
        print(f"No drift since {_short((now - args.since).isoformat())} UTC{scope}.")
        return 0
    print(f"Drift since {_short((now - args.since).isoformat())} UTC{scope}: {len(rows)} rows")
    _table(
        ["CAUSE", "TIMES", "LISTINGS", "UNITS OFF", "SET RIGHT", "ALREADY RIGHT", "LAST"],
        [
            [
                g["cause"],
                g["count"],
                g["listings"],
                g["units_off"],
                g["corrected"],
                g["already_right"],
                _short(g["last_at"]),
            ]
            for g in groups
        ],
    )
    print()
    _table(
        ["WHEN", "CHANNEL", "SKU", "EXPECTED", "READ", "CAUSE", "DONE"],
        [
            [_short(d["at"]), d["channel"], d["sku"], d["expected"], d["observed"], d["cause"], d["done"]]
            for d in map(drift_row, rows[:100])
        ],
    )
    if len(rows) > 100:
        print(f"... {len(rows) - 100} older rows (use --json for all)")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = _now()
    with closing(_open(config)) as store:
        runs = run_rows(store.recent_runs_by_kind(10), now)
    if args.json:
        _print_json(runs)
        return 0
    if not runs:
        print("No run recorded yet.")
        return 0
    _table(
        ["ID", "KIND", "STARTED", "TOOK", "COUNTS", "ERROR"],
        [
            [
                r["id"],
                r["kind"],
                _short(r["started_at"]),
                f"in progress ({r['duration_seconds']:.0f} s so far)"
                if r["in_progress"]
                else f"{r['duration_seconds']:.2f} s",
                ", ".join(f"{k} {v}" for k, v in r["counts"].items())
                or ("-" if r["in_progress"] else "nothing to do"),
                r["error"],
            ]
            for r in runs
        ],
    )
    return 0


def _active_events(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    """Events active now: the config's, and those added over the API (kept in the ledger)."""
    events = list(config.events)
    saved = store.get_cursor(EVENTS_KEY)
    if saved:
        try:
            extra = [EventSettings.model_validate(e) for e in json.loads(saved)]
        except (ValueError, TypeError):
            extra = []  # the daemon logs an unreadable list; the report goes on without it
        names = {e.name for e in extra}
        events = [e for e in events if e.name not in names] + extra
    return [e.model_dump(mode="json") | {"active": True} for e in events if e.active(now)]


def cmd_explain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = _now()
    with closing(_open(config)) as store:
        report = load_sku(store, config, args.sku, now, _active_events(config, store, now))
        report["kits"] = explain_kits(config, store, args.sku)  # a kit's code, or a kit's component
        if report["kits"]["kit"] and not report["known"]:
            # A kit's decision is made of its components' (shown above), not of its own stock.
            explain_kit_decisions(report, lambda _channel: True)
        near = [] if report["known"] or report["channels"] else matching_skus(store, args.sku)
    if not report["known"] and not report["channels"]:
        hint = f"; similar: {', '.join(near)}" if near else ""
        print(f"syncd explain: no SKU named {args.sku!r} in the ledger{hint}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(report)
        return 0
    if report["known"] or not report["kits"]["kit"]:
        print(f"{report['sku']}: ERP on hand {report['on_hand']} (read {_short(report['read_at'])} UTC)")
        print(
            f"  reserved {report['reserved']} (sold, not yet in the ERP), safety stock {report['safety_stock']}"
            f" -> {report['ats']} available to sell"
        )
    for r in report["reservations"][:10]:
        print(f"    {r['channel']} order {r['order']}: {r['units']} ({r['state']})")
    for line in kit_text(report["sku"], report["kits"]):
        print(line)
    for c in report["channels"]:
        print(
            f"\n{c['channel']} shows {c['shows']} ({c['status']}{': ' + c['detail'] if c['detail'] else ''})"
        )
        rules = ", ".join(f"{k} {v}" for k, v in c["rules"].items() if v is not None)
        print(
            f"  rules: {rules or 'defaults'}" + (f"; events: {', '.join(c['events'])}" if c["events"] else "")
        )
        print(f"  why: {c['decision']['text'] if c['decision'] else 'no decision recorded'}")
        if c["unaccounted"]:
            print(f"  unaccounted: {c['unaccounted']} units probably sold, not reported yet")
        print(f"  last set to {c['last_set']} at {_short(c['set_at'])}; sold since {c['sold_since_set']}")
        if c["last_push"]:
            print(f"  last push: {c['last_push']['text']} at {_short(c['last_push']['at'])}")
        print(f"  last read: {c['last_read']} at {_short(c['read_at'])}")
        if c["queued"]:
            q = c["queued"]
            print(f"  queued: set to {q['target']} ({q['state']}, {q['reason']})")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = _now()
    with closing(_open(config)) as store:
        rows = outbox(store.pushes_in_states(("pending", "failed")), {}, now)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("The outbox is empty: nothing waits to be sent.")
        return 0
    pending = sum(1 for r in rows if r["state"] == "pending")
    print(f"{pending} pushes waiting, {len(rows) - pending} given up")
    _table(
        ["ID", "CHANNEL", "SKU", "FROM", "TO", "REASON", "STATE", "WAITING", "WHY"],
        [
            [
                r["id"],
                r["channel"],
                r["sku"],
                r["from"],
                r["target"],
                r["reason"],
                r["state"],
                f"{r['waiting_seconds']:.0f} s",
                r["why"],
            ]
            for r in rows
        ],
    )
    return 0
