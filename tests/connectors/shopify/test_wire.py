"""Wire-level behaviour of the Shopify connector against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.base import Listing, QuantityUpdate
from connectors.shopify.client import ShopifyConnector
from connectors.shopify.settings import ShopifySettings
from syncd.errors import AuthError, CircuitOpenError, ConnectorError, ProtocolError, TransientError

LOCATION = "gid://shopify/Location/7"
Answer = httpx.Response | Callable[[dict[str, Any]], httpx.Response]


def item(n: int) -> str:
    return f"gid://shopify/InventoryItem/{n}"


def cost(
    requested: int = 10, actual: int | None = 10, available: float = 990, restore: float = 50
) -> dict[str, Any]:
    status = {"maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": restore}
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}


def data(payload: dict[str, Any], **spent: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": payload, "extensions": cost(**spent)})


def throttled(requested: int = 10, available: float = 0) -> httpx.Response:
    error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
    return httpx.Response(200, json={"errors": [error], "extensions": cost(requested, None, available)})


def set_answer(*errors: dict[str, Any]) -> httpx.Response:
    group = None if errors else {"id": "gid://shopify/InventoryAdjustmentGroup/1"}
    return data({"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": list(errors)}})


def user_error(code: str, index: int, leaf: str = "quantity") -> dict[str, Any]:
    return {"code": code, "field": ["input", "quantities", str(index), leaf], "message": f"{code} message"}


def variants_page(nodes: list[dict[str, Any]], has_next: bool, cursor: str | None) -> httpx.Response:
    page = {"nodes": nodes, "pageInfo": {"hasNextPage": has_next, "endCursor": cursor}}
    return data({"productVariants": page}, requested=752, actual=752)


def variant(n: int, quantity: int) -> dict[str, Any]:
    level = {"quantities": [{"name": "available", "quantity": quantity}]}
    inventory = {"id": item(n), "tracked": True, "inventoryLevel": level}
    return {"id": f"gid://shopify/ProductVariant/{n}", "sku": f"SKU-{n}", "inventoryItem": inventory}


COUNT = data({"productVariantsCount": {"count": 3, "precision": "EXACT"}}, requested=1, actual=1)


class Script:
    """Answers requests in order and keeps what was sent (GraphQL bodies, headers, URLs)."""

    def __init__(self, *answers: Answer):
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content) if request.content else {}
        self.bodies.append(body)
        if not self.answers:
            raise AssertionError(f"unexpected request {body.get('operationName')}")
        answer = self.answers.pop(0)
        return answer(body) if callable(answer) else answer

    @property
    def operations(self) -> list[str]:
        return [body.get("operationName", "") for body in self.bodies]


class Sleeps:
    """Records the waits asked for instead of waiting, and moves its clock on by them (the cost
    bucket refills on that clock, so a wait for points ends without real time passing)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 1_000.0

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def connect(sleeps: Sleeps) -> AsyncIterator[Callable[..., ShopifyConnector]]:
    made: list[ShopifyConnector] = []

    def make(script: Script, **overrides: Any) -> ShopifyConnector:
        values: dict[str, Any] = {
            "type": "shopify",
            "name": "shopify",
            "shop_domain": "example.myshopify.com",
            "access_token": "shpat_secret_token",
            "location_id": LOCATION,
            "rate_limit": 10_000,
            "burst": 10_000,
        }
        settings = ShopifySettings(**(values | overrides))
        connector = ShopifyConnector(
            settings, transport=httpx.MockTransport(script), sleep=sleeps, clock=sleeps.clock
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()


def updates(*specs: tuple[int, int, int | None]) -> list[QuantityUpdate]:
    return [QuantityUpdate(f"SKU-{n}", item(n), q, compare=c, key=f"push-{n}") for n, q, c in specs]


def idempotency_key(body: dict[str, Any]) -> str | None:
    match = re.search(r'@idempotent\(key: "([^"]+)"\)', body["query"])
    return match.group(1) if match else None


async def test_request_goes_to_the_versioned_endpoint_with_the_token_header(connect: Any) -> None:
    """Each call is a POST to /admin/api/{version}/graphql.json with X-Shopify-Access-Token."""
    script = Script(set_answer())
    shop = connect(script, api_version="2026-04")

    await shop.set_quantities(updates((1, 5, 4)))

    [request] = script.requests
    assert request.method == "POST"
    assert str(request.url) == "https://example.myshopify.com/admin/api/2026-04/graphql.json"
    assert request.headers["X-Shopify-Access-Token"] == "shpat_secret_token"


async def test_throttled_with_200_waits_for_the_bucket_then_succeeds(connect: Any, sleeps: Sleeps) -> None:
    """A THROTTLED answer (HTTP 200) is retried after (requested - available) / restoreRate seconds."""
    script = Script(throttled(requested=100, available=0), set_answer())
    shop = connect(script)

    result = await shop.set_quantities(updates((1, 5, 4), (2, 6, 3)))

    assert result.applied == {"SKU-1": 5, "SKU-2": 6}
    assert len(script.requests) == 2
    assert any(wait >= 2.0 for wait in sleeps.waits), sleeps  # 100 points at 50 per second
    assert script.bodies[0] == script.bodies[1]


async def test_idempotency_key_is_stable_across_a_retry_and_a_repeated_push(connect: Any) -> None:
    """The same push sends the same @idempotent key, on a retry and when pushed again; another push differs."""
    script = Script(throttled(), set_answer(), set_answer(), set_answer())
    shop = connect(script, api_version="2026-01")

    await shop.set_quantities(updates((1, 5, 4)))
    await shop.set_quantities(updates((1, 5, 4)))
    await shop.set_quantities(updates((1, 6, 4)))

    keys = [idempotency_key(body) for body in script.bodies]
    assert keys[0] is not None
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


async def test_http_429_is_retried_honouring_retry_after(connect: Any, sleeps: Sleeps) -> None:
    """HTTP 429 becomes a retried TransientError that waits at least Retry-After."""
    script = Script(
        httpx.Response(429, headers={"Retry-After": "3"}, json={"errors": "Throttled"}), set_answer()
    )
    shop = connect(script)

    result = await shop.set_quantities(updates((1, 5, 4)))

    assert result.applied == {"SKU-1": 5}
    assert any(wait >= 3 for wait in sleeps.waits)


async def test_persistent_throttling_raises_transient_error(connect: Any) -> None:
    """When every attempt is throttled the call raises TransientError carrying the wait."""
    script = Script(*[throttled(requested=500, available=0) for _ in range(4)])
    shop = connect(script)

    with pytest.raises(TransientError) as caught:
        await shop.set_quantities(updates((1, 5, 4)))

    assert caught.value.retry_after == pytest.approx(10.0)


async def test_bucket_low_makes_the_next_query_wait_before_sending(connect: Any, sleeps: Sleeps) -> None:
    """After an answer leaves too few points for the next query's known cost, the client waits first."""
    # The first page leaves 100 of 1000 points; the next page is expected to cost as much (752).
    first_page = {"nodes": [variant(1, 2)], "pageInfo": {"hasNextPage": True, "endCursor": "c1"}}
    script = Script(
        COUNT,
        data({"productVariants": first_page}, requested=752, actual=752, available=100),
        variants_page([variant(2, 3)], False, None),
    )
    shop = connect(script)

    listings = await shop.list_listings()

    assert [listing.quantity for listing in listings] == [2, 3]
    # A catalogue read leaves a quarter of the bucket (250 points) to pushes: it waits for
    # 752 + 250 - 100 points at 50 a second.
    assert any(wait == pytest.approx((752 + 250 - 100) / 50, rel=0.05) for wait in sleeps.waits), sleeps.waits


async def test_stale_compare_is_reported_stale_and_the_rest_applied(connect: Any) -> None:
    """CHANGE_FROM_QUANTITY_STALE puts the SKU in stale; the others are re-sent and applied."""
    script = Script(
        set_answer(user_error("CHANGE_FROM_QUANTITY_STALE", 1, "changeFromQuantity")), set_answer()
    )
    shop = connect(script)

    result = await shop.set_quantities(updates((1, 5, 4), (2, 6, 3), (3, 7, 2)))

    assert result.stale == ["SKU-2"]
    assert result.applied == {"SKU-1": 5, "SKU-3": 7}
    assert result.rejected == {}
    resent = script.bodies[1]["variables"]["input"]["quantities"]
    assert [q["inventoryItemId"] for q in resent] == [item(1), item(3)]
    assert idempotency_key(script.bodies[0]) != idempotency_key(script.bodies[1])


async def test_compare_quantity_stale_is_stale_on_older_versions(connect: Any) -> None:
    """COMPARE_QUANTITY_STALE (2025-10) is reported as stale too."""
    script = Script(set_answer(user_error("COMPARE_QUANTITY_STALE", 0, "compareQuantity")))
    shop = connect(script, api_version="2025-10")

    result = await shop.set_quantities(updates((1, 5, 4)))

    assert result.stale == ["SKU-1"]
    assert result.applied == {}


async def test_one_rejected_item_is_named_and_the_others_apply(connect: Any) -> None:
    """A per-item userError rejects only the item its field path points at."""
    script = Script(set_answer(user_error("INVALID_INVENTORY_ITEM", 1, "inventoryItemId")), set_answer())
    shop = connect(script)

    result = await shop.set_quantities(updates((1, 5, 4), (2, 6, 3), (3, 7, 2)))

    assert set(result.rejected) == {"SKU-2"}
    assert "INVALID_INVENTORY_ITEM" in result.rejected["SKU-2"]
    assert result.applied == {"SKU-1": 5, "SKU-3": 7}


async def test_errors_with_an_applied_group_count_the_others_applied(connect: Any) -> None:
    """If Shopify reports an adjustment group alongside userErrors, the unnamed items were applied."""
    answer = data(
        {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": {"id": "gid://shopify/InventoryAdjustmentGroup/9"},
                "userErrors": [user_error("INVALID_QUANTITY_NEGATIVE", 0)],
            }
        }
    )
    script = Script(answer)
    shop = connect(script)

    result = await shop.set_quantities(updates((1, -1, 4), (2, 6, 3)))

    assert set(result.rejected) == {"SKU-1"}
    assert result.applied == {"SKU-2": 6}
    assert len(script.requests) == 1


async def test_an_error_naming_no_item_rejects_the_whole_batch(connect: Any) -> None:
    """A userError without an item path refuses every item of that call, without looping."""
    script = Script(
        set_answer({"code": "INVALID_REASON", "field": ["input", "reason"], "message": "bad reason"})
    )
    shop = connect(script)

    result = await shop.set_quantities(updates((1, 5, 4), (2, 6, 3)))

    assert set(result.rejected) == {"SKU-1", "SKU-2"}
    assert result.applied == {}
    assert len(script.requests) == 1


async def test_compare_field_and_directive_follow_the_api_version(connect: Any) -> None:
    """2025-10 sends compareQuantity with ignoreCompareQuantity false and no @idempotent; 2026-01 sends changeFromQuantity and @idempotent."""
    old, new = Script(set_answer()), Script(set_answer())

    await connect(old, api_version="2025-10").set_quantities(updates((1, 5, 4)))
    await connect(new, api_version="2026-01").set_quantities(updates((1, 5, 4)))

    old_input = old.bodies[0]["variables"]["input"]
    assert old_input["ignoreCompareQuantity"] is False
    assert old_input["quantities"] == [
        {"inventoryItemId": item(1), "locationId": LOCATION, "quantity": 5, "compareQuantity": 4}
    ]
    assert "@idempotent" not in old.bodies[0]["query"]
    new_input = new.bodies[0]["variables"]["input"]
    assert "ignoreCompareQuantity" not in new_input
    assert new_input["quantities"] == [
        {"inventoryItemId": item(1), "locationId": LOCATION, "quantity": 5, "changeFromQuantity": 4}
    ]
    assert idempotency_key(new.bodies[0]) is not None
    assert new_input["name"] == "available" and new_input["reason"] == "correction"
    assert new_input["referenceDocumentUri"].startswith("gid://syncd/")


async def test_updates_without_compare_opt_out_explicitly(connect: Any) -> None:
    """Without a compare value, 2026+ sends changeFromQuantity null; 2025-10 sends a separate ignoreCompareQuantity call."""
    old, new = Script(set_answer(), set_answer()), Script(set_answer())

    await connect(old, api_version="2025-10").set_quantities(updates((1, 5, 4), (2, 6, None)))
    await connect(new, api_version="2026-10").set_quantities(updates((1, 5, 4), (2, 6, None)))

    assert [body["variables"]["input"]["ignoreCompareQuantity"] for body in old.bodies] == [False, True]
    assert "compareQuantity" not in old.bodies[1]["variables"]["input"]["quantities"][0]
    [body] = new.bodies
    assert [q["changeFromQuantity"] for q in body["variables"]["input"]["quantities"]] == [4, None]


async def test_more_than_250_updates_are_split_into_calls_of_250(connect: Any) -> None:
    """Updates are sent at most 250 quantities per call."""
    script = Script(set_answer(), set_answer())
    shop = connect(script)

    result = await shop.set_quantities(updates(*[(n, 1, 0) for n in range(1, 302)]))

    assert [len(b["variables"]["input"]["quantities"]) for b in script.bodies] == [250, 51]
    assert len(result.applied) == 301


async def test_malformed_refs_are_rejected_without_a_call(connect: Any) -> None:
    """An update whose ref is not an inventory item gid is rejected locally."""
    script = Script()
    shop = connect(script)

    result = await shop.set_quantities([QuantityUpdate("X", "p:12", 3)])

    assert set(result.rejected) == {"X"}
    assert script.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"<html>oops</html>"),
        httpx.Response(200, content=b'{"data": {"inventorySetQuantities": {"userErr'),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"extensions": {}}),
        httpx.Response(200, json={"data": {"inventorySetQuantities": {"userErrors": "no"}}}),
    ],
    ids=["html", "truncated", "array", "no-data", "bad-user-errors"],
)
async def test_malformed_bodies_raise_protocol_error(connect: Any, answer: httpx.Response) -> None:
    """Bodies that are not JSON, truncated or of the wrong shape raise ProtocolError."""
    shop = connect(Script(answer))

    with pytest.raises(ProtocolError):
        await shop.set_quantities(updates((1, 5, 4)))


async def test_variant_without_inventory_item_raises_protocol_error(connect: Any) -> None:
    """A variant node missing its inventoryItem is a malformed answer, not a silently dropped SKU."""
    broken = {"id": "gid://shopify/ProductVariant/1", "sku": "SKU-1"}
    shop = connect(Script(COUNT, variants_page([broken], False, None)))

    with pytest.raises(ProtocolError, match="inventoryItem"):
        await shop.list_listings()


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(
            401,
            json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
        ),
        httpx.Response(403, json={"errors": "Forbidden"}),
        httpx.Response(
            200,
            json={
                "errors": [
                    {
                        "message": "Access denied for inventorySetQuantities field.",
                        "extensions": {"code": "ACCESS_DENIED"},
                    }
                ]
            },
        ),
    ],
    ids=["401", "403", "access-denied"],
)
async def test_auth_failures_raise_auth_error_without_the_token(connect: Any, answer: httpx.Response) -> None:
    """401, 403 and ACCESS_DENIED raise AuthError, whose message never contains the token."""
    shop = connect(Script(answer))

    with pytest.raises(AuthError) as caught:
        await shop.set_quantities(updates((1, 5, 4)))

    assert "shpat_secret_token" not in str(caught.value)
    assert "shpat_secret_token" not in repr(shop.settings)


async def test_other_graphql_errors_raise_connector_error_not_retried(connect: Any) -> None:
    """A GraphQL error such as a cost limit raises ConnectorError after one call."""
    error = {
        "message": "Query cost is 1052, which exceeds the single query max cost limit (1000).",
        "extensions": {"code": "MAX_COST_EXCEEDED"},
    }
    script = Script(httpx.Response(200, json={"errors": [error]}))
    shop = connect(script)

    with pytest.raises(ConnectorError, match="max cost"):
        await shop.set_quantities(updates((1, 5, 4)))
    assert len(script.requests) == 1


async def test_next_page_without_cursor_does_not_loop(connect: Any) -> None:
    """hasNextPage true with a null endCursor raises ProtocolError after one page."""
    script = Script(COUNT, variants_page([variant(1, 2)], True, None))
    shop = connect(script)

    with pytest.raises(ProtocolError, match="endCursor"):
        await shop.list_listings()
    assert script.operations == ["VariantCount", "Variants"]


async def test_repeated_cursor_does_not_loop(connect: Any) -> None:
    """A server that answers the same cursor again is refused instead of paged forever."""
    script = Script(COUNT, *[variants_page([variant(1, 2)], True, "same") for _ in range(3)])
    shop = connect(script)

    with pytest.raises(ProtocolError, match="twice"):
        await shop.list_listings()
    assert len(script.requests) == 3


async def test_pages_follow_the_end_cursor(connect: Any) -> None:
    """Listings are read page by page, passing each endCursor as after, 250 at a time."""
    script = Script(
        COUNT,
        variants_page([variant(1, 2)], True, "c1"),
        variants_page([variant(2, 0), {**variant(3, 4), "sku": None}], False, None),
    )
    shop = connect(script)

    listings = await shop.list_listings()

    assert [(listing.sku, listing.quantity, listing.ref) for listing in listings] == [
        ("SKU-1", 2, item(1)),
        ("SKU-2", 0, item(2)),
    ]
    assert [b["variables"].get("after") for b in script.bodies[1:]] == [None, "c1"]
    assert script.bodies[1]["variables"]["first"] == 250
    assert script.bodies[1]["variables"]["locationId"] == LOCATION


async def test_primary_location_is_used_when_none_is_configured(connect: Any) -> None:
    """Without location settings the shop's primary location is looked up once and used for writes."""
    script = Script(
        data({"location": {"id": "gid://shopify/Location/55", "isActive": True}}), set_answer(), set_answer()
    )
    shop = connect(script, location_id=None)

    await shop.set_quantities(updates((1, 5, 4)))
    await shop.set_quantities(updates((1, 6, 5)))

    assert script.operations == ["PrimaryLocation", "SetQuantities", "SetQuantities"]
    assert (
        script.bodies[2]["variables"]["input"]["quantities"][0]["locationId"] == "gid://shopify/Location/55"
    )


def order(
    ident: int, updated: str, cancelled: str | None, lines: list[dict[str, Any]], more: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Order/{ident}",
        "legacyResourceId": str(ident),
        "updatedAt": updated,
        "cancelledAt": cancelled,
        "lineItems": {"nodes": lines, "pageInfo": {"hasNextPage": more is not None, "endCursor": more}},
    }


def line(ident: int, sku: str | None, quantity: int) -> dict[str, Any]:
    return {"id": f"gid://shopify/LineItem/{ident}", "sku": sku, "quantity": quantity}


async def test_orders_since_searches_by_update_time_and_reads_cancellations(connect: Any) -> None:
    """orders_since searches updated_at, follows extra line pages, and marks cancelled orders' lines."""
    orders = {
        "nodes": [
            order(11, "2026-11-23T10:00:05Z", None, [line(101, "A", 2), line(102, None, 1)], more="l1"),
            order(12, "2026-11-23T10:00:09Z", "2026-11-23T10:00:09Z", [line(103, "B", 1)]),
        ],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    more = {
        "node": {
            "lineItems": {"nodes": [line(104, "C", 3)], "pageInfo": {"hasNextPage": False, "endCursor": None}}
        }
    }
    script = Script(data({"orders": orders}), data(more))
    shop = connect(script)

    page = await shop.orders_since(datetime(2026, 11, 23, 10, 0, 0, 500_000, tzinfo=UTC))

    assert script.bodies[0]["variables"]["query"] == "updated_at:>='2026-11-23T10:00:00Z'"
    assert "sortKey: UPDATED_AT" in script.bodies[0]["query"]
    assert script.bodies[1]["variables"] == {"id": "gid://shopify/Order/11", "after": "l1"}
    assert sorted((ln.order_id, ln.line_key, ln.sku, ln.quantity, ln.status) for ln in page.lines) == [
        ("11", "101", "A", 2, "open"),
        ("11", "104", "C", 3, "open"),
        ("12", "103", "B", 1, "cancelled"),
    ]
    assert page.latest == datetime(2026, 11, 23, 10, 0, 9, tzinfo=UTC)


def orders_page(*nodes: dict[str, Any]) -> httpx.Response:
    return data({"orders": {"nodes": list(nodes), "pageInfo": {"hasNextPage": False, "endCursor": None}}})


@pytest.mark.parametrize("quantity", ["oops", 1.5, True, None, -1, 10**9])
async def test_malformed_order_between_good_ones_is_quarantined(connect: Any, quantity: Any) -> None:
    """A page with one order whose quantity is bad between two good ones yields the two good
    orders' lines, the bad one quarantined (field, value and bound named), and the cursor past all three."""
    bad_order = order(12, "2026-11-23T10:00:02Z", None, [line(102, "B", 1), line(103, "C", quantity)])
    script = Script(
        orders_page(
            order(11, "2026-11-23T10:00:01Z", None, [line(101, "A", 1)]),
            bad_order | {"email": "buyer@example.com"},
            order(13, "2026-11-23T10:00:03Z", None, [line(104, "D", 2)]),
        )
    )
    page = await connect(script).orders_since(datetime(2026, 11, 23, 10, tzinfo=UTC))

    assert sorted((ln.order_id, ln.sku) for ln in page.lines) == [("11", "A"), ("13", "D")]
    [bad] = page.quarantined
    assert (bad.connector, bad.kind, bad.ref) == ("shopify", "order", "12")
    assert "nodes[1].quantity" in bad.reason and repr(quantity) in bad.reason and "1000000" in bad.reason
    assert "buyer@example.com" not in bad.excerpt
    assert page.latest == datetime(2026, 11, 23, 10, 0, 3, tzinfo=UTC)


async def test_bad_line_on_a_later_line_page_quarantines_its_order(connect: Any) -> None:
    """An order whose second page of lines holds a bad quantity is quarantined whole: none of its
    lines count, so no part of it is reserved twice or half."""
    more = {
        "node": {
            "lineItems": {
                "nodes": [line(105, "E", "oops")],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            }
        }
    }
    script = Script(
        orders_page(
            order(11, "2026-11-23T10:00:01Z", None, [line(101, "A", 1)], more="l1"),
            order(13, "2026-11-23T10:00:03Z", None, [line(104, "D", 2)]),
        ),
        data(more),
    )
    page = await connect(script).orders_since(datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert [ln.order_id for ln in page.lines] == ["13"]
    assert [q.ref for q in page.quarantined] == ["11"]
    assert page.latest == datetime(2026, 11, 23, 10, 0, 3, tzinfo=UTC)


@pytest.mark.parametrize("level", [-1, 1_000_001])
async def test_implausible_level_is_never_believed(connect: Any, level: int) -> None:
    """An available level out of bounds reads as unknown for that SKU only, in listings and reads."""
    nodes = [variant(1, 4), variant(2, level)]
    script = Script(COUNT, variants_page(nodes, False, None))
    shop = connect(script)
    listings = {listing.sku: listing.quantity for listing in await shop.list_listings()}
    assert listings == {"SKU-1": 4, "SKU-2": None}

    items = data({"nodes": [node["inventoryItem"] for node in nodes]}, requested=6, actual=6)
    shop = connect(Script(items))
    wanted = [Listing("SKU-1", item(1), None), Listing("SKU-2", item(2), None)]
    assert await shop.read_quantities(wanted) == {"SKU-1": 4}


@pytest.mark.parametrize(
    ("answer", "opens"),
    [
        (throttled(requested=10, available=1000), False),
        (httpx.Response(429, headers={"Retry-After": "0"}), False),
        (httpx.Response(503), True),
        (httpx.Response(500, json={"errors": "Internal Server Error"}), True),
    ],
    ids=["throttled-200", "429", "503", "500"],
)
async def test_only_server_failures_open_the_circuit(
    connect: Any, answer: httpx.Response, opens: bool
) -> None:
    """THROTTLED answers and 429s never open the circuit; 5xx open it after circuit_failures tries,
    and then a call fails at once without waiting for cost points or reaching Shopify."""
    script = Script(*[answer] * 8)
    shop = connect(script, location_id=LOCATION, retry_attempts=4)
    with pytest.raises(TransientError):
        await shop.set_quantities(updates((1, 5, 4)))
    with pytest.raises(TransientError) as caught:
        await shop.set_quantities(updates((1, 5, 4)))
    assert shop.circuit is not None
    assert shop.circuit.state == ("open" if opens else "closed")
    assert len(script.requests) == (5 if opens else 8)
    assert isinstance(caught.value, CircuitOpenError) == opens
