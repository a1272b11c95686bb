"""The naive baseline of the flash-sale benchmark: what most stock-sync tools do.

Every ``--interval`` seconds, at a fixed rate from its start, it reads the ERP's on-hand figures
and writes them to every channel, through syncd's own connector classes and the same settings
(only listings that differ are written, with no compare value). It never tells the
ERP about sales, so a channel's own decrements are overwritten by the next push. Prints one JSON
line per cycle; stops on SIGTERM/SIGINT or after ``--max-runtime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import ChannelConnector, ErpConnector, QuantityUpdate
from connectors.registry import build_channel, build_erp
from syncd.config import load_config
from syncd.errors import ConnectorError
from syncd.logs import configure_logging


async def push_cycle(erp: ErpConnector, channels: list[ChannelConnector]) -> dict[str, object]:
    """Read on-hand, then set every channel listing that differs to it (no compare, no orders)."""
    started = time.monotonic()
    on_hand = {record.sku: record.on_hand for record in await erp.read_stock()}
    sent: dict[str, int] = {}
    errors: list[str] = []

    async def push(channel: ChannelConnector) -> None:
        try:
            listings = await channel.list_listings()
            updates = [
                QuantityUpdate(listing.sku, listing.ref, on_hand[listing.sku])
                for listing in listings
                if listing.sku in on_hand and listing.quantity != on_hand[listing.sku]
            ]
            if updates:
                result = await channel.set_quantities(updates)
                sent[channel.name] = len(result.applied)
            else:
                sent[channel.name] = 0
        except ConnectorError as exc:
            errors.append(f"{channel.name}: {exc}")

    await asyncio.gather(*(push(c) for c in channels))
    return {"pushed": sent, "errors": errors, "seconds": round(time.monotonic() - started, 3)}


async def run(config_path: str, interval: float, max_runtime: float) -> int:
    config = load_config(config_path)
    configure_logging("warning", "json", config.secrets())
    erp = build_erp(config.erp)
    channels = [build_channel(c) for c in config.channels if c.enabled]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    deadline = started + max_runtime
    cycle = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            cycle += 1
            try:
                outcome = await push_cycle(erp, channels)
            except ConnectorError as exc:
                outcome = {"pushed": {}, "errors": [f"erp: {exc}"]}
            print(json.dumps({"event": "naive.cycle", "cycle": cycle, **outcome}), flush=True)
            # A fixed rate, like cron: cycle n starts at n x interval, or at once if the last overran.
            wake = min(started + cycle * interval, deadline)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, wake - time.monotonic()))
    finally:
        for connector in [erp, *channels]:
            await connector.aclose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="a syncd YAML config (its erp and channels are used)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between pushes")
    parser.add_argument("--max-runtime", type=float, default=3600.0, help="stop after this many seconds")
    args = parser.parse_args()
    return asyncio.run(run(args.config, args.interval, args.max_runtime))


if __name__ == "__main__":
    sys.exit(main())
