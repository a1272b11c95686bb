"""The Shopify sandbox behaves like the Admin GraphQL API where syncd can tell."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from connectors.shopify import queries
from connectors.shopify.client import ShopifyConnector
from connectors.shopify.sandbox import INVALID_TOKEN, create_app
from connectors.shopify.settings import ShopifySettings
from tests.connectors.shopify.support import BASE_URL, TOKEN, no_wait

PATH = "/admin/api/2026-10/graphql.json"


@pytest.fixture
async def small_bucket() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(access_token=TOKEN, bucket_size=100, restore_rate=0.001)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        items = [{"sku": f"S-{n}", "quantity": n} for n in range(60)]
        assert (await client.post("/_sandbox/seed", json={"items": items})).status_code == 201
        yield client


async def gql(
    client: httpx.AsyncClient,
    operation: str,
    document: str,
    variables: dict[str, Any],
    *,
    path: str = PATH,
    token: str = TOKEN,
) -> httpx.Response:
    body = {"query": document, "variables": variables, "operationName": operation}
    return await client.post(path, json=body, headers={"X-Shopify-Access-Token": token})


async def test_wrong_token_is_401_with_shopifys_message(hooks: httpx.AsyncClient) -> None:
    """A wrong access token gets 401 and Shopify's error text."""
    response = await gql(hooks, "VariantCount", queries.VARIANT_COUNT, {}, token="nope")

    assert response.status_code == 401
    assert response.json() == {"errors": INVALID_TOKEN}


async def test_every_answer_carries_the_cost_and_an_empty_bucket_throttles(
    small_bucket: httpx.AsyncClient,
) -> None:
    """Answers report extensions.cost; a query costing more than is left gets THROTTLED with HTTP 200."""
    variables = {"first": 30, "after": None, "locationId": "gid://shopify/Location/1"}
    first = await gql(small_bucket, "Variants", queries.VARIANTS, variables)
    second = await gql(small_bucket, "Variants", queries.VARIANTS, variables)

    spent = first.json()["extensions"]["cost"]
    assert (spent["requestedQueryCost"], spent["actualQueryCost"]) == (92, 92)
    assert spent["throttleStatus"]["maximumAvailable"] == 100
    assert second.status_code == 200
    assert second.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert second.json()["extensions"]["cost"]["actualQueryCost"] is None
    assert "data" not in second.json()


async def test_connector_waits_for_the_sandbox_bucket(make_settings: Callable[..., ShopifySettings]) -> None:
    """Against a small bucket the connector reads everything, waiting by the bucket instead of failing."""
    app = create_app(access_token=TOKEN, bucket_size=800, restore_rate=8000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as hooks:
        items = [{"sku": f"S-{n}", "quantity": n} for n in range(400)]
        await hooks.post("/_sandbox/seed", json={"items": items})
        connector = ShopifyConnector(make_settings(), transport=httpx.ASGITransport(app))
        try:
            listings = await connector.list_listings()
        finally:
            await connector.aclose()

    assert len(listings) == 400
    assert connector.bucket.waited > 0


async def test_page_size_and_input_arrays_are_capped_at_250(hooks: httpx.AsyncClient) -> None:
    """first: 251 and 251 quantities are refused as Shopify refuses them."""
    page = await gql(
        hooks, "Variants", queries.VARIANTS, {"first": 251, "locationId": "gid://shopify/Location/1"}
    )
    quantities = [
        {
            "inventoryItemId": f"gid://shopify/InventoryItem/{n}",
            "locationId": "x",
            "quantity": 1,
            "changeFromQuantity": None,
        }
        for n in range(251)
    ]
    payload = {"name": "available", "reason": "correction", "quantities": quantities}
    write = await gql(
        hooks, "SetQuantities", queries.set_quantities_mutation("2026-10", "k-1"), {"input": payload}
    )

    assert "250" in page.json()["errors"][0]["message"]
    assert write.json()["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"


async def test_new_compare_field_is_refused_on_old_versions_and_required_on_new(
    hooks: httpx.AsyncClient,
) -> None:
    """changeFromQuantity and @idempotent do not exist before 2026-01; from 2026-04 changeFromQuantity is required."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 1}]})
    [row] = (await hooks.get("/_sandbox/listings")).json()
    entry = {
        "inventoryItemId": row["inventory_item_id"],
        "locationId": "gid://shopify/Location/1",
        "quantity": 2,
    }
    payload = {"name": "available", "reason": "correction", "quantities": [entry | {"changeFromQuantity": 1}]}
    old_path = "/admin/api/2025-10/graphql.json"

    old = await gql(
        hooks,
        "SetQuantities",
        queries.set_quantities_mutation("2025-10", "k"),
        {"input": payload},
        path=old_path,
    )
    directive = await gql(
        hooks,
        "SetQuantities",
        queries.set_quantities_mutation("2026-01", "k"),
        {"input": payload},
        path=old_path,
    )
    missing = await gql(
        hooks,
        "SetQuantities",
        queries.set_quantities_mutation("2026-10", "k2"),
        {"input": payload | {"quantities": [entry]}},
    )

    assert old.json()["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert directive.json()["errors"][0]["extensions"]["code"] == "undefinedDirective"
    assert missing.json()["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert (await hooks.get("/_sandbox/listings")).json()[0]["quantity"] == 1


async def test_idempotent_key_replays_and_refuses_other_parameters(hooks: httpx.AsyncClient) -> None:
    """The same key with the same input replays the answer once applied; with other input it is refused."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 1}]})
    [row] = (await hooks.get("/_sandbox/listings")).json()
    entry = {
        "inventoryItemId": row["inventory_item_id"],
        "locationId": "gid://shopify/Location/1",
        "quantity": 5,
        "changeFromQuantity": 1,
    }
    payload = {"name": "available", "reason": "correction", "quantities": [entry]}
    document = queries.set_quantities_mutation("2026-10", "same-key")

    first = await gql(hooks, "SetQuantities", document, {"input": payload})
    replay = await gql(hooks, "SetQuantities", document, {"input": payload})
    other = await gql(
        hooks, "SetQuantities", document, {"input": payload | {"quantities": [entry | {"quantity": 6}]}}
    )

    assert first.json()["data"] == replay.json()["data"]
    assert first.json()["data"]["inventorySetQuantities"]["userErrors"] == []
    [error] = other.json()["data"]["inventorySetQuantities"]["userErrors"]
    assert error["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert (await hooks.get("/_sandbox/listings")).json()[0]["quantity"] == 5


async def test_stale_push_is_reported_stale_after_a_sale(
    hooks: httpx.AsyncClient, shopify: ShopifyConnector
) -> None:
    """A push whose compare value predates a sale comes back stale and changes nothing."""
    from connectors.base import QuantityUpdate

    await hooks.post(
        "/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 4}, {"sku": "B", "quantity": 4}]}
    )
    listings = await shopify.list_listings()
    assert (await hooks.post("/_sandbox/purchase", json={"sku": "A", "quantity": 1})).status_code == 201

    result = await shopify.set_quantities(
        [QuantityUpdate(x.sku, x.ref, 9, compare=4, key=f"k-{x.sku}") for x in listings]
    )

    assert result.stale == ["A"]
    assert result.applied == {"B": 9}
    assert {row["sku"]: row["quantity"] for row in (await hooks.get("/_sandbox/listings")).json()} == {
        "A": 3,
        "B": 9,
    }


async def test_large_catalogue_is_read_with_a_bulk_operation(
    shop_app: Any, hooks: httpx.AsyncClient, make_settings: Callable[..., ShopifySettings]
) -> None:
    """Above bulk_threshold listings come from a bulk query's JSONL, fetched without the access token."""
    seen: list[httpx.Request] = []
    inner = httpx.ASGITransport(shop_app)

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

    await hooks.post("/_sandbox/seed", json={"items": [{"sku": f"B-{n}", "quantity": n} for n in range(30)]})
    connector = ShopifyConnector(make_settings(bulk_threshold=10), transport=Recording(), sleep=no_wait)
    try:
        listings = await connector.list_listings()
        read = await connector.read_quantities(listings)
    finally:
        await connector.aclose()

    assert {x.sku: x.quantity for x in listings} == {f"B-{n}": n for n in range(30)}
    assert read == {f"B-{n}": n for n in range(30)}
    downloads = [r for r in seen if r.url.path.endswith(".jsonl")]
    assert len(downloads) == 2
    assert all("x-shopify-access-token" not in r.headers for r in downloads)


async def test_purchase_above_available_is_refused(hooks: httpx.AsyncClient) -> None:
    """The sandbox sells against the shown quantity: 409 with what is available."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 2}]})

    refused = await hooks.post("/_sandbox/purchase", json={"sku": "A", "quantity": 3})
    unknown = await hooks.post("/_sandbox/purchase", json={"sku": "Z", "quantity": 1})

    assert (refused.status_code, refused.json()) == (409, {"error": "insufficient_stock", "available": 2})
    assert unknown.status_code == 404


async def test_injected_throttling_is_a_429_the_connector_retries(
    hooks: httpx.AsyncClient, shopify: ShopifyConnector
) -> None:
    """With throttle faults on, the connector still completes by retrying 429 answers."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 2}]})
    await hooks.post("/_sandbox/faults", json={"throttle_rate": 0.3})

    listings = await shopify.list_listings()

    assert [(x.sku, x.quantity) for x in listings] == [("A", 2)]
