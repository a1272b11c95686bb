"""``syncd mapping check`` against the ERP and web store sandboxes served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from connectors.mock_erp.sandbox import create_app as erp_app
from connectors.woocommerce.sandbox import create_app as woo_app
from syncd.cli import main

ERP_KEY = "erp-test-key-1234"
WC_KEY, WC_SECRET = "ck_test_abcdef", "cs_test_987654"


class Served:
    """An ASGI app served by uvicorn on a free local port, in a thread with its own loop."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            self.thread.join(0.01)
        raise RuntimeError("the sandbox did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An ERP with MUG-1 and TEA-1, and two web stores, seeded through their sandbox hooks."""
    with (
        Served(erp_app(api_key=ERP_KEY, db_path=str(tmp_path / "erp.db"))) as erp,
        Served(woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET)) as shop,
        Served(woo_app(consumer_key=WC_KEY, consumer_secret=WC_SECRET)) as outlet,
    ):
        seeds = {
            erp.url: ["MUG-1", "TEA-1"],
            shop.url: ["MUG-1", "MUG-RED", "GIFT", "LOST-9"],
            outlet.url: ["MUG-1", "TEA-1"],
        }
        for url, skus in seeds.items():
            items = [{"sku": s, "quantity": 5} for s in skus]
            httpx.post(f"{url}/_sandbox/seed", json={"items": items}).raise_for_status()
        yield {"erp": erp.url, "shop": shop.url, "outlet": outlet.url}


def write_config(tmp_path: Path, world: dict[str, str], mapping: str | None) -> Path:
    channel = {
        "type": "woocommerce",
        "consumer_key": WC_KEY,
        "consumer_secret": WC_SECRET,
        "retry_attempts": 1,
    }
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'syncd.db'}",
        "erp": {"type": "mock_erp", "base_url": world["erp"], "api_key": ERP_KEY, "retry_attempts": 1},
        "channels": [
            {**channel, "name": "shop", "base_url": world["shop"]},
            {**channel, "name": "outlet", "base_url": world["outlet"]},
        ],
        "logging": {"level": "warning"},
    }
    if mapping is not None:
        (tmp_path / "skus.csv").write_text(mapping, encoding="utf-8")
        data["mapping"] = {"file": str(tmp_path / "skus.csv")}
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_conflicts_are_listed_per_channel_and_exit_1(
    tmp_path: Path, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Two shop listings showing one ERP SKU are a conflict (exit 1); unknown SKUs are listed as unmapped."""
    config = write_config(
        tmp_path, world, "channel_sku,erp_sku,quantity\nMUG-RED,MUG-1,\nGIFT,MUG-1,2\nGIFT,TEA-1,1\n"
    )
    assert main(["mapping", "check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "shop                  4       3         1           0          1" in out
    assert "outlet                2       2         0           0          0" in out
    assert "unmapped    LOST-9: the ERP has no SKU LOST-9" in out
    assert "conflict    MUG-1, MUG-RED all show ERP SKU MUG-1" in out
    assert "kit         GIFT = 2 x MUG-1 + TEA-1: shows the kits its scarcest part makes" in out


def test_json_output_and_a_clean_mapping_exits_0(
    tmp_path: Path, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """With the rename on a kit only, nothing conflicts: exit 0, and --json gives the same findings."""
    config = write_config(
        tmp_path, world, "channel_sku,erp_sku,quantity\nMUG-RED,MUG-1,2\nGIFT,MUG-1,1\nGIFT,TEA-1,1\n"
    )
    assert main(["mapping", "check", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    shop = next(c for c in report["channels"] if c["channel"] == "shop")
    assert report["conflicts"] is False
    assert shop == {
        "channel": "shop",
        "listings": 4,
        "mapped": 3,
        "unmapped": {"LOST-9": "the ERP has no SKU LOST-9"},
        "duplicated": {},
        "conflicts": [],
        "error": None,
        "kits": {"GIFT": "MUG-1 + TEA-1", "MUG-RED": "2 x MUG-1"},
    }


def test_without_a_mapping_file_skus_map_by_code(
    tmp_path: Path, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """No mapping file: every listing whose code the ERP knows is mapped, the rest unmapped."""
    config = write_config(tmp_path, world, None)
    assert main(["mapping", "check", "--config", str(config), "--json"]) == 0
    shop = json.loads(capsys.readouterr().out)["channels"][1]
    assert shop["channel"] == "shop" and shop["mapped"] == 1
    assert sorted(shop["unmapped"]) == ["GIFT", "LOST-9", "MUG-RED"]


def test_a_channel_that_cannot_be_read_is_reported_and_exits_1(
    tmp_path: Path, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A channel refusing the credentials shows its error; the others are still checked."""
    config = write_config(tmp_path, world, None)
    data = yaml.safe_load(config.read_text())
    data["channels"][1]["consumer_secret"] = "cs_wrong"
    config.write_text(yaml.safe_dump(data))
    assert main(["mapping", "check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "outlet         could not list listings: outlet: " in out
    assert "cs_wrong" not in out
    assert "shop                  4       1         3" in out


def test_a_bad_mapping_file_is_a_configuration_error(
    tmp_path: Path, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken mapping file exits 2 with the file, the line and the reason."""
    config = write_config(tmp_path, world, "channel_sku,erp_sku,quantity\nMUG-RED,MUG-1,lots\n")
    assert main(["mapping", "check", "--config", str(config)]) == 2
    assert (
        "skus.csv line 2: quantity must be a whole number of at least 1, not 'lots'"
        in capsys.readouterr().err
    )
