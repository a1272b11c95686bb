"""The WooCommerce connector against hand-made HTTP answers: throttling, failures, malformed bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.base import Listing, QuantityUpdate
from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.settings import WooCommerceSettings
from syncd.errors import AuthError, ProtocolError, TransientError
from tests.connectors.woocommerce.support import KEY, SECRET, no_wait

Handler = Callable[[httpx.Request], httpx.Response]
Factory = Callable[..., WooCommerceConnector]


def product(ident: int, sku: str, quantity: int | None = 5, **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "sku": sku,
        "type": "simple",
        "manage_stock": quantity is not None,
        "stock_quantity": quantity,
        "variations": [],
        "parent_id": 0,
    } | extra


def page(rows: list[Any], total_pages: str | None = "1", status: int = 200) -> httpx.Response:
    headers = {"X-WP-TotalPages": total_pages} if total_pages is not None else {}
    return httpx.Response(status, json=rows, headers=headers)


def woo_error(code: str, status: int, **headers: str) -> httpx.Response:
    body = {"code": code, "message": "Refused.", "data": {"status": status}}
    return httpx.Response(status, json=body, headers=headers)


def batch_echo(request: httpx.Request) -> httpx.Response:
    """A batch endpoint that applies every update it is sent."""
    updates = json.loads(request.content)["update"]
    return httpx.Response(
        200, json={"update": [product(u["id"], f"SKU-{u['id']}", u["stock_quantity"]) for u in updates]}
    )


@pytest.fixture
async def connect(make_settings: Callable[..., WooCommerceSettings]) -> AsyncIterator[Factory]:
    opened: list[WooCommerceConnector] = []

    def factory(handler: Handler, **overrides: Any) -> WooCommerceConnector:
        connector = WooCommerceConnector(
            make_settings(**overrides), transport=httpx.MockTransport(handler), sleep=no_wait
        )
        opened.append(connector)
        return connector

    yield factory
    for connector in opened:
        await connector.aclose()


def updates_for(ids: range) -> list[QuantityUpdate]:
    return [QuantityUpdate(f"SKU-{i}", f"p:{i}", i % 7) for i in ids]


# ---------------------------------------------------------------------- transport and status codes


async def test_throttled_request_is_retried(connect: Factory) -> None:
    """A 429 with Retry-After is retried, and the listing then arrives."""
    answers = iter([woo_error("too_many_requests", 429, **{"Retry-After": "0.01"}), page([product(1, "A")])])
    connector = connect(lambda request: next(answers))

    listings = await connector.list_listings()

    assert [listing.sku for listing in listings] == ["A"]


async def test_persistent_throttling_gives_up_with_the_requested_wait(connect: Factory) -> None:
    """Throttling on every attempt ends in TransientError carrying the server's Retry-After."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return woo_error("too_many_requests", 429, **{"Retry-After": "0.01"})

    connector = connect(handler, retry_attempts=3)

    with pytest.raises(TransientError) as caught:
        await connector.list_listings()

    assert caught.value.retry_after == pytest.approx(0.01)
    assert len(calls) == 3


async def test_server_error_then_success_is_retried(connect: Factory) -> None:
    """A 500 followed by a good answer succeeds on the retry, without waiting in tests."""
    answers = iter([woo_error("internal_server_error", 500), page([product(1, "A", 3)])])
    connector = connect(lambda request: next(answers))

    assert await connector.read_quantities([Listing("A", "p:1", None)]) == {"A": 3}


async def test_refused_credentials_raise_auth_error_without_leaking_them(connect: Factory) -> None:
    """A 401 raises AuthError at once (no retry), and the message holds neither key nor secret."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return woo_error("woocommerce_rest_cannot_view", 401)

    connector = connect(handler, query_string_auth=True)

    with pytest.raises(AuthError) as caught:
        await connector.list_listings()

    assert len(calls) == 1
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)
    assert KEY not in repr(connector.settings) and SECRET not in repr(connector.settings)


@pytest.mark.parametrize("query_string_auth", [False, True])
async def test_credentials_go_where_configured(connect: Factory, query_string_auth: bool) -> None:
    """Basic auth by default; query parameters (and no Authorization header) when configured."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return page([])

    await connect(handler, query_string_auth=query_string_auth).list_listings()

    [request] = seen
    params = request.url.params
    if query_string_auth:
        assert "authorization" not in request.headers
        assert (params["consumer_key"], params["consumer_secret"]) == (KEY, SECRET)
    else:
        assert request.headers["authorization"].startswith("Basic ")
        assert "consumer_key" not in params


# ---------------------------------------------------------------------- malformed answers


async def test_truncated_json_is_a_protocol_error(connect: Factory) -> None:
    """A body cut off mid-way raises ProtocolError naming the endpoint."""
    connector = connect(lambda request: httpx.Response(200, content=b'[{"id": 1, "sku": "A", "man'))

    with pytest.raises(ProtocolError, match="/products"):
        await connector.list_listings()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stock_quantity": "5"}, "stock_quantity"),
        ({"id": "1"}, "id"),
        ({"manage_stock": "yes"}, "manage_stock"),
        ({"sku": 42}, "sku"),
        ({"variations": "7,8"}, "variations"),
        ({"type": None}, "type"),
    ],
)
async def test_wrong_types_are_protocol_errors_naming_the_field(
    connect: Factory, change: dict[str, Any], field: str
) -> None:
    """A product field of the wrong type raises ProtocolError that names the field."""
    connector = connect(lambda request: page([product(1, "A") | change]))

    with pytest.raises(ProtocolError, match=field):
        await connector.list_listings()


async def test_order_without_modified_date_is_quarantined(connect: Factory) -> None:
    """An order lacking date_modified_gmt is quarantined naming the field; the poll still answers."""
    order = {"id": 5, "status": "processing", "line_items": []}
    connector = connect(lambda request: page([order]))

    result = await connector.orders_since(datetime(2024, 1, 1, tzinfo=UTC))
    assert result.lines == [] and result.latest is None
    [bad] = result.quarantined
    assert bad.ref == "5" and "date_modified_gmt" in bad.reason


def woo_order(ident: int, modified: str, quantity: Any = 1, **extra: Any) -> dict[str, Any]:
    line = {"id": ident * 10, "sku": f"SKU-{ident}", "quantity": quantity}
    return {"id": ident, "status": "processing", "date_modified_gmt": modified, "line_items": [line]} | extra


@pytest.mark.parametrize("quantity", ["oops", 1.5, True, None, -1, 10**9])
async def test_malformed_order_between_good_ones_is_quarantined(connect: Factory, quantity: Any) -> None:
    """A page with one order whose quantity is bad between two good ones yields the two good
    orders' lines, the bad one quarantined (field, value and bound named), and the cursor past all three."""
    rows = [
        woo_order(1, "2024-05-01T10:00:01"),
        woo_order(2, "2024-05-01T10:00:02", quantity, billing={"email": "buyer@example.com"}),
        woo_order(3, "2024-05-01T10:00:03"),
    ]
    result = await connect(lambda request: page(rows)).orders_since(datetime(2024, 5, 1, 10, tzinfo=UTC))

    assert [line.order_id for line in result.lines] == ["1", "3"]
    [bad] = result.quarantined
    assert (bad.connector, bad.kind, bad.ref) == ("webstore", "order", "2")
    assert "line_items[0].quantity" in bad.reason and repr(quantity) in bad.reason and "1000000" in bad.reason
    assert '"quantity"' in bad.excerpt and "buyer@example.com" not in bad.excerpt and len(bad.excerpt) <= 200
    assert result.latest == datetime(2024, 5, 1, 10, 0, 3, tzinfo=UTC)


async def test_cursor_moves_past_a_bad_order_that_is_the_latest(connect: Factory) -> None:
    """When the unreadable order is the newest, its own change time still advances the cursor."""
    rows = [woo_order(1, "2024-05-01T10:00:01"), woo_order(2, "2024-05-01T10:00:09", "oops")]
    result = await connect(lambda request: page(rows)).orders_since(datetime(2024, 5, 1, 10, tzinfo=UTC))
    assert result.latest == datetime(2024, 5, 1, 10, 0, 9, tzinfo=UTC) and len(result.quarantined) == 1


@pytest.mark.parametrize("level", [-3, 1_000_001])
async def test_implausible_stock_level_is_never_believed(connect: Factory, level: int) -> None:
    """A negative or too large stock_quantity reads as unknown for that SKU only: the listing keeps
    its mapping with no quantity, and read_quantities leaves it out while the others are read."""

    def handler(request: httpx.Request) -> httpx.Response:
        return page([product(1, "A", 4), product(2, "B", level)])

    connector = connect(handler)
    listings = {listing.sku: listing.quantity for listing in await connector.list_listings()}
    assert listings == {"A": 4, "B": None}
    wanted = [Listing("A", "p:1", None), Listing("B", "p:2", None)]
    assert await connector.read_quantities(wanted) == {"A": 4}


async def test_dead_store_opens_the_circuit(connect: Factory) -> None:
    """A store answering 503 to everything gets circuit_failures calls, then the connector's
    circuit reads open and further calls fail at once without reaching it."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    connector = connect(handler, circuit_failures=3, retry_attempts=2)
    assert connector.circuit is not None and connector.circuit.state == "closed"
    for _ in range(5):
        with pytest.raises(TransientError):
            await connector.orders_since(datetime(2024, 5, 1, tzinfo=UTC))
    assert len(calls) == 3
    state = connector.circuit
    assert state.state == "open" and state.failures == 3 and state.next_trial_at is not None


async def test_collection_that_is_not_a_list_is_a_protocol_error(connect: Factory) -> None:
    """A collection endpoint answering an object raises ProtocolError."""
    connector = connect(lambda request: httpx.Response(200, json={"products": []}))

    with pytest.raises(ProtocolError, match="expected list"):
        await connector.list_listings()


# ---------------------------------------------------------------------- pagination


def catalogue_server(count: int, total_pages: Callable[[int], str | None]) -> tuple[Handler, list[int]]:
    """Serves ``count`` products by page; ``total_pages`` decides the X-WP-TotalPages header."""
    pages_asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["page"]), int(request.url.params["per_page"])
        pages_asked.append(number)
        rows = [product(i, f"SKU-{i}") for i in range(1, count + 1)][(number - 1) * size : number * size]
        return page(rows, total_pages(-(-count // size)))

    return handler, pages_asked


@pytest.mark.parametrize("header", [None, "garbage", ""])
async def test_without_usable_total_pages_paging_stops_at_a_short_page(
    connect: Factory, header: str | None
) -> None:
    """Missing or garbage X-WP-TotalPages falls back to paging until a page comes back short."""
    handler, pages_asked = catalogue_server(250, lambda pages: header)

    listings = await connect(handler).list_listings()

    assert len(listings) == 250
    assert pages_asked == [1, 2, 3]


async def test_without_total_pages_an_exact_multiple_ends_on_an_empty_page(connect: Factory) -> None:
    """With no header and 200 products, the third (empty) page ends the paging."""
    handler, pages_asked = catalogue_server(200, lambda pages: None)

    assert len(await connect(handler).list_listings()) == 200
    assert pages_asked == [1, 2, 3]


async def test_total_pages_header_is_followed(connect: Factory) -> None:
    """With X-WP-TotalPages present, exactly that many pages are read."""
    handler, pages_asked = catalogue_server(230, lambda pages: str(pages))

    assert len(await connect(handler, per_page=50).list_listings()) == 230
    assert pages_asked == [1, 2, 3, 4, 5]


async def test_server_ignoring_page_parameter_does_not_loop_forever(connect: Factory) -> None:
    """A server answering the same full page for every page number raises ProtocolError."""
    full = [product(i, f"SKU-{i}") for i in range(1, 101)]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return page(full, None)

    with pytest.raises(ProtocolError, match="twice"):
        await connect(handler).list_listings()
    assert len(calls) == 2


# ---------------------------------------------------------------------- listings and reads


async def test_listings_skip_items_without_sku_or_stock_of_their_own(connect: Factory) -> None:
    """Items without SKU, grouped products and parent-managed variations are not listings."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/products/10/variations"):
            return page(
                [
                    product(11, "TEE-S", 4),
                    product(12, "TEE-M", None) | {"manage_stock": "parent"},
                    product(13, "", 2),
                ]
            )
        return page(
            [
                product(1, "MUG", 3),
                product(2, "", 9),
                product(3, "POSTER", None),
                product(4, "BUNDLE", None, type="grouped"),
                product(10, "TEE", None, type="variable", variations=[11, 12, 13]),
            ]
        )

    listings = await connect(handler).list_listings()

    assert listings == [
        Listing("MUG", "p:1", 3),
        Listing("POSTER", "p:3", None, managed=False),
        Listing("TEE-S", "v:10:11", 4),
    ]


async def test_read_quantities_asks_in_chunks_of_fifty_skus(connect: Factory) -> None:
    """120 SKUs are read in three ?sku= lookups; a SKU containing a comma is looked up on its own."""
    asked: list[list[str]] = []
    stock = {f"SKU-{i:03d}": i for i in range(120)} | {"A,B": 9}

    def handler(request: httpx.Request) -> httpx.Response:
        value = request.url.params["sku"]
        skus = [value] if value == "A,B" else value.split(",")
        asked.append(skus)
        return page([product(n, sku, stock[sku]) for n, sku in enumerate(skus, 1)])

    listings = [Listing(sku, "p:0", None) for sku in stock]

    assert await connect(handler).read_quantities(listings) == stock
    assert sorted(len(skus) for skus in asked) == [1, 20, 50, 50]


async def test_orders_query_asks_for_every_status_changed_since(connect: Factory) -> None:
    """orders_since asks for all statuses modified after ``since`` (one second of overlap), all pages."""
    seen: list[httpx.Request] = []

    def order(ident: int, modified: str) -> dict[str, Any]:
        line = {"id": ident * 10, "sku": f"SKU-{ident}", "quantity": 1}
        return {"id": ident, "status": "completed", "date_modified_gmt": modified, "line_items": [line]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params["page"] == "1":
            return page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T10:00:03")], "2")
        return page([order(3, "2024-05-01T10:01:00")], "2")

    result = await connect(handler).orders_since(datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC))

    params = seen[0].url.params
    assert params["modified_after"] == "2024-05-01T09:59:59"
    assert (params["dates_are_gmt"], params["status"], params["orderby"], params["order"]) == (
        "true",
        "any",
        "modified",
        "asc",
    )
    assert [line.order_id for line in result.lines] == ["1", "2", "3"]
    assert result.latest == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)


# ---------------------------------------------------------------------- batches


async def test_per_item_batch_errors_reject_only_their_skus(connect: Factory) -> None:
    """Items that come back with an error object are rejected with its code; the rest are applied."""

    def handler(request: httpx.Request) -> httpx.Response:
        error = {
            "code": "woocommerce_rest_product_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 400},
        }
        return httpx.Response(200, json={"update": [product(1, "SKU-1", 4), {"id": 2, "error": error}]})

    result = await connect(handler).set_quantities(updates_for(range(1, 3)))

    assert result.applied == {"SKU-1": 4}
    assert result.rejected == {"SKU-2": "woocommerce_rest_product_invalid_id: Invalid ID."}


async def test_refused_batch_rejects_its_skus_and_others_go_on(connect: Factory) -> None:
    """A batch refused as a whole (400) rejects its SKUs; batches to other endpoints still apply."""

    def handler(request: httpx.Request) -> httpx.Response:
        if "/variations/" in request.url.path:
            return woo_error("rest_invalid_param", 400)
        return batch_echo(request)

    updates = [*updates_for(range(1, 3)), QuantityUpdate("TEE-S", "v:10:11", 2)]
    result = await connect(handler).set_quantities(updates)

    assert result.applied == {"SKU-1": 1, "SKU-2": 2}
    assert result.rejected == {"TEE-S": "rest_invalid_param: Refused."}


async def test_batch_too_large_is_split_until_the_store_accepts_it(connect: Factory) -> None:
    """A store whose batch limit is 30 answers 413; the connector halves its batches and applies all."""
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        count = len(json.loads(request.content)["update"])
        sizes.append(count)
        if count > 30:
            return woo_error("woocommerce_rest_request_entity_too_large", 413)
        return batch_echo(request)

    connector = connect(handler)
    result = await connector.set_quantities(updates_for(range(1, 121)))

    assert len(result.applied) == 120 and result.rejected == {}
    assert sizes == [100, 50, 25, 25, 25, 25, 20]
    sizes.clear()
    await connector.set_quantities(updates_for(range(1, 51)))
    assert sizes == [25, 25]


async def test_item_refused_as_too_large_alone_is_rejected(connect: Factory) -> None:
    """If even a single-item batch is answered 413, that SKU is rejected rather than retried forever."""
    connector = connect(lambda request: woo_error("woocommerce_rest_request_entity_too_large", 413))

    result = await connector.set_quantities(updates_for(range(1, 3)))

    assert set(result.rejected) == {"SKU-1", "SKU-2"}
    assert result.applied == {}


async def test_batch_answer_missing_an_item_is_a_protocol_error(connect: Factory) -> None:
    """A batch answer that leaves out a sent item raises ProtocolError naming the id."""
    connector = connect(lambda request: httpx.Response(200, json={"update": [product(1, "SKU-1", 1)]}))

    with pytest.raises(ProtocolError, match=r"\[2\]"):
        await connector.set_quantities(updates_for(range(1, 3)))


async def test_malformed_ref_is_rejected_without_a_request(connect: Factory) -> None:
    """A ref that is not p:<id> or v:<parent>:<id> is rejected and nothing is sent."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return batch_echo(request)

    result = await connect(handler).set_quantities([QuantityUpdate("X", "gid://shopify/1", 3)])

    assert list(result.rejected) == ["X"]
    assert calls == []
