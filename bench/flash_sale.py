"""Benchmark: a flash sale on a few hot SKUs, sold on three channels at once, for three ways of syncing.

Modes: ``syncd`` (the daemon as a subprocess, webhooks + polling + low-stock mode), ``syncd-poll-only``
(the same daemon, no webhooks) and ``naive`` (``bench/naive_sync.py``: push the ERP's on-hand to
every channel every minute). The sandboxes (mock ERP, TikTok Shop, Shopify, WooCommerce) run in this
process on loopback with API latency and imperfect webhooks; simulated shoppers buy through each
channel's ``/_sandbox/purchase``, and a ground-truth tally at each channel's door counts every sale
and every refusal. Run ``python bench/flash_sale.py --json bench/results/flash_sale.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.sandbox_kit import Faults  # noqa: E402
from syncd.config import parse_config  # noqa: E402
from syncd.daemon import QuietServer  # noqa: E402
from syncd.logs import configure_logging  # noqa: E402

MODES = ("syncd", "syncd-poll-only", "naive")
# Channel name -> (sandbox type, share of shoppers, low-stock weight, API latency in ms).
CHANNELS: dict[str, tuple[str, float, int, float]] = {
    "tiktok": ("tiktok_shop", 0.60, 60, 100.0),
    "shopify": ("shopify", 0.25, 25, 90.0),
    "web": ("woocommerce", 0.15, 15, 70.0),
}
ERP_LATENCY_MS = 60.0
WEBHOOK_FAULTS = {
    "webhook_delay_ms": 200.0,
    "webhook_delay_max_ms": 2000.0,
    "webhook_drop_rate": 0.01,
    "webhook_duplicate_rate": 0.01,
}
SKU_HEADER = "x-bench-sku"
RACE_MS = 5.0  # last-units: every channel's purchases of a SKU's last units fall within this
CRED = {
    "SYNCD_BENCH_ERP_KEY": "bench-erp-key-0001",
    "SYNCD_BENCH_WC_KEY": "ck_bench",
    "SYNCD_BENCH_WC_SECRET": "cs_bench",
    "SYNCD_BENCH_WC_HOOK": "bench-wc-hook-secret",
    "SYNCD_BENCH_SHOPIFY_TOKEN": "shpat_bench_0001",
    "SYNCD_BENCH_SHOPIFY_HOOK": "bench-shopify-client-secret",
    "SYNCD_BENCH_TTS_KEY": "bench-app-key",
    "SYNCD_BENCH_TTS_SECRET": "bench-app-secret",
    "SYNCD_BENCH_TTS_ACCESS": "bench-access-token",
    "SYNCD_BENCH_TTS_REFRESH": "bench-refresh-token",
    "SYNCD_BENCH_TTS_CIPHER": "bench-shop-cipher",
}
# --erp bling: the Bling sandbox's app credentials (its client secret also signs its webhooks).
BLING_CRED = {"SYNCD_BENCH_BLING_ID": "bench-bling-client", "SYNCD_BENCH_BLING_SECRET": "bench-bling-secret"}


# ---------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    stock: dict[str, int]  # the ERP's initial on-hand: the ground truth of what exists
    hot: list[str]
    arrivals: list[tuple[float, str, str]]  # (seconds into the burst, channel, sku)


def make_scenario(args: argparse.Namespace, seed: int, channels: list[str]) -> Scenario:
    if args.scenario == "last-units":
        return last_units_scenario(args, seed, channels)
    rng = random.Random(seed)
    hot = [f"HOT-{i + 1:02d}" for i in range(args.hot_skus)]
    stock = {sku: args.hot_units // args.hot_skus for sku in hot}
    for sku in hot[: args.hot_units % args.hot_skus]:
        stock[sku] += 1
    catalogue = [f"CAT-{i:05d}" for i in range(args.catalogue)]
    stock |= {sku: rng.randint(10, 60) for sku in catalogue}
    # N Poisson arrivals conditioned on falling in the burst are N sorted uniform times.
    times = sorted(rng.uniform(0, args.burst_seconds) for _ in range(args.attempts))
    mix = [CHANNELS[c][1] for c in channels]
    arrivals = []
    for t in times:
        channel = rng.choices(channels, mix)[0]
        sku = rng.choice(hot) if rng.random() < 0.9 or not catalogue else rng.choice(catalogue)
        arrivals.append((t, channel, sku))
    return Scenario(stock, hot, arrivals)


def last_units_scenario(args: argparse.Namespace, seed: int, channels: list[str]) -> Scenario:
    """SKUs whose last few units are bought on every channel within a few milliseconds.

    Half of them start with 1 to 5 units; the other half with 6 to 15, sold down one purchase at a
    time (a second or two apart, on any channel) until 1 to 4 are left. Then, at a moment of its
    own, every channel tries to buy every remaining unit of the SKU within ``RACE_MS``: no
    propagation is fast enough for that, only units split beforehand stop a second sale.
    """
    rng = random.Random(seed)
    race = [f"LAST-{i + 1:02d}" for i in range(args.last_skus)]
    catalogue = [f"CAT-{i:05d}" for i in range(args.catalogue)]
    stock = {sku: rng.randint(10, 60) for sku in catalogue}
    mix = [CHANNELS[c][1] for c in channels]
    arrivals: list[tuple[float, str, str]] = []
    for i, sku in enumerate(race):
        sell_down = i % 2 == 1
        units = rng.randint(6, 15) if sell_down else rng.randint(1, 5)
        stock[sku] = units
        left = units
        t = rng.uniform(0, args.burst_seconds * 0.3)
        if sell_down:
            left = rng.randint(1, 4)
            for _ in range(units - left):
                t += rng.uniform(1.0, 2.0)
                arrivals.append((t, rng.choices(channels, mix)[0], sku))
        t = min(args.burst_seconds, t + rng.uniform(2.0, 5.0))
        for channel in channels:
            for _ in range(left):
                arrivals.append((t + rng.uniform(0, RACE_MS / 1000), channel, sku))
    # Some ordinary demand on the catalogue around it.
    for _ in range(args.attempts // 10 if catalogue else 0):
        arrivals.append(
            (rng.uniform(0, args.burst_seconds), rng.choices(channels, mix)[0], rng.choice(catalogue))
        )
    return Scenario(stock, race, sorted(arrivals))


# ---------------------------------------------------------------------------- ground truth


@dataclass
class Truth:
    """Every purchase decision, counted at the instant the channel sandbox makes it."""

    initial: dict[str, int]
    sold: Counter[str] = field(default_factory=Counter)
    sold_by_channel: Counter[tuple[str, str]] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_with_stock: Counter[str] = field(default_factory=Counter)
    other: Counter[int] = field(default_factory=Counter)
    # (wall-clock time, channel, sku, status) of every attempt, for --keep-logs.
    timeline: list[tuple[float, str, str, int]] = field(default_factory=list)

    def record(self, channel: str, sku: str, status: int) -> None:
        self.timeline.append((time.time(), channel, sku, status))
        self.attempts[sku] += 1
        if status == 201:
            self.sold[sku] += 1
            self.sold_by_channel[(channel, sku)] += 1
        elif status == 409:
            self.refused[sku] += 1
            if self.initial.get(sku, 0) - self.sold[sku] > 0:
                self.refused_with_stock[sku] += 1
        else:
            self.other[status] += 1


class Tally:
    """ASGI wrapper around a channel sandbox: sees each purchase's status before anyone else runs."""

    def __init__(self, app: ASGIApp, channel: str, truth: Truth):
        self.app, self.channel, self.truth = app, channel, truth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/_sandbox/purchase":
            await self.app(scope, receive, send)
            return
        sku = dict(scope["headers"]).get(SKU_HEADER.encode(), b"").decode()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.truth.record(self.channel, sku, message["status"])
            await send(message)

        await self.app(scope, receive, watch)


# ---------------------------------------------------------------------------- sandboxes


def available_channels() -> tuple[list[str], list[str]]:
    """The channels whose sandbox and connector this checkout has; and notes on any missing."""
    present, notes = [], []
    for name, (kind, *_rest) in CHANNELS.items():
        try:
            _sandbox_factory(kind)
            parse_config(_config_dict(1, 2, {name: 3}, {}, "sqlite:///x.db", None), env=CRED)
        except Exception as exc:
            notes.append(f"{name} ({kind}) left out: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        present.append(name)
    return present, notes


def _sandbox_factory(kind: str) -> Callable[..., ASGIApp]:
    if kind == "woocommerce":
        from connectors.woocommerce.sandbox import create_app as woo

        return lambda url, faults, seed: woo(
            consumer_key=CRED["SYNCD_BENCH_WC_KEY"],
            consumer_secret=CRED["SYNCD_BENCH_WC_SECRET"],
            webhook_url=url,
            webhook_secret=CRED["SYNCD_BENCH_WC_HOOK"],
            faults=faults,
            seed=seed,
        )
    if kind == "shopify":
        from connectors.shopify.sandbox import create_app as shopify

        return lambda url, faults, seed: shopify(
            access_token=CRED["SYNCD_BENCH_SHOPIFY_TOKEN"],
            webhook_url=url,
            webhook_secret=CRED["SYNCD_BENCH_SHOPIFY_HOOK"],
            faults=faults,
            seed=seed,
        )
    if kind == "tiktok_shop":
        from connectors.tiktok_shop.sandbox import create_app as tiktok

        return lambda url, faults, seed: tiktok(
            app_key=CRED["SYNCD_BENCH_TTS_KEY"],
            app_secret=CRED["SYNCD_BENCH_TTS_SECRET"],
            access_token=CRED["SYNCD_BENCH_TTS_ACCESS"],
            refresh_token=CRED["SYNCD_BENCH_TTS_REFRESH"],
            shop_cipher=CRED["SYNCD_BENCH_TTS_CIPHER"],
            webhook_url=url,
            faults=faults,
            seed=seed,
        )
    raise ValueError(kind)


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with _listening_socket() as sock:
        return int(sock.getsockname()[1])


class Servers:
    """Sandboxes served by uvicorn on loopback in this event loop."""

    def __init__(self) -> None:
        self.running: list[tuple[QuietServer, asyncio.Task[None]]] = []

    async def start(self, app: ASGIApp) -> str:
        sock = _listening_socket()
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=30)
        server = QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise OSError(f"a sandbox could not start on port {port}")
            await asyncio.sleep(0.02)
        self.running.append((server, task))
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for server, _ in self.running:
            server.should_exit = True
        for _, task in self.running:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=15)
        self.running.clear()


# ---------------------------------------------------------------------------- config


def _config_dict(
    daemon_port: int,
    erp_port: int,
    channel_ports: dict[str, int],
    schedule: dict[str, str],
    database_url: str,
    threshold: int | str | None,
    log_level: str = "info",
    rate_limits: dict[str, float] | None = None,
    weights: bool = False,
) -> dict[str, Any]:
    """The daemon's config: the shipped defaults for stock and channel policies unless the
    benchmark was asked for a threshold (``threshold``) or traffic weights (``weights``)."""
    base = "http://127.0.0.1:{}"
    entries: list[dict[str, Any]] = []
    for name, port in channel_ports.items():
        kind, _share, weight, _latency = CHANNELS[name]
        entry: dict[str, Any] = {"name": name, "type": kind}
        if weights:
            entry["policy"] = {"weight": weight}
        if kind == "woocommerce":
            entry |= {
                "base_url": base.format(port),
                "consumer_key": "${SYNCD_BENCH_WC_KEY}",
                "consumer_secret": "${SYNCD_BENCH_WC_SECRET}",
                "webhook_secret": "${SYNCD_BENCH_WC_HOOK}",
            }
        elif kind == "shopify":
            entry |= {
                "base_url": base.format(port),
                "access_token": "${SYNCD_BENCH_SHOPIFY_TOKEN}",
                "webhook_secret": "${SYNCD_BENCH_SHOPIFY_HOOK}",
            }
        else:
            entry |= {
                "base_url": base.format(port),
                "auth_base_url": base.format(port),
                "app_key": "${SYNCD_BENCH_TTS_KEY}",
                "app_secret": "${SYNCD_BENCH_TTS_SECRET}",
                "access_token": "${SYNCD_BENCH_TTS_ACCESS}",
                "refresh_token": "${SYNCD_BENCH_TTS_REFRESH}",
                "shop_cipher": "${SYNCD_BENCH_TTS_CIPHER}",
            }
        if rate_limits and name in rate_limits:
            entry["rate_limit"] = rate_limits[name]
        entries.append(entry)
    config: dict[str, Any] = {
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": daemon_port},
        "schedule": schedule,
        "erp": {"type": "mock_erp", "base_url": base.format(erp_port), "api_key": "${SYNCD_BENCH_ERP_KEY}"},
        "channels": entries,
        "logging": {"level": log_level, "format": "json"},
    }
    if threshold is not None:
        config["stock"] = {"low_stock_threshold": threshold}
    return config


def _bling_sandbox(daemon_port: int | None, seed: int) -> ASGIApp:
    """The Bling sandbox at Bling's own limit (3 requests a second per account), with the mock
    ERP's API latency; its signed stock webhooks go to the daemon's /webhooks/erp when given."""
    from connectors.bling.sandbox import create_app as bling_app
    from connectors.bling.sandbox_webhooks import BlingFaults

    return bling_app(
        client_id=BLING_CRED["SYNCD_BENCH_BLING_ID"],
        client_secret=BLING_CRED["SYNCD_BENCH_BLING_SECRET"],
        webhook_url=f"http://127.0.0.1:{daemon_port}/webhooks/erp" if daemon_port else None,
        faults=BlingFaults(latency_ms=ERP_LATENCY_MS),
        seed=seed,
    )


def _bling_erp(url: str) -> dict[str, Any]:
    """The daemon's Bling settings: the connector's defaults (its share of the account's budget
    included), sales recorded as sales orders."""
    return {
        "type": "bling",
        "base_url": url,
        "authorize_url": f"{url}/oauth/authorize",
        "client_id": "${SYNCD_BENCH_BLING_ID}",
        "client_secret": "${SYNCD_BENCH_BLING_SECRET}",
        "contact_id": 1,
    }


async def _authorise_bling(config: dict[str, Any], path: Path) -> None:
    """The seller's consent and the first tokens in the daemon's ledger, as ``syncd demo --erp bling``."""
    from syncd.demo import authorise_demo_bling

    await authorise_demo_bling(parse_config(config, str(path), env={**CRED, **BLING_CRED}))


def schedule_for(scale: float) -> dict[str, str]:
    """syncd's default poll and reconcile intervals, compressed by the time scale."""
    return {
        "order_poll_interval": f"{45 / scale:g}s",
        "erp_poll_interval": f"{60 / scale:g}s",
        "reconcile_interval": f"{300 / scale:g}s",
    }


# ---------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the benchmark dies, so nothing outlives a killed run."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A subprocess with its output in a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT):
        self.log = log
        self.handle = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )

    def usage(self) -> dict[str, float | None]:
        """CPU seconds (user + system) and peak RSS so far, from /proc."""
        pid = self.popen.pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            status = Path(f"/proc/{pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            rss_mb = int(hwm.split()[1]) / 1024
        except (OSError, StopIteration, IndexError, ValueError):
            return {"cpu_seconds": None, "peak_rss_mb": None}
        return {"cpu_seconds": round(cpu, 2), "peak_rss_mb": round(rss_mb, 1)}

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.handle.close()
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def wait_until(check: Callable[[], Awaitable[Any]], limit: float, what: str, child: Child) -> Any:
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{what}: the process exited ({child.popen.returncode}):\n{child.tail()}")
        try:
            last = await check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        await asyncio.sleep(0.5)
    raise TimeoutError(f"timed out after {limit:.0f} s waiting for {what} (last: {str(last)[:300]})")


# ---------------------------------------------------------------------------- one run


async def run_once(args: argparse.Namespace, mode: str, seed: int, channels: list[str]) -> dict[str, Any]:
    scenario = make_scenario(args, seed, channels)
    truth = Truth(dict(scenario.stock))
    servers = Servers()
    child: Child | None = None
    daemon: httpx.AsyncClient | None = None
    webhooks = mode == "syncd"
    daemon_port = free_port()
    with tempfile.TemporaryDirectory(prefix="flash-sale-") as tmp:
        try:
            if args.erp == "bling":
                erp_url = await servers.start(_bling_sandbox(daemon_port if webhooks else None, seed))
            else:
                erp_faults = Faults(latency_ms=ERP_LATENCY_MS)
                from connectors.mock_erp.sandbox import create_app as erp_app

                erp_url = await servers.start(
                    erp_app(
                        api_key=CRED["SYNCD_BENCH_ERP_KEY"],
                        db_path=f"{tmp}/erp.db",
                        faults=erp_faults,
                        seed=seed,
                    )
                )
            urls: dict[str, str] = {}
            for i, name in enumerate(channels):
                kind, _share, _weight, latency = CHANNELS[name]
                faults = Faults(latency_ms=latency, **WEBHOOK_FAULTS)
                hook_url = f"http://127.0.0.1:{daemon_port}/webhooks/{name}" if webhooks else None
                app = _sandbox_factory(kind)(hook_url, faults, seed * 100 + i)
                urls[name] = await servers.start(Tally(app, name, truth))
            async with contextlib.AsyncExitStack() as stack:
                clients = {
                    name: await stack.enter_async_context(
                        httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=200))
                    )
                    for name, url in {"erp": erp_url, **urls}.items()
                }
                items = [{"sku": sku, "quantity": qty} for sku, qty in scenario.stock.items()]
                if args.erp == "bling":
                    # Bling's webhooks of the seeded stock would find no daemon yet: none are sent.
                    await clients["erp"].post("/_sandbox/faults", json={"webhook_drop_rate": 1.0})
                for client in clients.values():
                    (await client.post("/_sandbox/seed", json={"items": items})).raise_for_status()
                if args.erp == "bling":
                    await clients["erp"].post("/_sandbox/faults", json={"webhook_drop_rate": 0.0})

                config = _config_dict(
                    daemon_port,
                    httpx.URL(erp_url).port or 0,
                    {n: httpx.URL(u).port or 0 for n, u in urls.items()},
                    schedule_for(args.time_scale),
                    f"sqlite:///{tmp}/syncd.db",
                    args.threshold,
                    args.log_level,
                    args.rate_limit,
                    args.weights,
                )
                config_path = Path(tmp) / "syncd.yaml"
                if args.erp == "bling":
                    config["erp"] = _bling_erp(erp_url)
                config_path.write_text(yaml.safe_dump(config, sort_keys=False))
                daemon_root = args.daemon_root or ROOT
                env = {**os.environ, **CRED, "PYTHONPATH": str(daemon_root), "PYTHONUNBUFFERED": "1"}
                if args.erp == "bling":
                    env |= BLING_CRED
                    await _authorise_bling(config, config_path)
                started = time.monotonic()
                if mode == "naive":
                    argv = [
                        sys.executable,
                        str(ROOT / "bench" / "naive_sync.py"),
                        "--config",
                        str(config_path),
                        "--interval",
                        f"{args.naive_interval / args.time_scale:g}",
                        "--max-runtime",
                        str(args.burst_seconds + 600),
                    ]
                    log_path = Path(tmp) / "naive.log"
                    child = Child(argv, log_path, env)
                    await wait_until(
                        lambda: _naive_cycles(log_path), args.ready_timeout, "the first push", child
                    )
                else:
                    argv = [sys.executable, "-m", "syncd.cli", "run", "--config", str(config_path)]
                    child = Child(argv, Path(tmp) / "syncd.log", env, cwd=daemon_root)
                    daemon = await stack.enter_async_context(
                        httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon_port}", timeout=30)
                    )
                    await wait_until(
                        lambda: _reconciled(daemon), args.ready_timeout, "the first reconcile", child
                    )
                if mode == "naive":
                    expected = {c: dict(scenario.stock) for c in channels}
                    await wait_until(
                        lambda: _at_targets(clients, expected),
                        args.ready_timeout,
                        "channels at target",
                        child,
                    )
                else:
                    await wait_until(
                        _steady(clients, channels, daemon), args.ready_timeout, "channels steady", child
                    )
                ready_seconds = time.monotonic() - started
                usage_before = child.usage()

                burst = await shoppers(clients, scenario.arrivals, args.time_scale)
                settle = await _settle(args, child, daemon)
                usage = child.usage()
                status = (await daemon.get("/api/status")).json() if daemon is not None else None
                stats = {n: (await c.get("/_sandbox/stats")).json() for n, c in clients.items()}
                listings = {n: (await clients[n].get("/_sandbox/listings")).json() for n in channels}
        finally:
            # Requests cut off by the stop are expected; the sandboxes' tracebacks for them are noise.
            uvicorn_errors = logging.getLogger("uvicorn.error")
            level = uvicorn_errors.level
            uvicorn_errors.setLevel(logging.CRITICAL)
            try:
                if child is not None:
                    child.stop()
                await servers.stop()
            finally:
                uvicorn_errors.setLevel(level)
        log_events = _log_events(child.log) if child is not None else {}
        if child is not None and args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(child.log, args.keep_logs / f"{mode}-seed{seed}.log")
            (args.keep_logs / f"{mode}-seed{seed}.yaml").write_text((Path(tmp) / "syncd.yaml").read_text())
        if args.keep_logs is not None:
            # The shoppers' side, to set beside the daemon's log: one JSON line per purchase attempt.
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            with (args.keep_logs / f"{mode}-seed{seed}-purchases.jsonl").open("w") as out:
                for at, name, sku, code in truth.timeline:
                    out.write(json.dumps({"time": at, "channel": name, "sku": sku, "status": code}) + "\n")
    return _metrics(
        scenario,
        truth,
        channels,
        status=status,
        stats=stats,
        listings=listings,
        usage=usage,
        usage_before=usage_before,
        extra={
            "seed": seed,
            "mode": mode,
            "ready_seconds": round(ready_seconds, 1),
            **burst,
            **settle,
            "process_log_events": log_events,
        },
    )


async def _naive_cycles(log: Path) -> int:
    text = await asyncio.to_thread(log.read_text, errors="replace")
    return sum(1 for line in text.splitlines() if '"naive.cycle"' in line)


async def _reconciled(daemon: httpx.AsyncClient) -> bool:
    status = (await daemon.get("/api/status")).json()
    runs = [r for r in status.get("runs", []) if r["kind"] == "reconcile" and r["finished_at"]]
    if runs and runs[0]["error"]:
        raise RuntimeError(f"the first reconcile failed: {runs[0]['error']}")
    return bool(runs) and status.get("ledger", {}).get("pushes_pending", 1) == 0


def _steady(
    clients: dict[str, httpx.AsyncClient], channels: list[str], daemon: httpx.AsyncClient | None
) -> Callable[[], Awaitable[bool]]:
    """A check that is true once the daemon's outbox is empty and every channel showed the same
    quantities twice in a row, half a second apart: the daemon brought them to its own targets,
    whatever its defaults are (the baseline's may differ from this checkout's)."""
    last: list[Any] = [None]

    async def check() -> bool:
        if daemon is not None:
            status = (await daemon.get("/api/status")).json()
            if status.get("ledger", {}).get("pushes_pending", 1) != 0:
                return False
        shown = {c: (await clients[c].get("/_sandbox/listings")).json() for c in channels}
        steady = shown == last[0]
        last[0] = shown
        return steady

    return check


async def _at_targets(
    clients: dict[str, httpx.AsyncClient], expected: dict[str, dict[str, int]]
) -> str | bool:
    off = 0
    for channel, targets in expected.items():
        shown = {
            row["sku"]: row["quantity"] for row in (await clients[channel].get("/_sandbox/listings")).json()
        }
        off += sum(1 for sku, target in targets.items() if shown.get(sku) != target)
    return True if off == 0 else False


async def shoppers(
    clients: dict[str, httpx.AsyncClient], arrivals: list[tuple[float, str, str]], scale: float
) -> dict[str, Any]:
    """Send each purchase attempt at its arrival time, without waiting for earlier ones."""
    tasks: list[asyncio.Task[int]] = []
    lag = 0.0

    async def buy(channel: str, sku: str) -> int:
        try:
            response = await clients[channel].post(
                "/_sandbox/purchase", json={"sku": sku, "quantity": 1}, headers={SKU_HEADER: sku}
            )
        except httpx.HTTPError:
            return -1
        return response.status_code

    start = time.monotonic()
    for at, channel, sku in arrivals:
        delay = start + at / scale - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = max(lag, -delay)
        tasks.append(asyncio.create_task(buy(channel, sku)))
    done, pending = await asyncio.wait(tasks, timeout=60) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    codes = Counter(t.result() for t in done)
    return {
        "burst_wall_seconds": round(time.monotonic() - start, 1),
        "max_arrival_lag_seconds": round(lag, 3),
        "purchase_transport_errors": codes.get(-1, 0) + len(pending),
    }


async def _settle(args: argparse.Namespace, child: Child, daemon: httpx.AsyncClient | None) -> dict[str, Any]:
    """Wait the settle period, then (syncd) until its outbox is empty, at most 60 s more."""
    await asyncio.sleep(args.settle)
    drained = None
    if daemon is not None:

        async def empty() -> bool:
            status = (await daemon.get("/api/status")).json()
            return status.get("ledger", {}).get("pushes_pending", 1) == 0

        try:
            await wait_until(empty, 60, "the outbox to drain", child)
            drained = True
        except TimeoutError:
            drained = False
    return {"outbox_drained_after_settle": drained}


def _log_events(path: Path) -> dict[str, int]:
    """How often each structured event appears in the process log (a rough trace of what it did)."""
    events: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("event"), str):
                events[record["event"]] += 1
    return dict(events.most_common(25))


# ---------------------------------------------------------------------------- metrics


def _metrics(
    scenario: Scenario,
    truth: Truth,
    channels: list[str],
    *,
    status: dict[str, Any] | None,
    stats: dict[str, Any],
    listings: dict[str, Any],
    usage: dict[str, float | None],
    usage_before: dict[str, float | None],
    extra: dict[str, Any],
) -> dict[str, Any]:
    stock = scenario.stock
    oversold = {sku: max(0, truth.sold[sku] - stock[sku]) for sku in truth.sold}
    left = {
        sku: max(0, stock[sku] - truth.sold[sku])
        for sku in truth.attempts
        if truth.attempts[sku] > stock[sku]
    }
    refusals = sum(truth.refused_with_stock.values())
    hot_units = sum(stock[s] for s in scenario.hot)
    hot_sold = sum(min(truth.sold[s], stock[s]) for s in scenario.hot)
    propagation = (status or {}).get("propagation_seconds") or {}
    cpu, cpu_before = usage.get("cpu_seconds"), usage_before.get("cpu_seconds")
    calls = {name: int(s.get("calls", {}).get("total", 0)) for name, s in stats.items()}
    return {
        **{k: v for k, v in extra.items() if k in ("mode", "seed")},
        "attempts": sum(truth.attempts.values()),
        "units_sold": sum(truth.sold.values()),
        "oversold_units": sum(oversold.values()),
        "undersold_units": refusals + sum(left.values()),
        "undersold_refusals_with_stock": refusals,
        "undersold_units_left": sum(left.values()),
        "refused": sum(truth.refused.values()),
        "hot_sell_through": round(hot_sold / hot_units, 4) if hot_units else None,
        "propagation_p50_seconds": propagation.get("p50"),
        "propagation_p95_seconds": propagation.get("p95"),
        "propagation_p99_seconds": propagation.get("p99"),
        "propagation_samples": propagation.get("samples"),
        "api_calls": {n: calls[n] for n in channels},
        "api_calls_channels_total": sum(calls[n] for n in channels),
        "api_calls_by_endpoint": {n: _by_endpoint(stats[n].get("calls", {})) for n in channels},
        "api_calls_erp": calls.get("erp", 0),
        "process_cpu_seconds": cpu,
        "process_burst_cpu_seconds": round(cpu - cpu_before, 2)
        if cpu is not None and cpu_before is not None
        else None,
        "process_peak_rss_mb": usage.get("peak_rss_mb"),
        "unexpected_purchase_statuses": {str(k): v for k, v in truth.other.items()},
        "hot_skus": {
            sku: {
                "stock": stock[sku],
                "sold": truth.sold[sku],
                "sold_by_channel": {c: truth.sold_by_channel[(c, sku)] for c in channels},
                "refused_with_stock": truth.refused_with_stock[sku],
                "shown_at_end": {
                    c: next((r["quantity"] for r in listings[c] if r["sku"] == sku), None) for c in channels
                },
            }
            for sku in scenario.hot
        },
        "oversold_skus": {sku: n for sku, n in oversold.items() if n},
        **{k: v for k, v in extra.items() if k not in ("mode", "seed")},
        "daemon_low_stock_at_end": (status or {}).get("low_stock"),
    }


TABLE_ROWS: list[tuple[str, str, str]] = [
    ("units_sold", "Units sold", "{:.0f}"),
    ("oversold_units", "**Oversold units**", "{:.0f}"),
    ("undersold_units", "Undersold units", "{:.0f}"),
    ("hot_sell_through", "Hot-stock sell-through", "{:.0%}"),
    ("propagation_p50_seconds", "Propagation p50 (s)", "{:.2f}"),
    ("propagation_p95_seconds", "Propagation p95 (s)", "{:.2f}"),
    ("propagation_p99_seconds", "Propagation p99 (s)", "{:.2f}"),
    ("api_calls_channels_total", "Channel API calls", "{:.0f}"),
    ("api_calls_erp", "ERP API calls", "{:.0f}"),
    ("process_cpu_seconds", "Process CPU (s)", "{:.1f}"),
    ("process_peak_rss_mb", "Peak RSS (MB)", "{:.0f}"),
]


def _by_endpoint(calls: dict[str, int]) -> dict[str, int]:
    """A sandbox's call counts by endpoint, ids in paths folded into ``{id}`` (API versions such
    as TikTok Shop's ``202309`` kept)."""
    folded: Counter[str] = Counter()
    for key, count in calls.items():
        if key != "total":
            folded[re.sub(r"/(?!20\d{4}(?:/|$))\d+(?=/|$)", "/{id}", key)] += count
    return dict(folded.most_common())


def spread(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """min/median/max over seeds of every numeric metric (None where a mode has no value)."""
    out: dict[str, dict[str, float | None]] = {}
    keys = [
        k for k, v in runs[0].items() if (isinstance(v, int | float) and not isinstance(v, bool)) or v is None
    ]
    for key in keys:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if key in ("seed",):
            continue
        out[key] = (
            {"min": min(values), "median": statistics.median(values), "max": max(values)}
            if values
            else {"min": None, "median": None, "max": None}
        )
    for channel in runs[0]["api_calls"]:
        values = [r["api_calls"][channel] for r in runs]
        out[f"api_calls.{channel}"] = {
            "min": min(values),
            "median": statistics.median(values),
            "max": max(values),
        }
    return out


def table(summary: dict[str, dict[str, dict[str, float | None]]], command: str, seeds: list[int]) -> str:
    modes = list(summary)
    lines = [
        "| Metric | " + " | ".join(f"`{m}`" for m in modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for key, label, fmt in TABLE_ROWS:
        cells = []
        for mode in modes:
            s = summary[mode].get(key)
            if s is None or s["median"] is None:
                cells.append("n/a")
                continue
            med, low, high = (fmt.format(s[k]) for k in ("median", "min", "max"))
            cells.append(med if low == high else f"{med} ({low}-{high})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Median (min-max) over seeds {', '.join(map(str, seeds))}. Command: `{command}`")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def _rate_limit(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in CHANNELS:
        raise argparse.ArgumentTypeError(f"unknown channel {name!r} (one of {', '.join(CHANNELS)})")
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the rate must be a positive number of requests per second"
        )
    return name, rate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--attempts", type=int, default=3000, help="purchase attempts in the burst")
    parser.add_argument("--duration", type=float, default=60.0, help="burst length in scenario seconds")
    parser.add_argument("--hot-skus", type=int, default=3)
    parser.add_argument("--hot-units", type=int, default=300, help="ERP stock of the hot SKUs, in total")
    parser.add_argument("--catalogue", type=int, default=1000, help="other SKUs (moderate stock)")
    parser.add_argument(
        "--scenario",
        choices=["flash", "last-units"],
        default="flash",
        help="flash: a burst on a few hot SKUs; last-units: every channel buys the last units of "
        "several SKUs within a few milliseconds",
    )
    parser.add_argument("--last-skus", type=int, default=20, help="last-units: SKUs raced for")
    parser.add_argument(
        "--threshold",
        default=None,
        help="a low-stock threshold (a number or auto) instead of the daemon's shipped default",
    )
    parser.add_argument(
        "--weights",
        action="store_true",
        help="give channels low-stock weights by their share of shoppers (default: shipped policies)",
    )
    parser.add_argument(
        "--daemon-root",
        type=Path,
        default=None,
        help="run the daemon from this checkout (say, a worktree of an older commit) to compare",
    )
    parser.add_argument("--naive-interval", type=float, default=60.0, help="seconds between naive pushes")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="compress the scenario clock: burst and every poll/push interval are divided by this "
        "(API latency and webhook delays are not)",
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the burst")
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep-logs", type=Path, help="copy each run's process log and config here")
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        action="append",
        metavar="CHANNEL=RPS",
        help="a channel connector's requests per second instead of its default (syncd and naive alike)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info"], help="the daemon's (debug: every plan)"
    )
    parser.add_argument(
        "--erp",
        choices=["mock", "bling"],
        default="mock",
        help="the ERP sandbox: mock, or bling (at Bling's 3 requests a second; syncd modes only)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        # The default scenario shrunk tenfold in attempts and hot units, so demand still outruns stock.
        args.seeds, args.attempts, args.duration, args.catalogue, args.hot_units = "1", 300, 10.0, 200, 30
    if args.threshold is not None and args.threshold != "auto":
        try:
            args.threshold = int(args.threshold)
        except ValueError:
            parser.error(f"--threshold must be a whole number or auto, not {args.threshold!r}")
    args.burst_seconds = args.duration
    args.rate_limit = dict(args.rate_limit or [])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"unknown mode(s) {sorted(unknown)}; known: {', '.join(MODES)}")
    if args.hot_skus < 1 or args.attempts < 0 or args.time_scale <= 0:
        parser.error("--hot-skus must be >= 1, --attempts >= 0, --time-scale > 0")
    if args.erp == "bling" and "naive" in modes:
        parser.error("--erp bling runs the syncd modes only (bench/naive_sync.py keeps no Bling tokens)")
    args.mode_list = modes
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    channels, notes = available_channels()
    if not channels:
        raise SystemExit("no channel sandbox is available")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.mode_list}
    for seed in args.seed_list:
        for mode in args.mode_list:
            print(f"flash-sale: mode {mode}, seed {seed} ...", file=sys.stderr, flush=True)
            result = await run_once(args, mode, seed, channels)
            runs[mode].append(result)
            print(
                f"  sold {result['units_sold']}, oversold {result['oversold_units']}, "
                f"undersold {result['undersold_units']}, p95 {result['propagation_p95_seconds']}",
                file=sys.stderr,
                flush=True,
            )
    summary = {mode: spread(results) for mode, results in runs.items()}
    command = "python bench/flash_sale.py " + shlex.join(sys.argv[1:])
    share = sum(CHANNELS[c][1] for c in channels)
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "command": command.strip(),
        "parameters": {
            "modes": args.mode_list,
            "seeds": args.seed_list,
            "attempts": args.attempts,
            "duration_seconds": args.duration,
            "hot_skus": args.hot_skus,
            "hot_units": args.hot_units,
            "catalogue": args.catalogue,
            "catalogue_stock": "uniform 10..60 per SKU",
            "demand": "90% of attempts on the hot SKUs (uniformly), 10% on the catalogue; quantity 1",
            "scenario": args.scenario,
            "last_skus": args.last_skus if args.scenario == "last-units" else None,
            "race_ms": RACE_MS if args.scenario == "last-units" else None,
            "threshold": "shipped default" if args.threshold is None else args.threshold,
            "weights": "by shopper share" if args.weights else "shipped default",
            "daemon_root": str(args.daemon_root or ROOT),
            "daemon_commit": _commit(args.daemon_root or ROOT),
            "naive_interval_seconds": args.naive_interval,
            "naive_note": "bench/naive_sync.py: fixed-rate cycles from its start (the first before the "
            "burst); each reads the ERP and writes on-hand to every listing that differs, no compare value",
            "time_scale": args.time_scale,
            "time_scale_note": "burst, syncd poll/reconcile intervals and the naive interval divided by "
            "the time scale; API latency, webhook delays and push debounce are not",
            "settle_seconds": args.settle,
            "channels": {
                c: {
                    "type": CHANNELS[c][0],
                    "shopper_share": round(CHANNELS[c][1] / share, 4),
                    "low_stock_weight": CHANNELS[c][2],
                    "api_latency_ms": CHANNELS[c][3],
                }
                for c in channels
            },
            "erp_api_latency_ms": ERP_LATENCY_MS,
            **(
                {
                    "erp": "bling sandbox: 3 requests/s per account; syncd's connector defaults "
                    "(budget_share 0.5: 1.5 requests/s), sales recorded as sales orders; "
                    "signed stock webhooks to /webhooks/erp in mode syncd"
                }
                if args.erp == "bling"
                else {}
            ),
            "webhook_faults": WEBHOOK_FAULTS,
            "schedule": schedule_for(args.time_scale),
            "connector_rate_limits": {c: args.rate_limit.get(c, "connector default") for c in channels},
        },
        "channels_missing": notes,
        "definitions": {
            "oversold_units": "per SKU max(0, units sold on all channels - ERP's initial stock), summed",
            "undersold_units": "purchases refused (409) while initial stock - units sold so far > 0, "
            "plus units left unsold of SKUs whose attempts exceeded their stock",
            "hot_sell_through": "sum over hot SKUs of min(sold, stock) / hot units",
            "propagation": "the daemon's /api/status propagation_seconds: ingestion of a sale (after "
            "webhook delivery or poll) until every channel acknowledged; not measured for naive",
            "process_cpu_seconds": "user+system CPU of the daemon or naive process, start to end",
        },
        "summary": summary,
        "runs": runs,
        "table_markdown": table(summary, command.strip(), args.seed_list),
    }


def _commit(root: Path) -> str | None:
    """The commit the daemon ran from (and whether its tree had changes), for the record."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' with changes' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", "console")
    # SIGTERM unwinds like Ctrl-C, so every run's finally stops its subprocess and sandboxes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = asyncio.run(bench(args))
    print(results["table_markdown"])
    if results["channels_missing"]:
        print("\nChannels left out: " + "; ".join(results["channels_missing"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
