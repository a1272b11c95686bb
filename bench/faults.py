"""Benchmark: the daemon through crashes, outages, throttling, a full disk and a second replica.

Each fault of issue 12's table runs as a scenario on ``bench/harness.py``'s rig: sandboxes on
loopback, the daemon as a real process, shoppers buying 60 SKUs (five hot) on three channels while
the fault happens; then the system is left to settle and the ledger, the ERP and the channels are
read. Run ``python bench/faults.py --seeds 1,2,3 --json bench/results/faults.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import API_LATENCY_MS, CHANNEL_NAMES, DEFINITIONS, ROOT, Daemon, Rig, free_port


@dataclass(frozen=True)
class Phases:
    """How long each part of a run lasts, in seconds, how busy the shoppers are, and the daemon's
    poll and reconcile intervals (compressed alike, so that a run settles within minutes)."""

    sales: float
    rate: float  # purchases per second
    fault: float  # how long an outage, a storm or a full disk lasts
    down: float  # how long the daemon stays down before its killed start-up
    random_kills: int
    short_kills: int
    settle: float  # the most a run waits for the system to settle after the fault
    hot_stock: tuple[int, int]  # units of each hot SKU, low and high
    schedule: dict[str, str]
    short: bool = False

    @classmethod
    def full(cls) -> Phases:
        schedule = {"order_poll_interval": "5s", "erp_poll_interval": "10s", "reconcile_interval": "30s"}
        return cls(30, 5, 12, 15, 4, 8, 60, (8, 20), schedule)

    @classmethod
    def quick(cls) -> Phases:
        schedule = {"order_poll_interval": "5s", "erp_poll_interval": "5s", "reconcile_interval": "20s"}
        return cls(10, 6, 8, 5, 2, 3, 20, (3, 8), schedule, short=True)


@dataclass
class Run:
    rig: Rig
    rng: random.Random
    phases: Phases
    primary: Daemon
    started: float  # monotonic time the shoppers started


Inject = Callable[[Run], Awaitable[None]]


async def _until(run: Run, at: float) -> None:
    await asyncio.sleep(max(0.0, run.started + at - time.monotonic()))


async def no_fault(run: Run) -> None:
    """Nothing breaks: the baseline the other rows are read against."""


async def kill_at_random(run: Run) -> None:
    """SIGKILLs at random moments of the sales, each restart a second or two later."""
    moments = sorted(run.rng.uniform(1, run.phases.sales - 3) for _ in range(run.phases.random_kills))
    for at in moments:
        await _until(run, at)
        run.primary.kill()
        await asyncio.sleep(run.rng.uniform(0.2, 2.0))
        run.primary.start()


async def kill_at_short_intervals(run: Run) -> None:
    """SIGKILLs each 0.5 to 3 s after the previous start: the daemon rarely finishes starting."""
    await _until(run, 1)
    for _ in range(run.phases.short_kills):
        await asyncio.sleep(run.rng.uniform(0.5, 3.0))
        run.primary.kill()
        await asyncio.sleep(run.rng.uniform(0.1, 0.5))
        run.primary.start()


async def down_then_killed_in_startup(run: Run) -> None:
    """Down a while (sales go on), then killed 3 s into its start-up, while the web store is slow."""
    await _until(run, run.rng.uniform(1, 3))
    run.primary.kill()
    await run.rig.set_faults("web", latency_ms=3000)
    await asyncio.sleep(run.phases.down)
    run.primary.start()
    await asyncio.sleep(3)
    run.primary.kill()
    await asyncio.sleep(0.5)
    run.primary.start()
    await _until(run, run.phases.sales)
    await run.rig.set_faults("web", latency_ms=API_LATENCY_MS["web"])


async def dead_then_timing_out(run: Run) -> None:
    """TikTok Shop answers 5xx to every call, then the web store times out on every call."""
    await _until(run, run.rng.uniform(1, 4))
    await run.rig.set_faults("tiktok", error_rate=1.0)
    await asyncio.sleep(run.phases.fault)
    await run.rig.set_faults("tiktok", error_rate=0.0)
    await run.rig.set_faults("web", latency_ms=40_000)  # beyond the connector's 30 s timeout
    await asyncio.sleep(run.phases.fault)
    await run.rig.set_faults("web", latency_ms=API_LATENCY_MS["web"])


async def erp_stopped(run: Run) -> None:
    """The ERP's server stops (connections refused), then comes back on its port with its data."""
    await _until(run, run.rng.uniform(1, 4))
    await run.rig.servers["erp"].stop()
    await asyncio.sleep(run.phases.fault)
    await run.rig.start_erp()


async def every_channel_throttling(run: Run) -> None:
    """Every channel answers 429 (Retry-After 1) to nine calls in ten."""
    await _until(run, run.rng.uniform(1, 4))
    for name in CHANNEL_NAMES:
        await run.rig.set_faults(name, throttle_rate=0.9)
    await asyncio.sleep(run.phases.fault)
    for name in CHANNEL_NAMES:
        await run.rig.set_faults(name, throttle_rate=0.0)


async def ledger_disk_full(run: Run) -> None:
    """The ledger's tmpfs is filled to the last byte, then the filler is removed."""
    assert run.rig.data_dir is not None
    await _until(run, run.rng.uniform(1, 4))
    filler = run.rig.data_dir / "filler"
    await asyncio.to_thread(_fill, filler)
    await asyncio.sleep(run.phases.fault)
    filler.unlink()


def _fill(path: Path) -> None:
    with path.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()


async def two_replicas(run: Run) -> None:
    """Nothing breaks: a second replica on the same PostgreSQL runs from the start."""


@dataclass(frozen=True)
class Fault:
    name: str
    label: str
    inject: Inject
    database: str = "sqlite"
    replicas: int = 1
    tmpfs: bool = False
    settings: str = "shipped defaults"
    # The short version's purchases per second, where the default would blur the fault: at 6 a
    # second the shared pool's race for a last unit (shipped threshold 0) oversells now and then
    # with no fault at all.
    quick_rate: float | None = None


FAULTS = [
    Fault("none", "no fault (baseline)", no_fault),
    Fault("kill-random", "SIGKILLs at random moments (SQLite)", kill_at_random),
    Fault("kill-random-pg", "SIGKILLs at random moments (PostgreSQL)", kill_at_random, "postgresql"),
    Fault("kill-short", "SIGKILLs at short intervals (SQLite)", kill_at_short_intervals),
    Fault("kill-short-pg", "SIGKILLs at short intervals (PostgreSQL)", kill_at_short_intervals, "postgresql"),
    Fault(
        "down-then-startup-kill",
        "daemon down, then killed 3 s into its start-up while the web store is slow (3 s a call)",
        down_then_killed_in_startup,
    ),
    Fault("5xx-then-timeout", "TikTok Shop all-5xx, then the web store timing out", dead_then_timing_out),
    Fault("erp-stopped", "ERP stopped", erp_stopped, quick_rate=3.5),
    Fault("throttling", "every channel throttling (90% of calls 429)", every_channel_throttling),
    Fault(
        "disk-full",
        "ledger disk full (SQLite on a small tmpfs, filled)",
        ledger_disk_full,
        tmpfs=True,
        settings="shipped defaults; the SQLite ledger on a 64 MB tmpfs",
    ),
    Fault("replicas-pg", "two replicas on one PostgreSQL", two_replicas, "postgresql", replicas=2),
]
BY_NAME = {f.name: f for f in FAULTS}


class Skipped(Exception):
    """The scenario cannot run on this machine (the reason says why)."""


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64m") -> Any:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise Skipped(f"cannot mount a tmpfs: {done.stderr.strip()[:200]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


async def run_fault(fault: Fault, seed: int, phases: Phases, daemon_root: Path = ROOT) -> dict[str, Any]:
    if phases.short and fault.quick_rate is not None:
        phases = dataclasses.replace(phases, rate=fault.quick_rate)
    with tempfile.TemporaryDirectory(prefix=f"faults-{fault.name}-") as name, contextlib.ExitStack() as stack:
        tmp = Path(name)
        data_dir = stack.enter_context(tmpfs(tmp / "ledger")) if fault.tmpfs else None
        rig = Rig(tmp, seed, fault.database, data_dir, phases.hot_stock, daemon_root)
        try:
            return await _run(fault, seed, phases, rig)
        finally:
            await rig.close()


async def _run(fault: Fault, seed: int, phases: Phases, rig: Rig) -> dict[str, Any]:
    rng = random.Random(f"{fault.name}:{seed}")
    began = time.monotonic()
    await rig.start()
    primary = rig.daemon(phases.schedule)
    replicas = [primary] + [rig.daemon(phases.schedule, free_port()) for _ in range(fault.replicas - 1)]
    for daemon in replicas:
        daemon.start()
    ready = await rig.wait_reconciled(180)
    run = Run(rig, rng, phases, primary, time.monotonic())
    shoppers = asyncio.create_task(rig.shop(random.Random(seed), run.started + phases.sales, phases.rate))
    try:
        await asyncio.wait_for(
            fault.inject(run), timeout=phases.sales + 2 * phases.down + 4 * phases.fault + 60
        )
    finally:
        await shoppers
    fault_end = time.monotonic()
    for daemon in replicas:
        if not daemon.alive():
            daemon.start()
    recovered: float | None = None
    while time.monotonic() - fault_end < phases.settle:
        await asyncio.sleep(1)
        # The short version waits for the ledger and the ERP only: drift takes the longest to
        # settle (held units are released as the sales rate decays) and its tests do not ask it.
        if await rig.settled(drift=not phases.short):
            recovered = time.monotonic() - fault_end
            break
    settled_at = time.monotonic()
    for daemon in replicas:
        daemon.stop()
    result = rig.score(await rig.observe())
    stages = {
        "start": run.started - began,
        "sales_and_fault": fault_end - run.started,
        "settle": settled_at - fault_end,
        "stop": time.monotonic() - settled_at,
    }
    logs = {d.name: _events(d.log) for d in replicas}
    return {
        "fault": fault.name,
        "seed": seed,
        **result,
        "time_to_recover": None if recovered is None else round(recovered, 1),
        "first_reconcile_seconds": round(ready, 1),
        "purchases_per_second": phases.rate,
        "daemon_starts": sum(d.starts for d in replicas),
        "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
        "log_events": logs,
    }


def _events(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line).get("event")
                if isinstance(event, str) and (event.endswith("failed") or "error" in event):
                    counts[event] = counts.get(event, 0) + 1
    return counts


def summarise(fault: Fault, runs: list[dict[str, Any]], skipped: str | None) -> dict[str, Any]:
    recover = [r["time_to_recover"] for r in runs if r["time_to_recover"] is not None]
    return {
        "fault": fault.name,
        "label": fault.label,
        "database": fault.database,
        "replicas": fault.replicas,
        "settings": fault.settings,
        "purchases_per_second": runs[0]["purchases_per_second"] if runs else None,
        "skipped": skipped,
        "runs": len(runs),
        "seeds": [r["seed"] for r in runs],
        **{k: sum(r[k] for r in runs) for k in TOTALS},
        "not_recovered": len(runs) - len(recover),
        "time_to_recover_median": statistics.median(recover) if recover else None,
        "time_to_recover_max": max(recover) if recover else None,
    }


TOTALS = [
    "placed",
    "counted_once",
    "lost",
    "counted_twice",
    "erp_movements_once",
    "erp_movements_missing",
    "erp_movements_twice",
    "oversold",
    "final_drift",
    "phantom_units",
    "erp_off_units",
]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| fault | runs | seeds | placed | counted once | ERP movements once | oversold | final drift "
        "| time to recover |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["skipped"]:
            lines.append(f"| {row['label']} | 0 | - | - | - | - | - | - | skipped: {row['skipped']} |")
            continue
        recover = "-"
        if row["time_to_recover_median"] is not None:
            recover = f"{row['time_to_recover_median']:.0f} s (max {row['time_to_recover_max']:.0f} s)"
        if row["not_recovered"]:
            recover += f"; {row['not_recovered']} of {row['runs']} not settled"
        lines.append(
            f"| {row['label']} | {row['runs']} | {','.join(map(str, row['seeds']))} | {row['placed']} "
            f"| {_part(row['counted_once'], row['placed'])} "
            f"| {_part(row['erp_movements_once'], row['placed'])} | {_bold(row['oversold'])} "
            f"| {_bold(row['final_drift'])} | {recover} |"
        )
    return "\n".join(lines)


def _part(value: int, whole: int) -> str:
    return "all" if value == whole else f"**{value}**"


def _bold(value: int) -> str:
    return str(value) if value == 0 else f"**{value}**"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds, one run per fault each")
    parser.add_argument(
        "--faults", default=",".join(BY_NAME), help=f"comma-separated, of {', '.join(BY_NAME)}"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="one seed, short phases (smoke tests)")
    parser.add_argument(
        "--daemon-root",
        type=Path,
        default=ROOT,
        help="run the daemon from this checkout (say, an export of main's HEAD, so that edits in "
        "progress in the working tree do not reach it)",
    )
    args = parser.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated whole numbers, not {args.seeds!r}")
    args.fault_list = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in args.fault_list if f not in BY_NAME]
    if unknown or not args.fault_list or not args.seed_list:
        parser.error(f"unknown fault(s) {unknown}; known: {', '.join(BY_NAME)}")
    if args.quick:
        args.seed_list = args.seed_list[:1]
    args.phases = Phases.quick() if args.quick else Phases.full()
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    rows, runs = [], {}
    for name in args.fault_list:
        fault, results, skipped = BY_NAME[name], [], None
        errors: list[dict[str, Any]] = []
        for seed in args.seed_list:
            print(f"faults: {name}, seed {seed} ...", file=sys.stderr, flush=True)
            try:
                result = await run_fault(fault, seed, args.phases, args.daemon_root)
            except Skipped as exc:
                skipped = str(exc)
                break
            except (OSError, RuntimeError, TimeoutError) as exc:
                # The rig could not stage the run (say, the daemon would not start): say so, go on.
                errors.append({"seed": seed, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"})
                print(f"  run failed: {errors[-1]['error']}", file=sys.stderr, flush=True)
                continue
            results.append(result)
            print(
                "  placed {placed}, counted once {counted_once}, ERP once {erp_movements_once}, "
                "oversold {oversold}, drift {final_drift}, recovered {time_to_recover}".format(**result),
                file=sys.stderr,
                flush=True,
            )
        runs[name] = results
        rows.append(summarise(fault, results, skipped) | {"errors": errors})
    command = ("python bench/faults.py " + shlex.join(sys.argv[1:])).strip()
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "command": command,
        "daemon_root": str(args.daemon_root),
        "daemon_commit": _commit(args.daemon_root),
        "parameters": {
            "phases": vars(args.phases),
            "schedule_note": "the daemon's poll and reconcile intervals, compressed from the shipped "
            "45 s / 60 s / 5 min so that runs settle within minutes; no stock section (shipped defaults)",
            "catalogue": "60 SKUs: 5 hot (units per phases.hot_stock), 55 with 10..60; 80% of "
            "purchases on the hot ones, channels 60/25/15%",
            "postgresql": "a fresh schema per run on the machine's server, dropped afterwards",
            "quick_note": "--quick: the settle wait ends once the ledger and the ERP are complete "
            "(drift not awaited), so its time to recover leaves drift out",
        },
        "definitions": DEFINITIONS,
        "summary": rows,
        "runs": runs,
        "table_markdown": table(rows),
    }


def _commit(root: Path) -> str | None:
    """The commit the daemon ran from: HEAD of its checkout, or the one named in ``COMMIT`` there
    (an export made with ``git archive``)."""
    with contextlib.suppress(OSError):
        return (root / "COMMIT").read_text().strip()
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every run's finally stops its daemons and sandboxes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from syncd.logs import configure_logging

    configure_logging("warning", "console")
    # Requests the killed daemon cut off are expected; the sandboxes' tracebacks for them are noise.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    results = asyncio.run(bench(args))
    print(results["table_markdown"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
