"""Named warehouses (``warehouse_ids``) against the sandbox: reads sum them, a new total is split by
the documented rule, warehouses not named are left alone, and a name the shop lacks is a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from connectors.base import Listing, QuantityUpdate
from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.settings import TikTokShopSettings
from syncd.errors import ConnectorError
from tests.connectors.tiktok_shop.support import no_wait


@pytest.fixture
async def seeded(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    """W-FBT holds units TikTok fulfils itself; syncd is told about W-EAST and W-WEST only."""
    items = [
        {"sku": "TEE", "warehouses": {"W-FBT": 7, "W-EAST": 5, "W-WEST": 3}},
        {"sku": "CAP", "warehouses": {"W-WEST": 4}},
        {"sku": "MUG", "warehouses": {"W-FBT": 2}},
    ]
    assert (await hooks.post("/_sandbox/seed", json={"items": items})).status_code == 201
    return hooks


@pytest.fixture
async def connect(
    tts_app: Starlette, make_settings: Callable[..., TikTokShopSettings]
) -> AsyncIterator[Callable[..., TikTokShopConnector]]:
    made: list[TikTokShopConnector] = []

    def make(**overrides: Any) -> TikTokShopConnector:
        settings = make_settings(**({"warehouse_ids": ["W-EAST", "W-WEST"]} | overrides))
        made.append(TikTokShopConnector(settings, transport=httpx.ASGITransport(tts_app), sleep=no_wait))
        return made[-1]

    yield make
    for connector in made:
        await connector.aclose()


async def stock(hooks: httpx.AsyncClient, sku: str) -> dict[str, int]:
    rows = (await hooks.get("/_sandbox/listings")).json()
    warehouses: dict[str, int] = next(row["warehouses"] for row in rows if row["sku"] == sku)
    return warehouses


async def listings(conn: TikTokShopConnector) -> dict[str, Listing]:
    return {listing.sku: listing for listing in await conn.list_listings()}


async def test_a_sku_shows_the_sum_of_its_named_warehouses(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """Listings and read-backs count the named warehouses only; a SKU in none of them is unmanaged."""
    conn = connect()
    listed = await listings(conn)

    assert {sku: (x.quantity, x.managed) for sku, x in listed.items()} == {
        "TEE": (8, True),
        "CAP": (4, True),
        "MUG": (None, False),
    }
    assert await conn.read_quantities(list(listed.values())) == {"TEE": 8, "CAP": 4}


async def test_an_increase_goes_to_the_first_named_warehouse(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """The first named warehouse takes the change; the other named one and W-FBT keep theirs."""
    conn = connect()
    tee = (await listings(conn))["TEE"]

    assert (await conn.set_quantities([QuantityUpdate("TEE", tee.ref, 12)])).applied == {"TEE": 12}
    assert await stock(seeded, "TEE") == {"W-FBT": 7, "W-EAST": 9, "W-WEST": 3}


async def test_a_total_below_the_others_lowers_them_last_named_first(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """Below what the other named warehouses hold, they are lowered too: the named ones add up to the total."""
    conn = connect(warehouse_ids=["W-WEST", "W-EAST"])
    tee = (await listings(conn))["TEE"]

    await conn.set_quantities([QuantityUpdate("TEE", tee.ref, 2)])
    assert await stock(seeded, "TEE") == {"W-FBT": 7, "W-EAST": 2, "W-WEST": 0}
    assert await conn.read_quantities([tee]) == {"TEE": 2}

    await conn.set_quantities([QuantityUpdate("TEE", tee.ref, 2)])
    assert await stock(seeded, "TEE") == {"W-FBT": 7, "W-EAST": 2, "W-WEST": 0}


async def test_a_sku_in_none_of_the_named_warehouses_is_refused(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """A write to a SKU stocked only outside the named warehouses is refused and changes nothing."""
    conn = connect()
    mug = (await listings(conn))["MUG"]

    result = await conn.set_quantities([QuantityUpdate("MUG", mug.ref, 3)])

    assert "none of the warehouses warehouse_ids names" in result.rejected["MUG"]
    assert await stock(seeded, "MUG") == {"W-FBT": 2}


async def test_a_write_before_any_read_looks_the_levels_up(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """A fresh connector reads the SKU's levels before it splits a write."""
    ref = (await listings(connect()))["TEE"].ref

    result = await connect().set_quantities([QuantityUpdate("TEE", ref, 6)])

    assert result.applied == {"TEE": 6}
    assert await stock(seeded, "TEE") == {"W-FBT": 7, "W-EAST": 3, "W-WEST": 3}


async def test_a_named_warehouse_the_shop_lacks_is_a_clear_error(
    seeded: httpx.AsyncClient, connect: Callable[..., TikTokShopConnector]
) -> None:
    """A warehouse id the shop does not have fails the first call, naming it and the shop's warehouses."""
    conn = connect(warehouse_ids=["W-EAST", "W-SOUTH"])

    with pytest.raises(
        ConnectorError, match=r"warehouse_ids: W-SOUTH not in the shop; its warehouses: .*W-EAST"
    ):
        await conn.list_listings()
    with pytest.raises(ConnectorError, match="W-SOUTH"):
        await conn.set_quantities([QuantityUpdate("TEE", "1:2", 1)])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"warehouse_id": "W1", "warehouse_ids": ["W2"]}, "not both"),
        ({"warehouse_ids": ["W1", "W1"]}, "more than once"),
        ({"warehouse_ids": []}, "warehouse_ids"),
        ({"warehouse_ids": [""]}, "warehouse_ids"),
    ],
    ids=["both", "twice", "empty", "blank"],
)
def test_bad_warehouse_settings_are_refused(
    make_settings: Callable[..., TikTokShopSettings], overrides: dict[str, Any], message: str
) -> None:
    """warehouse_id and warehouse_ids exclude each other; each named warehouse is named once."""
    with pytest.raises(ValidationError, match=message):
        make_settings(**overrides)
