"""The ``syncd`` command: run, check-config, reconcile, status, sandbox, demo, erp authorize.

Exit codes: 0 success, 1 runtime failure (store, network), 2 bad configuration or usage,
3 cannot start (a port in use, the SQLite ledger held by another syncd process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from syncd import __version__
from syncd.cli_quarantine import add_quarantine_command
from syncd.cli_report import add_report_commands
from syncd.config import Config, load_config
from syncd.errors import ConfigError, StoreError
from syncd.logs import configure_logging
from syncd.startup import EXIT_CANNOT_START, StartupError, ensure_port_free, lock_ledger

DEFAULT_CONFIG = os.environ.get("SYNCD_CONFIG", "config/syncd.yaml")


def _load(path: str) -> Config:
    config = load_config(path)
    configure_logging(config.logging.level, config.logging.format, config.secrets())
    return config


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config_file or args.config)
    warnings = config.warnings()
    print(f"{args.config_file or args.config}: OK" + (f" with {len(warnings)} warning(s)" if warnings else ""))
    for line in config.summary():
        print(f"  {line}")
    for line in warnings:
        print(f"  warning: {line}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.daemon import Daemon

    config = _load(args.config)
    # Before the ledger is opened: a daemon that cannot serve must not record a run first.
    lock_ledger(config.database_url)
    ensure_port_free(config.server.host, config.server.port)
    daemon = Daemon(config)
    asyncio.run(daemon.serve())
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from syncd.daemon import Daemon

    if not args.once:
        print("syncd reconcile: only --once is supported (the daemon reconciles on its own)", file=sys.stderr)
        return 2
    config = _load(args.config)
    if not args.dry_run:
        lock_ledger(config.database_url)

    async def once() -> int:
        daemon = Daemon(config)
        try:
            # On PostgreSQL a reconcile that writes needs the syncer's lease, as a replica does.
            if not args.dry_run and not await daemon.take_lease():
                print(
                    "syncd reconcile: another replica is the syncer of this shop (it holds the lease"
                    f" {config.replicas.lease_name!r}) and reconciles on its schedule; try --dry-run",
                    file=sys.stderr,
                )
                return EXIT_CANNOT_START
            report = await daemon.engine.reconcile(dry_run=args.dry_run)
        finally:
            await daemon.release_lease()
            await daemon.engine.aclose()
            daemon.store.close()
        title = "Plan (dry run, nothing changed)" if args.dry_run else "Reconcile"
        print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())))
        for push in report.pushes:
            compare = "?" if push.compare is None else push.compare
            print(f"  {push.channel:<12} {push.sku:<24} {compare:>6} -> {push.target}")
        for drift in report.drift:
            print(
                f"  drift {drift.channel} {drift.sku}: expected {drift.expected}, observed {drift.observed} "
                f"({drift.cause.value})"
            )
        for error in report.errors:
            print(f"  error: {error}", file=sys.stderr)
        return 1 if report.errors else 0

    return asyncio.run(once())


def _daemon_url(config: Config) -> str:
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::") else config.server.host
    return f"http://{host}:{config.server.port}"


def cmd_health(args: argparse.Namespace) -> int:
    url = (args.url or _daemon_url(load_config(args.config))).rstrip("/")
    try:
        # No proxies from the environment: one set for the daemon's API calls must not break the probe.
        with httpx.Client(trust_env=False, timeout=args.timeout) as client:
            response = client.get(f"{url}/health")
    except httpx.HTTPError as exc:
        print(f"syncd health: no answer from {url}/health: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"syncd health: {url}/health answered {response.status_code}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    url, token = args.url, os.environ.get("SYNCD_API_TOKEN", "")
    if url is None:
        config = load_config(args.config)
        url = _daemon_url(config)
        token = config.api.token.get_secret_value() if config.api.token is not None else ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/status", headers=headers, timeout=10)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"syncd status: cannot read {url}/api/status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"syncd {status.get('version')} up since {status.get('started_at')}")
    for c in status.get("connectors", []):
        state = "healthy" if c["healthy"] else ("NEEDS A HUMAN" if c["needs_human"] else "FAILING")
        print(
            f"  {c['kind']:<8} {c['name']:<12} {state:<13} last success {c['last_success']}"
            + (f"  last error: {c['last_error']}" if c["last_error"] else "")
        )
    print(
        f"  low-stock SKUs: {len(status.get('low_stock', []))}; drift rows shown: {len(status.get('drift', []))}"
    )
    for run in status.get("runs", [])[:5]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run["counts"].items()) if v)
        print(
            f"  run {run['id']} {run['kind']} {run['started_at']}: {counts}"
            + (f" ERROR {run['error']}" if run["error"] else "")
        )
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from syncd.demo import build_sandbox

    configure_logging("info", "auto")
    ensure_port_free(args.host, args.port, "--port")
    app = build_sandbox(args.name, data_dir=args.data_dir, webhook_url=args.webhook_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from syncd.demo import DEMO_ENV, run_demo

    config = load_config(args.config, env={**DEMO_ENV, **os.environ})
    lock_ledger(config.database_url)
    ensure_port_free("127.0.0.1", httpx.URL(str(config.erp.base_url)).port or 80, "erp.base_url")
    for i, channel in enumerate(config.channels):
        if channel.enabled:
            address = getattr(channel, "root_url", None) or channel.base_url
            ensure_port_free("127.0.0.1", httpx.URL(str(address)).port or 80, f"channels[{i}].base_url")
    ensure_port_free("127.0.0.1", config.server.port)
    return asyncio.run(
        run_demo(config_path=args.config, skus=args.skus, rate=args.rate, duration=args.duration, erp_type=args.erp)
    )


def cmd_mapping_check(args: argparse.Namespace) -> int:
    from syncd.errors import ConnectorError
    from syncd.mapping import check_configured
    from syncd.store import Store

    config = _load(args.config)
    store = Store(config.database_url)
    try:
        store.migrate()
        report = asyncio.run(check_configured(config, store))
    except ConnectorError as exc:
        print(f"syncd mapping check: cannot read the ERP's SKUs: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    return 1 if report.has_conflicts or any(c.error for c in report.channels) else 0


def cmd_erp_authorize(args: argparse.Namespace) -> int:
    from connectors.bling.auth import authorize_interactively
    from connectors.bling.settings import BlingSettings
    from connectors.tiny.auth import authorize_interactively as authorize_tiny
    from connectors.tiny.settings import TinySettings
    from syncd.errors import ConnectorError
    from syncd.store import Store

    config = _load(args.config)
    erp = config.erp
    if erp.type != args.erp or not isinstance(erp, BlingSettings | TinySettings):
        print(f"syncd erp authorize: the config's ERP is {config.erp.type!r}, not {args.erp!r}", file=sys.stderr)
        return 2
    store = Store(config.database_url)
    store.migrate()

    async def read(prompt: str) -> str:
        return args.code if args.code else await asyncio.to_thread(input, prompt)

    try:
        if isinstance(erp, TinySettings):
            asyncio.run(authorize_tiny(erp, store, read, print))
        else:
            asyncio.run(authorize_interactively(erp, store, read, print))
    except (ValueError, ConnectorError) as exc:
        print(f"syncd erp authorize: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps channel stock in step with the ERP.",
        epilog=(
            "exit codes: 0 success, 1 runtime failure (database, network), 2 bad configuration or"
            " usage, 3 cannot start (a port in use, the SQLite ledger held by another syncd)"
        ),
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", "-c", default=DEFAULT_CONFIG, help=f"YAML config file (default {DEFAULT_CONFIG})"
        )

    p = sub.add_parser("run", help="run the daemon")
    with_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and summarise what would run")
    p.add_argument("config_file", nargs="?", help="config file (or use --config)")
    with_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("reconcile", help="run one full reconcile and exit")
    p.add_argument("--once", action="store_true", help="run one reconcile and exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing anywhere")
    with_config(p)
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("status", help="show a running daemon's status")
    with_config(p)
    p.add_argument(
        "--url",
        help="daemon address (default: from the config's server section; with --url the token is SYNCD_API_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)

    add_report_commands(sub, with_config)  # drift, runs, explain, outbox (syncd/cli_report.py)
    add_quarantine_command(sub, with_config)  # syncd/cli_quarantine.py

    p = sub.add_parser("health", help="exit 0 if a running daemon answers /health (container HEALTHCHECK)")
    with_config(p)
    p.add_argument("--url", help="daemon address (default: from the config's server section)")
    p.add_argument("--timeout", type=float, default=4.0, help="seconds to wait for the answer")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("mapping", help="SKU mapping between the channels and the ERP")
    mapping = p.add_subparsers(dest="mapping_command", required=True)
    p = mapping.add_parser(
        "check", help="list unmapped, duplicated and conflicting SKUs per channel (exit 1 on conflicts)"
    )
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_mapping_check)

    p = sub.add_parser("sandbox", help="run one sandbox API by itself")
    p.add_argument("name", choices=["mock_erp", "bling", "tiny", "woocommerce", "shopify", "tiktok_shop"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data-dir", default="data/sandbox", help="where sandboxes with files keep them")
    p.add_argument("--webhook-url", help="deliver the sandbox's webhooks to this URL")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("erp", help="ERP set-up tasks")
    erp_sub = p.add_subparsers(dest="erp_command", required=True)
    p = erp_sub.add_parser("authorize", help="grant syncd access to the ERP account (OAuth) and save the tokens")
    p.add_argument("erp", choices=["bling", "tiny"])
    p.add_argument("--code", help="the authorization code (or redirect address), instead of asking for it")
    with_config(p)
    p.set_defaults(func=cmd_erp_authorize)

    p = sub.add_parser("demo", help="sandboxes + daemon + simulated shoppers, no credentials needed")
    p.add_argument("--config", "-c", default="config/demo.yaml")
    p.add_argument("--skus", type=int, default=300, help="catalogue size")
    p.add_argument("--rate", type=float, default=2.0, help="simulated purchases per second (0: none)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--erp", choices=["mock", "bling", "tiny"], default="mock", help="the ERP sandbox to run on")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"syncd: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except StoreError as exc:
        print(f"syncd: store error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
