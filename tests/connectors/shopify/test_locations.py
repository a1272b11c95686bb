"""Several sync locations (``location_ids``): reads sum them, a new total is split by the documented
rule with compare-and-set kept, and odd answers (a location the shop lacks, a level missing from a
read) are clear errors. Against the sandbox, and scripted answers for what it never sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from connectors.base import Listing, QuantityUpdate
from connectors.shopify.client import ShopifyConnector
from connectors.shopify.settings import ShopifySettings
from syncd.errors import ConnectorError, ProtocolError
from tests.connectors.shopify.support import no_wait

MAIN = "gid://shopify/Location/1"
STORE = "gid://shopify/Location/2"
BACK = "gid://shopify/Location/3"
OTHER = "gid://shopify/Location/4"


@pytest.fixture
async def seeded(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    """A shop with four locations; syncd is told about the first three."""
    items = [
        {"sku": "TEE", "quantity": 5, "locations": {STORE: 3, BACK: 2, OTHER: 7}},
        {"sku": "CAP", "quantity": 0, "locations": {STORE: 4}},
        {"sku": "MUG", "quantity": 1},
    ]
    response = await hooks.post("/_sandbox/seed", json={"items": items})
    assert response.status_code == 201
    return hooks


@pytest.fixture
async def connect(
    shop_app: Starlette, make_settings: Callable[..., ShopifySettings]
) -> AsyncIterator[Callable[..., ShopifyConnector]]:
    made: list[ShopifyConnector] = []

    def make(**overrides: Any) -> ShopifyConnector:
        settings = make_settings(**({"location_ids": [MAIN, STORE, BACK]} | overrides))
        made.append(ShopifyConnector(settings, transport=httpx.ASGITransport(shop_app), sleep=no_wait))
        return made[-1]

    yield make
    for connector in made:
        await connector.aclose()


async def levels(hooks: httpx.AsyncClient, sku: str) -> dict[str, int]:
    rows = (await hooks.get("/_sandbox/listings")).json()
    row = next(row for row in rows if row["sku"] == sku)
    return row.get("locations") or {MAIN: row["quantity"]}


async def listing(shop: ShopifyConnector, sku: str) -> Listing:
    return next(x for x in await shop.list_listings() if x.sku == sku)


async def test_a_variant_shows_the_sum_of_its_named_locations(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """Listings and read-backs sum the named locations; a location not named is not counted."""
    shop = connect()
    listings = {x.sku: x.quantity for x in await shop.list_listings()}
    assert listings == {"TEE": 10, "CAP": 4, "MUG": 1}

    read = await shop.read_quantities(await shop.list_listings())
    assert read == listings


async def test_bulk_reads_sum_the_named_locations_too(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """A catalogue above bulk_threshold is read by a bulk query with the same sums."""
    shop = connect(bulk_threshold=1)
    assert {x.sku: x.quantity for x in await shop.list_listings()} == {"TEE": 10, "CAP": 4, "MUG": 1}


async def test_an_increase_goes_to_the_first_named_location(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """The first named location takes the change; the others and the unnamed one keep theirs."""
    shop = connect()
    tee = await listing(shop, "TEE")

    result = await shop.set_quantities([QuantityUpdate("TEE", tee.ref, 14, compare=10)])

    assert result.applied == {"TEE": 14}
    assert await levels(seeded, "TEE") == {MAIN: 9, STORE: 3, BACK: 2, OTHER: 7}


async def test_a_total_below_the_others_lowers_them_last_named_first(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """Below what the other locations hold, they are lowered from the last named on: never more shown than the total."""
    shop = connect()
    tee = await listing(shop, "TEE")

    await shop.set_quantities([QuantityUpdate("TEE", tee.ref, 4, compare=10)])
    assert await levels(seeded, "TEE") == {MAIN: 0, STORE: 3, BACK: 1, OTHER: 7}
    assert await shop.read_quantities([tee]) == {"TEE": 4}

    await shop.set_quantities([QuantityUpdate("TEE", tee.ref, 0, compare=4)])
    assert await levels(seeded, "TEE") == {MAIN: 0, STORE: 0, BACK: 0, OTHER: 7}


async def test_an_item_not_stocked_at_the_first_location_changes_at_the_next(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """The change goes to the first named location that stocks the item (CAP is at STORE only)."""
    shop = connect(location_ids=[BACK, STORE])
    cap = await listing(shop, "CAP")

    result = await shop.set_quantities([QuantityUpdate("CAP", cap.ref, 6, compare=4)])

    assert result.applied == {"CAP": 6}
    assert await levels(seeded, "CAP") == {MAIN: 0, STORE: 6}


async def test_an_item_at_none_of_the_named_locations_is_unmanaged_and_refused(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """MUG, stocked only at the unnamed primary location, is listed unmanaged and a write to it is refused."""
    shop = connect(location_ids=[STORE, BACK])
    mug = await listing(shop, "MUG")
    assert (mug.quantity, mug.managed) == (None, False)

    result = await shop.set_quantities([QuantityUpdate("MUG", mug.ref, 3)])

    assert "not stocked at any of the sync locations" in result.rejected["MUG"]
    assert await levels(seeded, "MUG") == {MAIN: 1}


async def test_compare_and_set_is_on_the_total(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """A sale at any named location since syncd's read makes the write stale: nothing is written."""
    shop = connect()
    tee = await listing(shop, "TEE")
    assert (await seeded.post("/_sandbox/purchase", json={"sku": "TEE", "quantity": 6})).status_code == 201

    result = await shop.set_quantities([QuantityUpdate("TEE", tee.ref, 12, compare=10)])

    assert result.stale == ["TEE"] and not result.applied
    assert sum((await levels(seeded, "TEE")).values()) == 17 - 6


@pytest.mark.parametrize("version", ["2026-10", "2025-10"])
async def test_a_write_without_compare_still_splits(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector], version: str
) -> None:
    """Without a compare value the split is the same, on both compare-and-set API forms."""
    shop = connect(api_version=version)
    tee = await listing(shop, "TEE")

    result = await shop.set_quantities([QuantityUpdate("TEE", tee.ref, 3), QuantityUpdate("CAP", "x", 1)])

    assert result.applied == {"TEE": 3} and "CAP" in result.rejected
    assert await levels(seeded, "TEE") == {MAIN: 0, STORE: 3, BACK: 0, OTHER: 7}


async def test_a_named_location_the_shop_lacks_is_a_clear_error(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """A location id the shop does not have fails the first call with its id, before any read or write."""
    shop = connect(location_ids=[MAIN, "gid://shopify/Location/99"])

    with pytest.raises(ConnectorError, match=r"location_ids: gid://shopify/Location/99 not found"):
        await shop.list_listings()
    assert await levels(seeded, "TEE") == {MAIN: 5, STORE: 3, BACK: 2, OTHER: 7}


async def test_a_single_named_location_is_checked_too(
    seeded: httpx.AsyncClient, connect: Callable[..., ShopifyConnector]
) -> None:
    """location_ids with one unknown location fails the same way (it would read every item as unstocked)."""
    shop = connect(location_ids=["gid://shopify/Location/99"])

    with pytest.raises(ConnectorError, match=r"location_ids: gid://shopify/Location/99 not found"):
        await shop.read_quantities([Listing("TEE", "gid://shopify/InventoryItem/1", 1)])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"location_id": MAIN, "location_ids": [STORE]}, "not both"),
        ({"location_ids": [MAIN, MAIN]}, "more than once"),
        ({"location_ids": ["Location 2"]}, "location_ids"),
        ({"location_ids": []}, "location_ids"),
    ],
    ids=["both", "twice", "not-a-gid", "empty"],
)
def test_bad_location_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    """location_id and location_ids exclude each other; ids are location gids, each named once."""
    base = {"type": "shopify", "name": "shop", "shop_domain": "x.myshopify.com", "access_token": "t"}
    with pytest.raises(ValidationError, match=message):
        ShopifySettings(**(base | overrides))


# ---------------------------------------------------------------------------- scripted answers


def answer(payload: dict[str, Any]) -> httpx.Response:
    status = {"maximumAvailable": 1000.0, "currentlyAvailable": 990, "restoreRate": 50}
    extensions = {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10, "throttleStatus": status}}
    return httpx.Response(200, json={"data": payload, "extensions": extensions})


def level(quantity: int | None) -> dict[str, Any] | None:
    return None if quantity is None else {"quantities": [{"name": "available", "quantity": quantity}]}


LOCATIONS = answer(
    {
        "nodes": [
            {"id": MAIN, "name": "Main", "isActive": True},
            {"id": STORE, "name": "Store", "isActive": True},
        ]
    }
)


def scripted(*answers: httpx.Response) -> tuple[ShopifyConnector, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return queue.pop(0)

    settings = ShopifySettings(
        type="shopify", name="shop", shop_domain="x.myshopify.com", access_token="t",
        location_ids=[MAIN, STORE], rate_limit=10_000, burst=10_000,
    )  # fmt: skip
    return ShopifyConnector(settings, transport=httpx.MockTransport(handle), sleep=no_wait), sent


async def test_an_inactive_named_location_is_a_clear_error() -> None:
    """A named location Shopify reports inactive is refused with its id."""
    inactive = answer(
        {
            "nodes": [
                {"id": MAIN, "name": "Main", "isActive": True},
                {"id": STORE, "name": "Store", "isActive": False},
            ]
        }
    )
    shop, _ = scripted(inactive)

    with pytest.raises(ConnectorError, match=r"location_ids: gid://shopify/Location/2 not active"):
        await shop.read_quantities([Listing("A", "gid://shopify/InventoryItem/1", 1)])
    await shop.aclose()


async def test_a_level_missing_from_a_read_is_a_protocol_error() -> None:
    """An answer without the level field of a named location is malformed, not 0 units there."""
    node = {"id": "gid://shopify/InventoryItem/1", "sku": "A", "tracked": True, "level0": level(4)}
    shop, _ = scripted(LOCATIONS, answer({"nodes": [node]}))

    with pytest.raises(ProtocolError, match=r"no level for location gid://shopify/Location/2 \(level1\)"):
        await shop.read_quantities([Listing("A", "gid://shopify/InventoryItem/1", 1)])
    await shop.aclose()


async def test_a_null_level_counts_as_not_stocked_there() -> None:
    """A null level (not stocked at that location) adds nothing; the others are summed."""
    node = {
        "id": "gid://shopify/InventoryItem/1",
        "sku": "A",
        "tracked": True,
        "level0": None,
        "level1": level(4),
    }
    shop, sent = scripted(LOCATIONS, answer({"nodes": [node]}))

    assert await shop.read_quantities([Listing("A", "gid://shopify/InventoryItem/1", 1)]) == {"A": 4}
    assert sent[1]["variables"] | {"ids": None} == {"ids": None, "location0": MAIN, "location1": STORE}
    await shop.aclose()


async def test_a_stale_level_at_any_location_makes_the_whole_update_stale() -> None:
    """Each changed level is sent with the level read; a mismatch on any of them is stale for the SKU."""
    ref = "gid://shopify/InventoryItem/1"
    node = {"id": ref, "sku": "A", "tracked": True, "level0": level(1), "level1": level(5)}
    stale = {
        "code": "CHANGE_FROM_QUANTITY_STALE",
        "field": ["input", "quantities", "1", "changeFromQuantity"],
        "message": "stale",
    }
    shop, sent = scripted(
        LOCATIONS,
        answer({"nodes": [node]}),
        answer({"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": [stale]}}),
    )

    result = await shop.set_quantities([QuantityUpdate("A", ref, 2, compare=6)])

    assert result.stale == ["A"] and not result.applied and not result.rejected
    quantities = sent[2]["variables"]["input"]["quantities"]
    assert quantities == [
        {"inventoryItemId": ref, "locationId": MAIN, "quantity": 0, "changeFromQuantity": 1},
        {"inventoryItemId": ref, "locationId": STORE, "quantity": 2, "changeFromQuantity": 5},
    ]
    await shop.aclose()


async def test_a_total_already_shown_writes_nothing() -> None:
    """When the levels already add up to the total, the update is applied without a write."""
    ref = "gid://shopify/InventoryItem/1"
    node = {"id": ref, "sku": "A", "tracked": True, "level0": level(1), "level1": level(5)}
    shop, sent = scripted(LOCATIONS, answer({"nodes": [node]}))

    result = await shop.set_quantities([QuantityUpdate("A", ref, 6, compare=6)])

    assert result.applied == {"A": 6}
    assert [body["operationName"] for body in sent] == ["Locations", "InventoryItems"]
    await shop.aclose()
