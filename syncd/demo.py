"""The demo: sandboxes on loopback, a seeded catalogue, the daemon, and simulated shoppers.

Everything runs in one event loop. The catalogue is seeded once (the mock ERP keeps it in
``data/demo``); the web store starts with stale quantities so the first reconcile has drift to
correct, and lists two SKUs the ERP does not know (reported as unmapped, never zeroed).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import structlog
import uvicorn
from starlette.types import ASGIApp

from syncd.config import Config, load_config
from syncd.daemon import Daemon, QuietServer
from syncd.logs import configure_logging

log = structlog.get_logger("syncd.demo")

# Credentials the demo sandboxes accept; the demo config expands to the same by default.
DEMO_ENV = {
    "SYNCD_DEMO_ERP_KEY": "demo-erp-key",
    "SYNCD_DEMO_WC_KEY": "ck_demo",
    "SYNCD_DEMO_WC_SECRET": "cs_demo",
    "SYNCD_DEMO_WC_WEBHOOK_SECRET": "demo-webhook-secret",
    "SYNCD_DEMO_SHOPIFY_TOKEN": "shpat_demo",
    "SYNCD_DEMO_SHOPIFY_SECRET": "demo-shopify-client-secret",
    "SYNCD_DEMO_TIKTOK_APP_KEY": "demoappkey",
    "SYNCD_DEMO_TIKTOK_APP_SECRET": "demo-tiktok-app-secret",
    "SYNCD_DEMO_TIKTOK_ACCESS_TOKEN": "demo-tiktok-access",
    "SYNCD_DEMO_TIKTOK_REFRESH_TOKEN": "demo-tiktok-refresh",
    "SYNCD_DEMO_TIKTOK_SHOP_CIPHER": "ROW_demo_cipher",
    "SYNCD_DEMO_BLING_CLIENT_ID": "demo-bling-client",
    "SYNCD_DEMO_BLING_CLIENT_SECRET": "demo-bling-client-secret",
    "SYNCD_DEMO_TINY_CLIENT_ID": "demo-tiny-client",
    "SYNCD_DEMO_TINY_CLIENT_SECRET": "demo-tiny-client-secret",
}
SANDBOXES = ("mock_erp", "bling", "tiny", "woocommerce", "shopify", "tiktok_shop")
# Who buys where in the demo (a TikTok-led shop): channel type -> share of purchases.
DEMAND = {"tiktok_shop": 0.60, "shopify": 0.25, "woocommerce": 0.15}

_PRODUCTS = ["TEE", "HOODIE", "CAP", "SOCKS", "MUG", "TOTE", "POSTER", "STICKER", "BOTTLE", "JACKET"]
_COLOURS = ["BLK", "WHT", "RED", "NVY", "GRN"]
_SIZES = ["S", "M", "L", "XL"]


def _env(name: str) -> str:
    return os.environ.get(name, DEMO_ENV[name])


def build_sandbox(name: str, *, data_dir: str = "data/sandbox", webhook_url: str | None = None) -> ASGIApp:
    """A sandbox app by name, accepting the demo credentials (or the SYNCD_DEMO_* variables)."""
    if name == "mock_erp":
        from connectors.mock_erp.sandbox import create_app as erp_app

        Path(data_dir).mkdir(parents=True, exist_ok=True)
        return erp_app(api_key=_env("SYNCD_DEMO_ERP_KEY"), db_path=str(Path(data_dir) / "mock_erp.db"))
    if name == "bling":
        from connectors.bling.sandbox import create_app as bling_app

        return bling_app(
            client_id=_env("SYNCD_DEMO_BLING_CLIENT_ID"),
            client_secret=_env("SYNCD_DEMO_BLING_CLIENT_SECRET"),
            webhook_url=webhook_url,
        )
    if name == "tiny":
        from connectors.tiny.sandbox import create_app as tiny_app

        # A plan of 600 requests a minute: the demo's purchases would queue for minutes at 30.
        return tiny_app(
            client_id=_env("SYNCD_DEMO_TINY_CLIENT_ID"),
            client_secret=_env("SYNCD_DEMO_TINY_CLIENT_SECRET"),
            requests_per_minute=600,
            webhook_url=webhook_url,
        )
    if name == "woocommerce":
        from connectors.woocommerce.sandbox import create_app as woo_app

        return woo_app(
            consumer_key=_env("SYNCD_DEMO_WC_KEY"),
            consumer_secret=_env("SYNCD_DEMO_WC_SECRET"),
            webhook_url=webhook_url,
            webhook_secret=_env("SYNCD_DEMO_WC_WEBHOOK_SECRET"),
        )
    if name == "shopify":
        from connectors.shopify.sandbox import create_app as shopify_app

        return shopify_app(
            access_token=_env("SYNCD_DEMO_SHOPIFY_TOKEN"),
            webhook_url=webhook_url,
            webhook_secret=_env("SYNCD_DEMO_SHOPIFY_SECRET"),
        )
    if name == "tiktok_shop":
        from connectors.tiktok_shop.sandbox import create_app as tiktok_app

        return tiktok_app(
            app_key=_env("SYNCD_DEMO_TIKTOK_APP_KEY"),
            app_secret=_env("SYNCD_DEMO_TIKTOK_APP_SECRET"),
            access_token=_env("SYNCD_DEMO_TIKTOK_ACCESS_TOKEN"),
            refresh_token=_env("SYNCD_DEMO_TIKTOK_REFRESH_TOKEN"),
            shop_cipher=_env("SYNCD_DEMO_TIKTOK_SHOP_CIPHER"),
            webhook_url=webhook_url,
        )
    raise ValueError(f"unknown sandbox {name!r}; known: {', '.join(SANDBOXES)}")


def demo_catalogue(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """A realistic catalogue: variants of a few products, skewed stock, some low, some out."""
    items: list[dict[str, Any]] = []
    for product in _PRODUCTS:
        for colour in _COLOURS:
            for size in _SIZES:
                if len(items) >= count:
                    return items
                roll = rng.random()
                on_hand = (
                    0
                    if roll < 0.04
                    else rng.randint(1, 4)
                    if roll < 0.15
                    else int(rng.paretovariate(1.2) * 15)
                )
                items.append(
                    {"sku": f"{product}-{colour}-{size}", "parent": f"{product}-{colour}", "on_hand": on_hand}
                )
    n = 0
    while len(items) < count:
        n += 1
        items.append({"sku": f"ACC-{n:04d}", "parent": None, "on_hand": rng.randint(0, 60)})
    return items


async def seed(
    erp: httpx.AsyncClient, shops: dict[str, httpx.AsyncClient], count: int, rng: random.Random
) -> list[str]:
    """Seed the ERP and every channel unless the ERP already holds a catalogue; return the SKUs."""
    existing = (await erp.get("/_sandbox/stock")).json()
    if existing:
        catalogue = [{"sku": row["sku"], "on_hand": row["on_hand"], "parent": None} for row in existing]
    else:
        catalogue = demo_catalogue(count, rng)
        items = [{"sku": i["sku"], "quantity": i["on_hand"]} for i in catalogue]
        (await erp.post("/_sandbox/seed", json={"items": items})).raise_for_status()
    for name, shop in shops.items():
        if (await shop.get("/_sandbox/listings")).json():
            continue
        shop_items = []
        for item in catalogue:
            # The channels were last synced a while ago: their figures are off by a few units.
            stale = max(0, item["on_hand"] + rng.choice([-3, -1, 0, 0, 0, 2, 5]))
            entry: dict[str, Any] = {"sku": item["sku"], "quantity": stale}
            if item.get("parent"):
                entry["parent"] = item["parent"]
            shop_items.append(entry)
        # Two old listings the ERP does not know: reported as unmapped, never zeroed.
        shop_items += [
            {"sku": f"LEGACY-{name.upper()}-1", "quantity": 7},
            {"sku": f"LEGACY-{name.upper()}-2", "quantity": 3},
        ]
        (await shop.post("/_sandbox/seed", json={"items": shop_items})).raise_for_status()
    return [i["sku"] for i in catalogue]


async def shoppers(
    erp: httpx.AsyncClient,
    shops: dict[str, httpx.AsyncClient],
    demand: dict[str, float],
    skus: list[str],
    rate: float,
    rng: random.Random,
) -> None:
    """Buy at ``rate`` per second, on each channel by its share of ``demand``, with a popularity
    skew; now and then a restock in the ERP, a manual edit in a channel's admin (drift for the
    next reconcile) or a cancellation."""
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(skus))]
    names = list(shops)
    shares = [demand.get(n, 0.1) for n in names]
    orders: list[tuple[str, str]] = []
    while True:
        await asyncio.sleep(rng.expovariate(rate))
        roll = rng.random()
        name = rng.choices(names, shares)[0]
        shop = shops[name]
        try:
            if roll < 0.90:
                sku = rng.choices(skus, weights)[0]
                response = await shop.post(
                    "/_sandbox/purchase", json={"sku": sku, "quantity": rng.choice([1, 1, 1, 2])}
                )
                if response.status_code == 201:
                    orders.append((name, str(response.json()["order_id"])))
                    log.info("demo.purchase", channel=name, sku=sku, order=orders[-1][1])
                else:
                    log.info("demo.purchase_refused", channel=name, sku=sku, status=response.status_code)
            elif roll < 0.95:
                sku = rng.choice(skus)
                stock = {row["sku"]: row["on_hand"] for row in (await erp.get("/_sandbox/stock")).json()}
                await erp.post(
                    "/_sandbox/stock", json={"sku": sku, "on_hand": stock.get(sku, 0) + rng.randint(5, 30)}
                )
                log.info("demo.restock", sku=sku)
            elif roll < 0.98:
                sku = rng.choice(skus)
                await shop.post("/_sandbox/listings", json={"sku": sku, "quantity": rng.randint(0, 50)})
                log.info("demo.manual_edit", channel=name, sku=sku)
            elif orders:
                channel, order = orders.pop(rng.randrange(len(orders)))
                await shops[channel].post(f"/_sandbox/orders/{order}/cancel")
                log.info("demo.cancel", channel=channel, order=order)
        except httpx.HTTPError as exc:
            log.warning("demo.shopper_error", error=str(exc))


def demo_erp_settings(erp: str, base_url: str) -> Any:
    """Settings of ``erp`` aimed at its demo sandbox on the demo config's ERP address."""
    if erp == "bling":
        from pydantic import SecretStr

        from connectors.bling.settings import BlingSettings

        return BlingSettings(
            type="bling",
            base_url=base_url,
            authorize_url=f"{base_url}/oauth/authorize",
            client_id=_env("SYNCD_DEMO_BLING_CLIENT_ID"),
            client_secret=SecretStr(_env("SYNCD_DEMO_BLING_CLIENT_SECRET")),
            contact_id=1,
            budget_share=0.6,  # the demo account runs no other app (2/3 at most: see BlingBudget)
        )
    if erp == "tiny":
        from pydantic import SecretStr

        from connectors.tiny.settings import TinySettings

        return TinySettings(
            type="tiny",
            base_url=f"{base_url}/public-api/v3",
            auth_url=f"{base_url}/realms/tiny/protocol/openid-connect",
            client_id=_env("SYNCD_DEMO_TINY_CLIENT_ID"),
            client_secret=SecretStr(_env("SYNCD_DEMO_TINY_CLIENT_SECRET")),
            contact_id=1,
            requests_per_minute=540,  # most of the sandbox's 600: the demo account runs no other app
            burst=20,
        )
    raise ValueError(f"no demo for the ERP {erp!r}")


async def authorise_demo_bling(config: Config) -> None:
    """The seller's consent in the Bling sandbox, and the first tokens saved in the ledger."""
    from connectors.bling.auth import BlingAuth
    from syncd.store import Store

    base_url = str(config.erp.base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as hooks:
        code = (await hooks.post("/_sandbox/oauth/code")).json()["code"]
    store = Store(config.database_url)
    try:
        store.migrate()
        auth = BlingAuth(config.erp, store)  # type: ignore[arg-type]
        try:
            await auth.exchange_code(code)
        finally:
            await auth.aclose()
    finally:
        store.close()


async def authorise_demo_tiny(config: Config, sandbox_url: str) -> None:
    """The seller's consent in the Tiny sandbox, and the first tokens saved in the ledger."""
    from connectors.tiny.auth import exchange_code
    from connectors.tiny.settings import TinySettings
    from syncd.store import Store

    settings = config.erp
    assert isinstance(settings, TinySettings)
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as hooks:
        answer = await hooks.post(
            "/_sandbox/oauth/code", json={"client_id": settings.client_id, "redirect_uri": settings.redirect_uri}
        )
    store = Store(config.database_url)
    try:
        store.migrate()
        await exchange_code(settings, answer.json()["code"], store)
    finally:
        store.close()


def _server(app: ASGIApp, port: int) -> QuietServer:
    return QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[Any], what: str) -> None:
    while not server.started:
        if task.done():
            raise OSError(f"{what} could not start on port {server.config.port} (is the port taken?)")
        await asyncio.sleep(0.05)


def _channel_url(channel: Any) -> str:
    return str(getattr(channel, "base_url", None) or getattr(channel, "root_url", ""))


async def run_demo(
    *,
    config_path: str = "config/demo.yaml",
    skus: int = 300,
    rate: float = 2.0,
    duration: float | None = None,
    erp_type: str = "mock",
) -> int:
    """Run the demo until Ctrl-C (or ``duration`` seconds), on the mock ERP or on ``erp_type``'s sandbox."""
    env = {**DEMO_ENV, **os.environ}
    config: Config = load_config(config_path, env=env)
    if erp_type != "mock":
        config = config.model_copy(update={"erp": demo_erp_settings(erp_type, str(config.erp.base_url))})
    configure_logging(config.logging.level, config.logging.format, config.secrets())
    daemon_url = f"http://127.0.0.1:{config.server.port}"
    data_dir = (
        str(Path(config.database_url.removeprefix("sqlite:///")).parent)
        if config.database_url.startswith("sqlite:///")
        else "data/demo"
    )
    servers: list[tuple[QuietServer, asyncio.Task[Any]]] = []

    async def start(app: ASGIApp, url: str, what: str) -> None:
        server = _server(app, httpx.URL(url).port or 80)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        await _wait_started(server, task, what)

    # The sandbox's root (its hooks), below Tiny's API path.
    erp_url = str(config.erp.base_url).removesuffix("/public-api/v3")
    erp_sandbox = "mock_erp" if erp_type == "mock" else erp_type
    # Bling's signed stock webhooks go to the daemon's POST /webhooks/erp (its polls stay the safety net).
    erp_hooks = f"{daemon_url}/webhooks/erp" if erp_type == "bling" else None
    erp_app = build_sandbox(erp_sandbox, data_dir=data_dir, webhook_url=erp_hooks)
    await start(erp_app, erp_url, f"{erp_sandbox} sandbox")
    if erp_type == "bling":
        await authorise_demo_bling(config)
    if erp_type == "tiny":
        await authorise_demo_tiny(config, erp_url)
    channels = [c for c in config.channels if c.enabled]
    for channel in channels:
        app = build_sandbox(channel.type, webhook_url=f"{daemon_url}/webhooks/{channel.name}")
        await start(app, _channel_url(channel), f"{channel.type} sandbox")

    rng = random.Random(7)
    erp = httpx.AsyncClient(base_url=erp_url, timeout=30)
    shops = {c.name: httpx.AsyncClient(base_url=_channel_url(c), timeout=30) for c in channels}
    try:
        if erp_hooks:
            # The catalogue's stock, set before the daemon listens, is read by its first reconcile.
            await erp.post("/_sandbox/faults", json={"webhook_drop_rate": 1.0})
        catalogue = await seed(erp, shops, skus, rng)
        if erp_hooks:
            await erp.post("/_sandbox/faults", json={"webhook_drop_rate": 0.0})
        log.info(
            "demo.seeded",
            skus=len(catalogue),
            erp=erp_url,
            channels={c.name: _channel_url(c) for c in channels},
        )

        daemon = Daemon(config)
        daemon_server = _server(daemon.app(), config.server.port)
        daemon_task = asyncio.create_task(daemon_server.serve())
        await _wait_started(daemon_server, daemon_task, "syncd")
        log.info("demo.ready", status=f"{daemon_url}/status", health=f"{daemon_url}/health")

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        demand = {c.name: DEMAND.get(c.type, 0.1) for c in channels}
        shopper_task = asyncio.create_task(
            shoppers(erp, shops, demand, catalogue, rate, rng) if rate > 0 else asyncio.sleep(0)
        )
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
        shopper_task.cancel()
        with suppress(asyncio.CancelledError):
            await shopper_task
        daemon_server.should_exit = True
        await daemon_task
    finally:
        for client in [erp, *shops.values()]:
            await client.aclose()
        for server, task in reversed(servers):
            server.should_exit = True
            await task
    log.info("demo.stopped")
    return 0
