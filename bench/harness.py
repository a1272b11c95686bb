"""A rig for driving the daemon from outside: sandboxes on loopback, the daemon as real processes,
shoppers that record every purchase a channel accepted, and a read of the ledger, the ERP and the
channels afterwards. ``bench/faults.py`` builds its scenarios on it; the sandbox and config pieces
come from ``bench/flash_sale.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flash_sale import CHANNELS, CRED, _config_dict, _die_with_parent, _sandbox_factory  # noqa: E402

from connectors.sandbox_kit import Faults  # noqa: E402
from syncd.daemon import QuietServer  # noqa: E402

SKUS = 60
HOT = 5
CHANNEL_NAMES = list(CHANNELS)
API_LATENCY_MS = {"erp": 40.0, **{name: CHANNELS[name][3] / 2 for name in CHANNEL_NAMES}}
WEBHOOK_FAULTS = {"webhook_delay_ms": 100.0, "webhook_delay_max_ms": 1000.0}
PG_URL = os.environ.get("SYNCD_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def free_port() -> int:
    with _bound_socket() as sock:
        return int(sock.getsockname()[1])


class Server:
    """One sandbox served by uvicorn in this event loop, on a port it keeps across restarts."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.server: QuietServer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, app: Any) -> str:
        sock = _bound_socket(self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=30)
        self.server = QuietServer(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not self.server.started:
            if self.task.done() or time.monotonic() > deadline:
                raise OSError(f"a sandbox could not start on port {self.port}")
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is None or self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, timeout=10)
        if not self.task.done():
            self.server.force_exit = True
            self.task.cancel()
        self.server = self.task = None


class Daemon:
    """``python -m syncd.cli run`` in a process group of its own, dying with this process."""

    def __init__(self, name: str, config: Path, log: Path, root: Path = ROOT) -> None:
        self.name, self.config, self.log, self.root = name, config, log, root
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, **CRED, "PYTHONPATH": str(self.root), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "syncd.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: no clean-up, as a power cut or the OOM killer would."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (the daemon drains), SIGKILL to the group after 20 s."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def catalogue(seed: int, hot_stock: tuple[int, int]) -> tuple[dict[str, int], list[str]]:
    """60 SKUs: five hot ones with little stock (they sell out), the rest with moderate stock."""
    rng = random.Random(seed)
    hot = [f"HOT-{i + 1:02d}" for i in range(HOT)]
    stock = {sku: rng.randint(*hot_stock) for sku in hot}
    stock |= {f"CAT-{i:03d}": rng.randint(10, 60) for i in range(SKUS - HOT)}
    return stock, hot


@dataclass
class Sales:
    """Every purchase a channel accepted (with the order id it answered) and every refusal."""

    placed: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, order id, sku)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def sold(self) -> Counter[str]:
        return Counter(sku for _, _, sku in self.placed)


class Rig:
    """The sandboxes, the daemon config and the daemons of one run; ``close`` stops them all."""

    def __init__(
        self,
        tmp: Path,
        seed: int,
        database: str = "sqlite",
        data_dir: Path | None = None,
        hot_stock: tuple[int, int] = (8, 20),
        daemon_root: Path = ROOT,
    ) -> None:
        self.tmp, self.seed, self.database, self.daemon_root = tmp, seed, database, daemon_root
        self.stock, self.hot = catalogue(seed, hot_stock)
        self.faults = {name: Faults(latency_ms=API_LATENCY_MS[name]) for name in ["erp", *CHANNEL_NAMES]}
        for name in CHANNEL_NAMES:
            self.faults[name].update(WEBHOOK_FAULTS)
        self.servers = {name: Server() for name in ["erp", *CHANNEL_NAMES]}
        self.urls: dict[str, str] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.daemons: list[Daemon] = []
        self.daemon_port = free_port()
        self.pg_schema: str | None = None
        self.data_dir = data_dir
        data = data_dir or tmp
        self.database_url = f"sqlite:///{data / 'syncd.db'}"
        self.sales = Sales()

    async def start(self) -> None:
        if self.database == "postgresql":
            self.pg_schema = f"syncd_faults_{uuid.uuid4().hex[:10]}"
            with self._pg_admin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.pg_schema}"'))
            url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={self.pg_schema}"})
            self.database_url = url.render_as_string(hide_password=False)
        await self.start_erp()
        for i, name in enumerate(CHANNEL_NAMES):
            hook = f"http://127.0.0.1:{self.daemon_port}/webhooks/{name}"
            app = _sandbox_factory(CHANNELS[name][0])(hook, self.faults[name], self.seed * 100 + i)
            self.urls[name] = await self.servers[name].start(app)
        for name, url in self.urls.items():
            self.clients[name] = httpx.AsyncClient(base_url=url, timeout=30)
        items = [{"sku": sku, "quantity": qty} for sku, qty in self.stock.items()]
        for client in self.clients.values():
            (await client.post("/_sandbox/seed", json={"items": items})).raise_for_status()

    async def start_erp(self) -> None:
        from connectors.mock_erp.sandbox import create_app

        app = create_app(
            api_key=CRED["SYNCD_BENCH_ERP_KEY"], db_path=str(self.tmp / "erp.db"), faults=self.faults["erp"]
        )
        self.urls["erp"] = await self.servers["erp"].start(app)

    @contextlib.contextmanager
    def _pg_admin(self) -> Any:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def config(self, port: int, schedule: dict[str, str]) -> Path:
        ports = {n: httpx.URL(self.urls[n]).port or 0 for n in CHANNEL_NAMES}
        body = _config_dict(
            port, httpx.URL(self.urls["erp"]).port or 0, ports, schedule, self.database_url, None
        )
        path = self.tmp / f"syncd-{port}.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        return path

    def daemon(self, schedule: dict[str, str], port: int | None = None) -> Daemon:
        """A daemon on ``port`` (the one the webhooks go to by default), not started yet."""
        port = port or self.daemon_port
        log = self.tmp / f"syncd-{port}.log"
        daemon = Daemon(f"syncd-{port}", self.config(port, schedule), log, self.daemon_root)
        self.daemons.append(daemon)
        return daemon

    async def api_status(self, port: int | None = None) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{port or self.daemon_port}/api/status"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def wait_reconciled(self, limit: float, port: int | None = None) -> float:
        """Seconds until the daemon finished its first reconcile with an empty outbox."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            status = await self.api_status(port)
            if status is not None:
                runs = [r for r in status.get("runs", []) if r["kind"] == "reconcile" and r["finished_at"]]
                if runs and status.get("ledger", {}).get("pushes_pending", 1) == 0:
                    return time.monotonic() - started
            if not any(d.alive() for d in self.daemons):
                tails = "\n".join(d.tail() for d in self.daemons)
                raise RuntimeError(f"the daemon exited before its first reconcile:\n{tails}")
            await asyncio.sleep(0.5)
        raise TimeoutError(f"no first reconcile within {limit:.0f} s")

    async def set_faults(self, name: str, **changes: float) -> None:
        (await self.clients[name].post("/_sandbox/faults", json=changes)).raise_for_status()

    async def shop(self, rng: random.Random, until: float, rate: float) -> None:
        """Shoppers until ``until`` (monotonic): Poisson arrivals at ``rate`` per second, 80% on the
        hot SKUs, channels by their share; each purchase in flight of its own."""
        shares = [CHANNELS[n][1] for n in CHANNEL_NAMES]
        others = [s for s in self.stock if s not in self.hot]
        tasks: set[asyncio.Task[None]] = set()

        async def buy(channel: str, sku: str) -> None:
            try:
                response = await self.clients[channel].post(
                    "/_sandbox/purchase", json={"sku": sku, "quantity": 1}
                )
            except httpx.HTTPError as exc:
                self.sales.errors[type(exc).__name__] += 1
                return
            if response.status_code == 201:
                self.sales.placed.append((channel, str(response.json()["order_id"]), sku))
            elif response.status_code == 409:
                self.sales.refused[sku] += 1
            else:
                self.sales.errors[str(response.status_code)] += 1

        while time.monotonic() < until:
            await asyncio.sleep(min(rng.expovariate(rate), max(0.0, until - time.monotonic())))
            channel = rng.choices(CHANNEL_NAMES, shares)[0]
            sku = rng.choice(self.hot) if rng.random() < 0.8 else rng.choice(others)
            task = asyncio.create_task(buy(channel, sku))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=45)

    async def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        for client in self.clients.values():
            await client.aclose()
        for server in self.servers.values():
            await server.stop()
        if self.pg_schema is not None:
            with contextlib.suppress(Exception), self._pg_admin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.pg_schema}" CASCADE'))

    # ------------------------------------------------------------------ what happened

    def ledger_lines(self) -> list[dict[str, Any]]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT channel, order_id, line_key, sku, quantity, state FROM order_line")
                )
                return [dict(row._mapping) for row in rows]
        finally:
            engine.dispose()

    async def observe(self) -> dict[str, Any]:
        """The ledger's order lines, the ERP's movements and stock, and what each channel shows."""
        erp = self.clients.get("erp") or httpx.AsyncClient(base_url=self.urls["erp"], timeout=30)
        self.clients["erp"] = erp
        movements = (await erp.get("/_sandbox/movements")).json()
        on_hand = {r["sku"]: r["on_hand"] for r in (await erp.get("/_sandbox/stock")).json()}
        shown = {}
        for name in CHANNEL_NAMES:
            rows = (await self.clients[name].get("/_sandbox/listings")).json()
            shown[name] = {row["sku"]: row["quantity"] for row in rows}
        lines = await asyncio.to_thread(self.ledger_lines)
        return {"lines": lines, "movements": movements, "on_hand": on_hand, "shown": shown}

    def score(self, seen: dict[str, Any]) -> dict[str, Any]:
        """Placed orders against the ledger, the ERP and the channels (see ``DEFINITIONS``)."""
        placed = self.sales.placed
        lines: Counter[tuple[str, str]] = Counter()
        for line in seen["lines"]:
            if line["state"] != "released":
                lines[(line["channel"], _order_id(line["order_id"]))] += int(line["quantity"])
        sales: Counter[str] = Counter()
        for movement in seen["movements"]:
            if movement["reason"] == "sale":
                channel, _, order = str(movement["reference"]).partition(":")
                sales[f"{channel}:{_order_id(order)}"] += -int(movement["delta"])
        keys = {(c, _order_id(o)) for c, o, _ in placed}
        sold = self.sales.sold()
        remaining = {sku: max(0, qty - sold[sku]) for sku, qty in self.stock.items()}
        drift = {
            name: sum(abs(seen["shown"][name].get(sku, 0) - left) for sku, left in remaining.items())
            for name in CHANNEL_NAMES
        }
        phantom = sum(
            max(0, seen["shown"][name].get(sku, 0) - left)
            for name in CHANNEL_NAMES
            for sku, left in remaining.items()
        )
        erp_off = sum(abs(seen["on_hand"].get(sku, 0) - (qty - sold[sku])) for sku, qty in self.stock.items())
        return {
            "placed": len(placed),
            "counted_once": sum(1 for k in keys if lines[k] == 1),
            "lost": sum(1 for k in keys if lines[k] == 0),
            "counted_twice": sum(1 for k in keys if lines[k] > 1),
            "ledger_lines_unknown": sum(1 for k in lines if k not in keys),
            "erp_movements_once": sum(1 for c, o in keys if sales[f"{c}:{o}"] == 1),
            "erp_movements_missing": sum(1 for c, o in keys if sales[f"{c}:{o}"] == 0),
            "erp_movements_twice": sum(1 for c, o in keys if sales[f"{c}:{o}"] > 1),
            "oversold": sum(max(0, sold[sku] - qty) for sku, qty in self.stock.items()),
            "final_drift": sum(drift.values()),
            "final_drift_by_channel": drift,
            "phantom_units": phantom,
            "erp_off_units": erp_off,
            "refused": sum(self.sales.refused.values()),
            "purchase_errors": dict(self.sales.errors),
        }

    async def settled(self, drift: bool = True) -> bool:
        """Every order counted once, every movement once (but those of oversold units, which the
        mock ERP refuses as it would go negative), and (``drift``) every channel at what is left."""
        result = self.score(await self.observe())
        return (
            result["counted_once"] == result["placed"]
            and result["erp_movements_once"] >= result["placed"] - result["oversold"]
            and (result["final_drift"] == 0 or not drift)
        )


def _order_id(raw: str) -> str:
    """A channel's order id without the platform's prefix (Shopify's ``gid://shopify/Order/``)."""
    return raw.rsplit("/", 1)[-1]


DEFINITIONS = {
    "placed": "purchases a channel sandbox accepted (201), as the shoppers saw them",
    "counted_once": "placed orders whose ledger order_line rows (not released) add up to exactly "
    "their one unit",
    "erp_movements_once": "placed orders with exactly one unit of sale movement in the mock ERP "
    "(movements whose reference is channel:order)",
    "oversold": "per SKU max(0, units sold on all channels - units that existed), summed",
    "final_drift": "after the settle wait: sum over channels and SKUs of |shown - (units that "
    "existed - units sold)| (the shipped defaults offer every channel the whole ats)",
    "phantom_units": "part of the drift: units shown beyond what is left",
    "erp_off_units": "sum over SKUs of |ERP on-hand - (initial - sold)|",
    "time_to_recover": "seconds from the end of the fault until every order counted once, every "
    "movement once (but the movements of oversold units, which the mock ERP refuses as they would "
    "take it below zero) and drift 0 (null: not within the settle limit)",
}
