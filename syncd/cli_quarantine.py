"""``syncd quarantine``: the orders and stock records syncd refused (malformed, or quantities out of
bounds), read from the ledger named by ``--config`` (no running daemon needed), as a table or JSON."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import closing
from typing import Any

from syncd.cli_report import _open, _print_json, _short, _table
from syncd.config import load_config

REASON_CHARS = 90  # in the table; --json has it whole, with the excerpt


def add_quarantine_command(sub: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``syncd quarantine`` on the ``syncd`` parser's subcommands."""
    p = sub.add_parser("quarantine", help="orders and stock records refused as malformed or out of bounds")
    with_config(p)
    p.add_argument("--open", action="store_true", help="only those not resolved by a clean version since")
    p.add_argument("--limit", type=_positive, default=100, help="the latest N (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON (with each item's excerpt)")
    p.set_defaults(func=cmd_quarantine)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the limit must be 1 or more")
    return value


def cmd_quarantine(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with closing(_open(config)) as store:
        counts = store.quarantine_counts()
        rows = store.quarantined(args.limit, open_only=args.open)
    if args.json:
        _print_json({**counts, "items": [row.as_dict() for row in rows]})
        return 0
    if not rows:
        print(
            "Nothing quarantined."
            if not args.open
            else f"Nothing quarantined is open ({counts['total']} resolved)."
        )
        return 0
    print(f"Quarantined: {counts['total']} ({counts['open']} open); the latest {len(rows)}:")
    _table(
        ["FIRST SEEN", "CONNECTOR", "KIND", "REF", "SEEN", "STATE", "REASON"],
        [
            [
                _short(r.first_seen_at.isoformat()),
                r.connector,
                r.kind,
                r.ref,
                r.seen,
                "open" if r.resolved_at is None else "resolved",
                r.reason if len(r.reason) <= REASON_CHARS else r.reason[: REASON_CHARS - 3] + "...",
            ]
            for r in rows
        ],
    )
    return 0
