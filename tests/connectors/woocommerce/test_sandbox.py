"""The WooCommerce sandbox behaves like WooCommerce where syncd can tell, and the connector uses it well."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from connectors.base import QuantityUpdate
from connectors.woocommerce.client import WooCommerceConnector
from tests.connectors.woocommerce.support import KEY, SECRET

API = "/wp-json/wc/v3"
AUTH = (KEY, SECRET)


async def seed(hooks: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    response = await hooks.post("/_sandbox/seed", json={"items": items})
    assert response.status_code == 201, response.text


async def api_calls(hooks: httpx.AsyncClient, route: str) -> int:
    calls: dict[str, int] = (await hooks.get("/_sandbox/stats")).json()["calls"]
    return calls.get(route, 0)


async def shown(hooks: httpx.AsyncClient) -> dict[str, int]:
    return {row["sku"]: row["quantity"] for row in (await hooks.get("/_sandbox/listings")).json()}


# ---------------------------------------------------------------------- batching (counted by the sandbox)


@pytest.mark.parametrize("count", [1, 100, 101, 250])
async def test_product_updates_take_one_batch_call_per_hundred(
    hooks: httpx.AsyncClient, woo: WooCommerceConnector, count: int
) -> None:
    """n product updates cost ceil(n/100) calls to /products/batch, and all of them land."""
    await seed(hooks, [{"sku": f"P-{n:03d}", "quantity": 1} for n in range(count)])
    listings = await woo.list_listings()

    result = await woo.set_quantities([QuantityUpdate(listing.sku, listing.ref, 9) for listing in listings])

    assert len(result.applied) == count
    assert await api_calls(hooks, f"POST {API}/products/batch") == math.ceil(count / 100)
    assert set((await shown(hooks)).values()) == {9}


async def test_variation_updates_are_batched_per_parent(
    hooks: httpx.AsyncClient, woo: WooCommerceConnector
) -> None:
    """Variations go to their own parent's variations/batch endpoint, one call per parent."""
    await seed(
        hooks,
        [{"sku": f"{p}-{s}", "quantity": 2, "parent": p} for p in ("TEE", "CAP") for s in ("S", "M", "L")]
        + [{"sku": "MUG", "quantity": 2}],
    )
    listings = await woo.list_listings()

    result = await woo.set_quantities([QuantityUpdate(listing.sku, listing.ref, 6) for listing in listings])

    assert result.applied == {listing.sku: 6 for listing in listings}
    calls: dict[str, int] = (await hooks.get("/_sandbox/stats")).json()["calls"]
    assert sorted(v for k, v in calls.items() if k.endswith("/variations/batch")) == [1, 1]
    assert calls[f"POST {API}/products/batch"] == 1


# ---------------------------------------------------------------------- REST behaviour


async def test_wrong_credentials_get_woocommerce_401(hooks: httpx.AsyncClient) -> None:
    """Bad Basic credentials (or none) get 401 with WooCommerce's error envelope."""
    for auth in [(KEY, "wrong"), None]:
        response = await hooks.get(f"{API}/products", auth=auth)
        assert response.status_code == 401
        assert response.json() == {
            "code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot list resources.",
            "data": {"status": 401},
        }


async def test_query_string_credentials_are_accepted(hooks: httpx.AsyncClient) -> None:
    """consumer_key/consumer_secret in the query string authenticate like Basic auth."""
    response = await hooks.get(f"{API}/products", params={"consumer_key": KEY, "consumer_secret": SECRET})

    assert response.status_code == 200


async def test_pages_carry_totals_and_links(hooks: httpx.AsyncClient) -> None:
    """List answers carry X-WP-Total, X-WP-TotalPages and prev/next links; default page size is 10."""
    await seed(hooks, [{"sku": f"P-{n:02d}", "quantity": n} for n in range(25)])

    first = await hooks.get(f"{API}/products", auth=AUTH)
    middle = await hooks.get(f"{API}/products", params={"page": 2}, auth=AUTH)

    assert len(first.json()) == 10
    assert (first.headers["x-wp-total"], first.headers["x-wp-totalpages"]) == ("25", "3")
    assert 'rel="next"' in first.headers["link"] and 'rel="prev"' not in first.headers["link"]
    assert 'page=1>; rel="prev"' in middle.headers["link"] and 'page=3>; rel="next"' in middle.headers["link"]


async def test_page_size_above_one_hundred_is_refused(hooks: httpx.AsyncClient) -> None:
    """per_page=101 gets 400 rest_invalid_param, as WordPress validates it."""
    response = await hooks.get(f"{API}/products", params={"per_page": 101}, auth=AUTH)

    assert response.status_code == 400
    assert response.json()["code"] == "rest_invalid_param"


async def test_sku_lookup_finds_products_and_variations(hooks: httpx.AsyncClient) -> None:
    """?sku=A,B matches both simple products and variations; ?type filters products only."""
    await seed(hooks, [{"sku": "MUG", "quantity": 1}, {"sku": "TEE-S", "quantity": 2, "parent": "TEE"}])

    found = (await hooks.get(f"{API}/products", params={"sku": "MUG,TEE-S"}, auth=AUTH)).json()
    variable = (await hooks.get(f"{API}/products", params={"type": "variable"}, auth=AUTH)).json()

    assert sorted((p["sku"], p["type"]) for p in found) == [("MUG", "simple"), ("TEE-S", "variation")]
    assert [(p["sku"], len(p["variations"])) for p in variable] == [("TEE", 1)]


async def test_batch_over_one_hundred_items_is_413(hooks: httpx.AsyncClient) -> None:
    """More than 100 items summed over create, update and delete is refused as too large."""
    body = {"update": [{"id": n} for n in range(60)], "delete": list(range(41))}

    response = await hooks.post(f"{API}/products/batch", json=body, auth=AUTH)

    assert response.status_code == 413
    assert response.json()["code"] == "woocommerce_rest_request_entity_too_large"


async def test_batch_reports_item_errors_inside_the_answer(hooks: httpx.AsyncClient) -> None:
    """A batch with one unknown id answers 200 with that item's error and applies the rest."""
    await seed(hooks, [{"sku": "MUG", "quantity": 1}])
    [mug] = (await hooks.get(f"{API}/products", auth=AUTH)).json()
    body = {"update": [{"id": mug["id"], "stock_quantity": 4}, {"id": 999999, "stock_quantity": 4}]}

    response = await hooks.post(f"{API}/products/batch", json=body, auth=AUTH)

    ok, failed = response.json()["update"]
    assert ok["stock_quantity"] == 4
    assert failed == {
        "id": 999999,
        "error": {
            "code": "woocommerce_rest_product_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 400},
        },
    }


async def test_stock_status_follows_quantity_and_negative_stock_is_kept(hooks: httpx.AsyncClient) -> None:
    """Setting stock_quantity moves stock_status; a negative quantity is stored as WooCommerce does."""
    await seed(hooks, [{"sku": "MUG", "quantity": 3}])
    [mug] = (await hooks.get(f"{API}/products", auth=AUTH)).json()

    negative = (await hooks.put(f"{API}/products/{mug['id']}", json={"stock_quantity": -2}, auth=AUTH)).json()
    restocked = (await hooks.put(f"{API}/products/{mug['id']}", json={"stock_quantity": 4}, auth=AUTH)).json()

    assert (mug["stock_status"], negative["stock_status"], restocked["stock_status"]) == (
        "instock",
        "outofstock",
        "instock",
    )
    assert negative["stock_quantity"] == -2
    assert restocked["date_modified_gmt"] >= mug["date_modified_gmt"]


async def test_quantity_is_ignored_when_stock_is_not_managed(hooks: httpx.AsyncClient) -> None:
    """stock_quantity sent with manage_stock false is dropped, so the item shows no quantity."""
    await seed(hooks, [{"sku": "MUG", "quantity": 3}])
    [mug] = (await hooks.get(f"{API}/products", auth=AUTH)).json()

    answer = await hooks.put(
        f"{API}/products/{mug['id']}", json={"manage_stock": False, "stock_quantity": 8}, auth=AUTH
    )

    assert (answer.json()["manage_stock"], answer.json()["stock_quantity"]) == (False, None)
    assert await shown(hooks) == {}


async def test_unknown_route_gets_rest_no_route(hooks: httpx.AsyncClient) -> None:
    """A path the API does not have answers WordPress's rest_no_route envelope."""
    response = await hooks.get(f"{API}/coupons", auth=AUTH)

    assert (response.status_code, response.json()["code"]) == (404, "rest_no_route")


# ---------------------------------------------------------------------- orders and shoppers


async def test_cancel_restores_stock_once(hooks: httpx.AsyncClient) -> None:
    """Cancelling puts the units back; cancelling again changes nothing."""
    await seed(hooks, [{"sku": "MUG", "quantity": 5}])
    order_id = (await hooks.post("/_sandbox/purchase", json={"sku": "MUG", "quantity": 3})).json()["order_id"]
    assert await shown(hooks) == {"MUG": 2}

    first = await hooks.post(f"/_sandbox/orders/{order_id}/cancel")
    second = await hooks.post(f"/_sandbox/orders/{order_id}/cancel")

    assert first.json()["status"] == second.json()["status"] == "cancelled"
    assert await shown(hooks) == {"MUG": 5}


async def test_purchase_of_unknown_or_unpurchasable_sku_is_404(hooks: httpx.AsyncClient) -> None:
    """Unknown SKUs and variable parents (buy a variation instead) cannot be purchased."""
    await seed(hooks, [{"sku": "TEE-S", "quantity": 2, "parent": "TEE"}])

    for sku in ("NOPE", "TEE"):
        response = await hooks.post("/_sandbox/purchase", json={"sku": sku, "quantity": 1})
        assert response.status_code == 404


async def test_variation_order_line_names_parent_and_variation(hooks: httpx.AsyncClient) -> None:
    """An order of a variation has product_id = parent and variation_id = the variation, as in WooCommerce."""
    await seed(hooks, [{"sku": "TEE-S", "quantity": 2, "parent": "TEE"}])
    [parent] = (await hooks.get(f"{API}/products", auth=AUTH)).json()
    order_id = (await hooks.post("/_sandbox/purchase", json={"sku": "TEE-S", "quantity": 1})).json()[
        "order_id"
    ]

    [line] = (await hooks.get(f"{API}/orders/{order_id}", auth=AUTH)).json()["line_items"]

    assert (line["product_id"], line["variation_id"], line["sku"]) == (
        parent["id"],
        parent["variations"][0],
        "TEE-S",
    )


async def test_orders_filter_by_status_and_modification_time(hooks: httpx.AsyncClient) -> None:
    """GET /orders honours status and excludes orders modified at or before modified_after."""
    await seed(hooks, [{"sku": "MUG", "quantity": 5}])
    kept = (await hooks.post("/_sandbox/purchase", json={"sku": "MUG", "quantity": 1})).json()["order_id"]
    gone = (await hooks.post("/_sandbox/purchase", json={"sku": "MUG", "quantity": 1})).json()["order_id"]
    await hooks.post(f"/_sandbox/orders/{gone}/cancel")
    modified = (await hooks.get(f"{API}/orders/{kept}", auth=AUTH)).json()["date_modified_gmt"]

    processing = await hooks.get(f"{API}/orders", params={"status": "processing"}, auth=AUTH)
    later = await hooks.get(
        f"{API}/orders", params={"modified_after": modified, "dates_are_gmt": "true"}, auth=AUTH
    )
    bad = await hooks.get(f"{API}/orders", params={"status": "shipped"}, auth=AUTH)

    assert [o["id"] for o in processing.json()] == [kept]
    assert kept not in [o["id"] for o in later.json()]
    assert bad.status_code == 400


# ---------------------------------------------------------------------- faults


async def test_injected_errors_use_woocommerce_envelopes_and_spare_the_hooks(
    hooks: httpx.AsyncClient,
) -> None:
    """With error_rate 1 every API call fails with a WooCommerce-shaped 500; hooks keep working."""
    changed = await hooks.post("/_sandbox/faults", json={"error_rate": 1})
    assert changed.json()["error_rate"] == 1

    api = await hooks.get(f"{API}/products", auth=AUTH)
    hook = await hooks.get("/_sandbox/listings")

    assert api.status_code == 500
    assert set(api.json()) == {"code", "message", "data"}
    assert hook.status_code == 200
    assert await api_calls(hooks, f"GET {API}/products") == 1


async def test_connector_rides_out_occasional_server_errors(
    hooks: httpx.AsyncClient, woo: WooCommerceConnector
) -> None:
    """With a fifth of API calls failing, retries still deliver the full catalogue."""
    await seed(hooks, [{"sku": f"P-{n:03d}", "quantity": n} for n in range(250)])
    await hooks.post("/_sandbox/faults", json={"error_rate": 0.2})

    listings = await woo.list_listings()

    assert len(listings) == 250
    assert await api_calls(hooks, f"GET {API}/products") > 3
