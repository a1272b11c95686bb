"""Wire-level behaviour of the TikTok Shop connector against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.base import Listing, MemoryTokenStore, QuantityUpdate, StoredToken
from connectors.tiktok_shop.client import TikTokApiError, TikTokShopConnector
from connectors.tiktok_shop.settings import TikTokShopSettings
from connectors.tiktok_shop.signing import request_sign
from syncd.errors import AuthError, CircuitOpenError, ConnectorError, ProtocolError, TransientError
from tests.connectors.tiktok_shop.support import (
    ACCESS_TOKEN,
    APP_KEY,
    APP_SECRET,
    REFRESH_TOKEN,
    SHOP_CIPHER,
    no_wait,
)

PRODUCTS = "/product/202309/products/search"
INVENTORY = "/product/202309/inventory/search"
ORDERS = "/order/202309/orders/search"
REFRESH = "/api/v2/token/refresh"
NOW = 1_760_000_000

Answer = tuple[int, Any, dict[str, str]]


def env(data: Any = None, code: int = 0, message: str = "Success") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "req-1", "data": data}


def ok(data: Any = None) -> Answer:
    return (200, env(data if data is not None else {}), {})


def product(pid: str, *skus: tuple[str, str, list[tuple[str, int]]]) -> dict[str, Any]:
    return {
        "id": pid,
        "status": "ACTIVATE",
        "skus": [
            {
                "id": sid,
                "seller_sku": seller,
                "inventory": [{"warehouse_id": w, "quantity": q} for w, q in stock],
            }
            for sid, seller, stock in skus
        ],
    }


def inventory(pid: str, sid: str, seller: str, stock: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "inventory": [
            {
                "product_id": pid,
                "skus": [
                    {
                        "id": sid,
                        "seller_sku": seller,
                        "total_available_quantity": sum(q for _, q in stock),
                        "total_committed_quantity": 0,
                        "warehouse_inventory": [
                            {"warehouse_id": w, "available_quantity": q, "committed_quantity": 0}
                            for w, q in stock
                        ],
                    }
                ],
            }
        ]
    }


class Wire:
    """A scripted server: per path, answers given in turn (the last one repeats); requests kept."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Answer | Callable[[httpx.Request], Answer]]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, path: str, *answers: Answer | Callable[[httpx.Request], Answer]) -> Wire:
        self.routes[path] = list(answers)
        return self

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.path)
        if not queue:
            return httpx.Response(404, json=env(code=40404, message="no route"))
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            answer = answer(request)
        status, body, headers = answer
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)


class Clock:
    """Seconds that advance on every reading, so that each signature gets its own timestamp."""

    def __init__(self, start: float = NOW) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def make_conn(
    wire: Wire, make_settings: Callable[..., TikTokShopSettings]
) -> AsyncIterator[Callable[..., TikTokShopConnector]]:
    made: list[TikTokShopConnector] = []

    def make(tokens: MemoryTokenStore | None = None, **overrides: Any) -> TikTokShopConnector:
        connector = TikTokShopConnector(
            make_settings(**overrides),
            transport=httpx.MockTransport(wire),
            sleep=no_wait,
            tokens=tokens,
            clock=Clock(),
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()


@pytest.fixture
def conn(make_conn: Callable[..., TikTokShopConnector]) -> TikTokShopConnector:
    return make_conn()


def one_product_page() -> Answer:
    return ok({"products": [product("P1", ("S1", "A", [("W1", 4)]))], "next_page_token": ""})


# ---------------------------------------------------------------------------- signing on the wire


async def test_every_request_is_signed_with_its_own_timestamp(wire: Wire, conn: TikTokShopConnector) -> None:
    """Each try carries app_key, shop_cipher, a fresh timestamp, a valid sign and the token header."""
    wire.on(PRODUCTS, (200, env(code=36009002, message="Too many requests"), {}), one_product_page())

    await conn.list_listings()

    first, second = wire.calls(PRODUCTS)
    for request in (first, second):
        params = request.url.params
        assert params["app_key"] == APP_KEY and params["shop_cipher"] == SHOP_CIPHER
        assert "access_token" not in params
        assert request.headers["x-tts-access-token"] == ACCESS_TOKEN
        assert request.headers["content-type"] == "application/json"
        assert params["sign"] == request_sign(
            APP_SECRET, request.url.path, params.multi_items(), request.content
        )
    assert first.url.params["timestamp"] != second.url.params["timestamp"]
    assert first.url.params["sign"] != second.url.params["sign"]
    assert json.loads(first.content) == {"status": "ACTIVATE"}
    assert first.url.params["page_size"] == "100"


# ---------------------------------------------------------------------------- envelope codes


async def test_nonzero_code_with_http_200_is_an_error(wire: Wire, conn: TikTokShopConnector) -> None:
    """An envelope with code != 0 raises even though HTTP said 200, and is not retried."""
    wire.on(PRODUCTS, (200, env(code=12019001, message="Param error"), {}))

    with pytest.raises(TikTokApiError, match="12019001") as caught:
        await conn.list_listings()

    assert caught.value.code == 12019001
    assert len(wire.calls(PRODUCTS)) == 1


async def test_throttling_code_is_retried_then_succeeds(wire: Wire, conn: TikTokShopConnector) -> None:
    """Code 36009002 is throttling: the call is retried and its eventual answer used."""
    throttled: Answer = (200, env(code=36009002, message="Too many requests"), {})
    wire.on(PRODUCTS, throttled, throttled, one_product_page())

    listings = await conn.list_listings()

    assert listings == [Listing("A", "P1:S1", 4)]
    assert len(wire.calls(PRODUCTS)) == 3


async def test_persistent_throttling_ends_in_transient_error(wire: Wire, conn: TikTokShopConnector) -> None:
    """When every try is throttled the caller gets a TransientError after retry_attempts tries."""
    wire.on(PRODUCTS, (200, env(code=36009002, message="Too many requests"), {}))

    with pytest.raises(TransientError, match="36009002"):
        await conn.list_listings()

    assert len(wire.calls(PRODUCTS)) == 4


@pytest.mark.parametrize(
    "answer",
    [
        (429, env(code=36009002, message="Too many requests"), {"Retry-After": "0"}),
        (429, b"Too Many Requests", {}),
        (503, b"<html>busy</html>", {}),
        (500, env(code=36009003, message="Internal error"), {}),
    ],
    ids=["429-envelope", "429-plain", "503-plain", "500-internal"],
)
async def test_http_throttling_and_server_errors_are_retried(
    wire: Wire, conn: TikTokShopConnector, answer: Answer
) -> None:
    """HTTP 429 and 5xx, with or without an envelope, are retried and the call then succeeds."""
    wire.on(PRODUCTS, answer, one_product_page())

    assert [listing.sku for listing in await conn.list_listings()] == ["A"]
    assert len(wire.calls(PRODUCTS)) == 2


@pytest.mark.parametrize(
    ("answer", "opens", "sends"),
    [
        # Three calls of four tries each all reach the API; a rejection is not retried.
        ((200, env(code=36009002, message="Too many requests"), {}), False, 12),
        ((429, env(code=36009002, message="Too many requests"), {"Retry-After": "0"}), False, 12),
        ((400, env(code=36009999, message="bad request"), {}), False, 3),
        # Five tries open the circuit; the rest are refused without a call.
        ((500, env(code=36009003, message="Internal error"), {}), True, 5),
        ((503, b"<html>busy</html>", {}), True, 5),
    ],
    ids=["throttle-code", "429", "400", "500-internal", "503-plain"],
)
async def test_only_server_failures_open_the_circuit(
    wire: Wire, conn: TikTokShopConnector, answer: Answer, opens: bool, sends: int
) -> None:
    """Throttling (code 36009002, 429) and rejections leave the circuit closed however long they
    last; server failures open it after circuit_failures tries, and then no call is sent."""
    wire.on(PRODUCTS, answer)
    for _ in range(3):
        with pytest.raises(ConnectorError):
            await conn.list_listings()
    assert conn.circuit is not None
    assert conn.circuit.state == ("open" if opens else "closed")
    assert len(wire.calls(PRODUCTS)) == sends
    if opens:
        with pytest.raises(CircuitOpenError):
            await conn.list_listings()
        assert len(wire.calls(PRODUCTS)) == sends


async def test_connection_failures_are_retried_without_nesting(
    make_settings: Callable[..., TikTokShopSettings],
) -> None:
    """A dropped connection is retried re-signed, and retry_attempts bounds the total number of sends."""
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    conn = TikTokShopConnector(
        make_settings(retry_attempts=3), transport=httpx.MockTransport(refuse), sleep=no_wait, clock=Clock()
    )
    try:
        with pytest.raises(TransientError):
            await conn.list_listings()
    finally:
        await conn.aclose()

    assert len(sent) == 3
    assert len({request.url.params["sign"] for request in sent}) == 3


async def test_bad_sign_is_an_auth_error(wire: Wire, conn: TikTokShopConnector) -> None:
    """Code 106001 (invalid signature) raises AuthError at once: retrying cannot fix the secret."""
    wire.on(PRODUCTS, (200, env(code=106001, message="Invalid signature"), {}))

    with pytest.raises(AuthError, match="106001"):
        await conn.list_listings()

    assert len(wire.calls(PRODUCTS)) == 1


@pytest.mark.parametrize("code", [36009004, 105001])
async def test_other_credential_codes_are_auth_errors(
    wire: Wire, conn: TikTokShopConnector, code: int
) -> None:
    """Bad token or app_key (36009004) and other 105xxx token codes raise AuthError without a refresh."""
    wire.on(PRODUCTS, (200, env(code=code, message="Invalid credentials"), {}))

    with pytest.raises(AuthError):
        await conn.list_listings()

    assert wire.calls(REFRESH) == []


def refreshed(access: str = "TTP_new", refresh: str = "TTP_new_refresh") -> Answer:
    return ok(
        {
            "access_token": access,
            "access_token_expire_in": NOW + 7 * 86400,
            "refresh_token": refresh,
            "refresh_token_expire_in": NOW + 365 * 86400,
        }
    )


async def test_expired_token_is_refreshed_saved_and_the_call_retried(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """On 105002 the token is refreshed once, saved to the TokenStore, and the call succeeds with it."""
    tokens = MemoryTokenStore()
    conn = make_conn(tokens)
    wire.on(PRODUCTS, (200, env(code=105002, message="Access token is expired"), {}), one_product_page())
    wire.on(REFRESH, refreshed())

    assert [listing.sku for listing in await conn.list_listings()] == ["A"]

    [refresh] = wire.calls(REFRESH)
    assert refresh.url.params["refresh_token"] == REFRESH_TOKEN
    assert refresh.url.params["grant_type"] == "refresh_token"
    assert [r.headers["x-tts-access-token"] for r in wire.calls(PRODUCTS)] == [ACCESS_TOKEN, "TTP_new"]
    saved = tokens.load_token("tiktok_shop:tiktok")
    assert saved is not None
    assert (saved.access_token, saved.refresh_token) == ("TTP_new", "TTP_new_refresh")
    assert saved.access_expires_at == datetime.fromtimestamp(NOW + 7 * 86400, UTC)


async def test_token_refused_again_after_refresh_is_an_auth_error(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """A second 105002 right after a refresh raises AuthError instead of refreshing in a loop."""
    wire.on(PRODUCTS, (200, env(code=105002, message="Access token is expired"), {}))
    wire.on(REFRESH, refreshed())

    with pytest.raises(AuthError, match="after a refresh"):
        await conn.list_listings()

    assert len(wire.calls(REFRESH)) == 1
    assert len(wire.calls(PRODUCTS)) == 2


async def test_refused_refresh_is_an_auth_error_without_secrets(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """A refresh the auth host refuses raises AuthError whose message holds no secret or token."""
    wire.on(PRODUCTS, (200, env(code=105002, message="Access token is expired"), {}))
    wire.on(REFRESH, (200, env(code=36009004, message="Invalid refresh_token"), {}))

    with pytest.raises(AuthError) as caught:
        await conn.list_listings()

    text = str(caught.value) + repr(caught.value)
    for secret in (APP_SECRET, ACCESS_TOKEN, REFRESH_TOKEN):
        assert secret not in text


async def test_stored_token_wins_and_is_refreshed_before_it_expires(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A token from the TokenStore is used over settings, and refreshed ahead of its expiry."""
    tokens = MemoryTokenStore()
    soon = datetime.fromtimestamp(NOW + 60, UTC)
    tokens.save_token("tiktok_shop:tiktok", StoredToken("TTP_stored", "TTP_stored_refresh", soon))
    conn = make_conn(tokens)
    wire.on(PRODUCTS, one_product_page())
    wire.on(REFRESH, refreshed())

    await conn.list_listings()

    [refresh] = wire.calls(REFRESH)
    assert refresh.url.params["refresh_token"] == "TTP_stored_refresh"
    assert [r.headers["x-tts-access-token"] for r in wire.calls(PRODUCTS)] == ["TTP_new"]
    saved = tokens.load_token("tiktok_shop:tiktok")
    assert saved is not None and saved.access_token == "TTP_new"


async def test_refresh_ahead_of_expiry_that_fails_does_not_fail_the_call(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """With the auth host down, a token that still works is used (a webhook's order fetch goes
    on), the deferral is logged once, and a later call refreshes once the host is back."""
    tokens = MemoryTokenStore()
    soon = datetime.fromtimestamp(NOW + 600, UTC)
    tokens.save_token("tiktok_shop:tiktok", StoredToken("TTP_stored", "TTP_stored_refresh", soon))
    conn = make_conn(tokens, retry_attempts=1)  # two failed refreshes: below circuit_failures
    detail = ok({"orders": [order("O7", "AWAITING_SHIPMENT", NOW, ("L1", "S1", "A", "X"))]})
    wire.on("/order/202309/orders", detail)
    wire.on(REFRESH, (503, env(code=36009003, message="down"), {}))

    with capture_logs() as logs:
        first = await conn.lines_for_orders(["O7"])
        second = await conn.lines_for_orders(["O7"])

    assert [line.order_id for line in first + second] == ["O7", "O7"]
    assert {r.headers["x-tts-access-token"] for r in wire.calls("/order/202309/orders")} == {"TTP_stored"}
    assert [e["event"] for e in logs].count("tiktok_shop.token_refresh_deferred") == 1
    assert conn.circuit is not None and conn.circuit.state == "closed"

    wire.on(REFRESH, refreshed())
    await conn.lines_for_orders(["O7"])
    assert wire.calls("/order/202309/orders")[-1].headers["x-tts-access-token"] == "TTP_new"


async def test_dead_auth_host_opens_its_own_circuit_not_the_apis(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """Refresh failures open the auth host's circuit; API calls with the working token go on."""
    tokens = MemoryTokenStore()
    soon = datetime.fromtimestamp(NOW + 600, UTC)
    tokens.save_token("tiktok_shop:tiktok", StoredToken("TTP_stored", "TTP_stored_refresh", soon))
    conn = make_conn(tokens)
    wire.on(
        "/order/202309/orders",
        ok({"orders": [order("O7", "AWAITING_SHIPMENT", NOW, ("L1", "S1", "A", "X"))]}),
    )
    wire.on(REFRESH, (503, env(code=36009003, message="down"), {}))

    for _ in range(4):
        assert [line.order_id for line in await conn.lines_for_orders(["O7"])] == ["O7"]
    # Without the circuit each of the 4 calls would make 4 refresh attempts; with it, the 5 that
    # open it and a trial once its cool-down has passed on this fast test clock.
    assert len(wire.calls(REFRESH)) <= 7
    assert conn.circuit is not None and conn.circuit.state == "closed"


async def test_expired_token_with_the_auth_host_down_is_transient(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A token past its expiry cannot be used: the failed refresh is raised as TransientError (retry later)."""
    tokens = MemoryTokenStore()
    gone = datetime.fromtimestamp(NOW - 60, UTC)
    tokens.save_token("tiktok_shop:tiktok", StoredToken("TTP_stored", "TTP_stored_refresh", gone))
    conn = make_conn(tokens)
    wire.on(REFRESH, (503, env(code=36009003, message="down"), {}))

    with pytest.raises(TransientError):
        await conn.lines_for_orders(["O7"])
    assert wire.calls("/order/202309/orders") == []


async def test_token_far_from_expiry_is_not_refreshed(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A stored token valid beyond the refresh margin is used as is."""
    tokens = MemoryTokenStore()
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(days=3)
    tokens.save_token("tiktok_shop:tiktok", StoredToken("TTP_stored", "TTP_stored_refresh", later))
    conn = make_conn(tokens)
    wire.on(PRODUCTS, one_product_page())

    await conn.list_listings()

    assert wire.calls(REFRESH) == []
    assert [r.headers["x-tts-access-token"] for r in wire.calls(PRODUCTS)] == ["TTP_stored"]


# ---------------------------------------------------------------------------- malformed answers


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":0,"message":"Success","data":{"products":[{"id":"P1"',
        b"",
        b"[1, 2]",
        b'{"message":"no code"}',
        b'{"code":"0","data":{}}',
        b'{"code":0,"data":[]}',
        b'{"code":0,"data":{"products":{"id":"P1"}}}',
        b'{"code":0,"data":{"products":[{"id":"P1","skus":[{"id":"S1","seller_sku":"A","inventory":[{"warehouse_id":"W1","quantity":"4"}]}]}]}}',
        b'{"code":0,"data":{"products":[],"next_page_token":7}}',
    ],
    ids=[
        "truncated",
        "empty",
        "array",
        "no-code",
        "string-code",
        "data-list",
        "products-object",
        "quantity-string",
        "token-number",
    ],
)
async def test_malformed_bodies_are_protocol_errors(
    wire: Wire, conn: TikTokShopConnector, body: bytes
) -> None:
    """A truncated, non-JSON or wrongly shaped answer raises ProtocolError, never a wrong listing."""
    wire.on(PRODUCTS, (200, body, {}))

    with pytest.raises(ProtocolError):
        await conn.list_listings()


# ---------------------------------------------------------------------------- pagination


async def test_pages_are_followed_by_page_token(wire: Wire, conn: TikTokShopConnector) -> None:
    """list_listings follows next_page_token until it is empty and lists every page's SKUs."""
    wire.on(
        PRODUCTS,
        ok({"products": [product("P1", ("S1", "A", [("W1", 1)]))], "next_page_token": "t2"}),
        ok({"products": [product("P2", ("S2", "B", [("W1", 2)]))], "next_page_token": "t3"}),
        ok({"products": [product("P3", ("S3", "C", [("W1", 3)]))]}),
    )

    listings = await conn.list_listings()

    assert [(listing.sku, listing.quantity) for listing in listings] == [("A", 1), ("B", 2), ("C", 3)]
    assert [r.url.params.get("page_token") for r in wire.calls(PRODUCTS)] == [None, "t2", "t3"]


async def test_a_page_token_returned_twice_stops_with_protocol_error(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """A server that hands out the same page token again raises ProtocolError instead of looping."""
    wire.on(
        PRODUCTS,
        ok({"products": [product("P1", ("S1", "A", [("W1", 1)]))], "next_page_token": "same"}),
        ok({"products": [product("P2", ("S2", "B", [("W1", 1)]))], "next_page_token": "same"}),
    )

    with pytest.raises(ProtocolError, match="twice"):
        await conn.list_listings()

    assert len(wire.calls(PRODUCTS)) == 2


async def test_empty_search_answer_is_an_empty_list(wire: Wire, conn: TikTokShopConnector) -> None:
    """A shop without products answers data without 'products': that is no listings, not an error."""
    wire.on(PRODUCTS, ok({"total_count": 0, "next_page_token": ""}))

    assert await conn.list_listings() == []


# ---------------------------------------------------------------------------- listings and stock


async def test_listing_quantity_is_the_sum_over_warehouses(wire: Wire, conn: TikTokShopConnector) -> None:
    """A SKU stocked in several warehouses shows their sum; SKUs without seller_sku are left out."""
    wire.on(
        PRODUCTS,
        ok(
            {
                "products": [
                    product("P1", ("S1", "A", [("W1", 3), ("W2", 4)]), ("S2", "", [("W1", 9)])),
                ]
            }
        ),
    )

    assert await conn.list_listings() == [Listing("A", "P1:S1", 7)]


async def test_read_quantities_uses_inventory_search(wire: Wire, conn: TikTokShopConnector) -> None:
    """read_quantities asks inventory search for the listings' SKU ids and keys totals by SKU."""
    wire.on(INVENTORY, ok(inventory("P1", "S1", "A", [("W1", 2), ("W2", 5)])))

    read = await conn.read_quantities([Listing("A", "P1:S1", 0), Listing("GONE", "P9:S9", 1)])

    assert read == {"A": 7}
    [request] = wire.calls(INVENTORY)
    assert json.loads(request.content) == {"sku_ids": ["S1", "S9"]}


# ---------------------------------------------------------------------------- writing


def update_path(pid: str) -> str:
    return f"/product/202309/products/{pid}/inventory/update"


async def test_whole_quantity_goes_to_the_first_warehouse(wire: Wire, conn: TikTokShopConnector) -> None:
    """A write puts the target on the SKU's first warehouse and 0 on its others, so the sum is the target."""
    wire.on(PRODUCTS, ok({"products": [product("P1", ("S1", "A", [("W1", 3), ("W2", 4)]))]}))
    wire.on(update_path("P1"), ok({}))
    [listing] = await conn.list_listings()

    result = await conn.set_quantities([QuantityUpdate("A", listing.ref, 9)])

    assert result.applied == {"A": 9}
    [request] = wire.calls(update_path("P1"))
    assert json.loads(request.content) == {
        "skus": [
            {
                "id": "S1",
                "inventory": [{"warehouse_id": "W1", "quantity": 9}, {"warehouse_id": "W2", "quantity": 0}],
            }
        ]
    }


async def test_configured_warehouse_receives_the_quantity(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """With warehouse_id set, that warehouse gets the target; unknown SKUs are looked up first."""
    conn = make_conn(warehouse_id="W2")
    wire.on(INVENTORY, ok(inventory("P1", "S1", "A", [("W1", 3), ("W2", 4)])))
    wire.on(update_path("P1"), ok({}))

    result = await conn.set_quantities([QuantityUpdate("A", "P1:S1", 9)])

    assert result.applied == {"A": 9}
    [request] = wire.calls(update_path("P1"))
    assert json.loads(request.content)["skus"][0]["inventory"] == [
        {"warehouse_id": "W1", "quantity": 0},
        {"warehouse_id": "W2", "quantity": 9},
    ]


async def test_per_sku_errors_are_rejected_and_the_rest_applied(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """data.errors naming a sku_id rejects that SKU with TikTok's reason; its neighbours apply."""
    wire.on(
        PRODUCTS,
        ok({"products": [product("P1", ("S1", "A", [("W1", 1)]), ("S2", "B", [("W1", 1)]))]}),
    )
    error = {
        "code": 12052230,
        "message": "SKU is not live",
        "detail": {"sku_id": "S2", "extra_errors": [{"warehouse_id": "W1", "code": 1, "message": "frozen"}]},
    }
    wire.on(update_path("P1"), ok({"errors": [error]}))
    await conn.list_listings()

    result = await conn.set_quantities([QuantityUpdate("A", "P1:S1", 10), QuantityUpdate("B", "P1:S2", 10)])

    assert result.applied == {"A": 10}
    assert set(result.rejected) == {"B"}
    assert "12052230" in result.rejected["B"] and "frozen" in result.rejected["B"]


async def test_product_level_error_rejects_its_skus_only(wire: Wire, conn: TikTokShopConnector) -> None:
    """A code error for one product's update rejects that product's SKUs; other products apply."""
    wire.on(
        PRODUCTS,
        ok({"products": [product("P1", ("S1", "A", [("W1", 1)])), product("P2", ("S2", "B", [("W1", 1)]))]}),
    )
    wire.on(update_path("P1"), (200, env(code=12052048, message="Product is not live"), {}))
    wire.on(update_path("P2"), ok({}))
    await conn.list_listings()

    result = await conn.set_quantities([QuantityUpdate("A", "P1:S1", 10), QuantityUpdate("B", "P2:S2", 10)])

    assert result.applied == {"B": 10}
    assert result.rejected == {"A": "12052048: Product is not live"}


async def test_malformed_ref_is_rejected_without_a_call(wire: Wire, conn: TikTokShopConnector) -> None:
    """A ref that is not ``product:sku`` is rejected for its SKU and nothing is sent."""
    result = await conn.set_quantities([QuantityUpdate("A", "not-a-ref", 1)])

    assert set(result.rejected) == {"A"}
    assert wire.requests == []


class SlowWrites:
    """Answers product writes after a short wait, counting how many are in flight at once; the
    products in ``failing`` answer 500 every time."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.in_flight = 0
        self.most_in_flight = 0
        self.finished: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        product_id = request.url.path.split("/")[4]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.02)
        self.in_flight -= 1
        self.finished.append(product_id)
        if product_id in self.failing:
            return httpx.Response(500, json=env(code=1, message="internal"))
        return httpx.Response(200, json=env({}))


def three_products_known(conn: TikTokShopConnector) -> list[QuantityUpdate]:
    """Updates of three one-SKU products whose warehouses the connector knows already."""
    for sid in ("S1", "S2", "S3"):
        conn._warehouses[sid] = ("W1",)
    return [QuantityUpdate(sku, f"P{n}:S{n}", 5) for n, sku in enumerate("ABC", start=1)]


async def test_a_slices_product_writes_go_out_side_by_side(
    make_settings: Callable[..., TikTokShopSettings],
) -> None:
    """One call per product, several in flight at once (at most push_slice: half the rate limit),
    so a slice lands about one round trip after its read instead of one per product."""
    server = SlowWrites()
    conn = TikTokShopConnector(
        make_settings(rate_limit=4, burst=4),
        transport=httpx.MockTransport(server),
        sleep=no_wait,
        clock=Clock(),
    )
    try:
        result = await conn.set_quantities(three_products_known(conn))
    finally:
        await conn.aclose()

    assert result.applied == {"A": 5, "B": 5, "C": 5}
    assert conn.push_slice == 2
    assert server.most_in_flight == 2


async def test_a_failing_product_write_lets_the_others_finish_then_raises(
    make_settings: Callable[..., TikTokShopSettings],
) -> None:
    """A product whose write fails for good raises its error, but only once the other products'
    writes have been answered: no write is left running after set_quantities returns."""
    server = SlowWrites(failing=frozenset({"P1"}))
    conn = TikTokShopConnector(
        make_settings(retry_attempts=2), transport=httpx.MockTransport(server), sleep=no_wait, clock=Clock()
    )
    try:
        with pytest.raises(TransientError, match="P1"):
            await conn.set_quantities(three_products_known(conn))
    finally:
        await conn.aclose()

    assert sorted(set(server.finished)) == ["P1", "P2", "P3"]
    assert server.in_flight == 0


async def test_low_quantity_writes_are_read_back(wire: Wire, conn: TikTokShopConnector) -> None:
    """After writing a quantity at or below reread_below, read_back reports what TikTok then shows."""
    wire.on(
        PRODUCTS,
        ok({"products": [product("P1", ("S1", "A", [("W1", 9)]), ("S2", "B", [("W1", 9)]))]}),
    )
    wire.on(update_path("P1"), ok({}))
    # A sale landed between the write and the read-back: TikTok shows 2, not the 3 written.
    wire.on(INVENTORY, ok(inventory("P1", "S1", "A", [("W1", 2)])))
    await conn.list_listings()

    result = await conn.set_quantities([QuantityUpdate("A", "P1:S1", 3), QuantityUpdate("B", "P1:S2", 40)])

    assert result.applied == {"A": 3, "B": 40}
    assert result.read_back == {"A": 2}
    [reread] = wire.calls(INVENTORY)
    assert json.loads(reread.content) == {"sku_ids": ["S1"]}


# ---------------------------------------------------------------------------- orders


def order(oid: str, status: str, update_time: int, *items: tuple[str, str, str, str]) -> dict[str, Any]:
    return {
        "id": oid,
        "status": status,
        "create_time": update_time - 5,
        "update_time": update_time,
        "line_items": [
            {"id": iid, "sku_id": sid, "seller_sku": seller, "product_id": "P1", "display_status": shown}
            for iid, sid, seller, shown in items
        ],
    }


async def test_order_lines_are_counted_per_sku(wire: Wire, conn: TikTokShopConnector) -> None:
    """Line items are units: two items of one SKU are one line of quantity 2, keyed by the SKU id."""
    wire.on(
        ORDERS,
        ok(
            {
                "orders": [
                    order(
                        "O1",
                        "AWAITING_SHIPMENT",
                        NOW,
                        ("L1", "S1", "A", "AWAITING_SHIPMENT"),
                        ("L2", "S2", "B", "AWAITING_SHIPMENT"),
                        ("L3", "S1", "A", "AWAITING_SHIPMENT"),
                        # The same line item listed twice is still one unit.
                        ("L3", "S1", "A", "AWAITING_SHIPMENT"),
                    )
                ],
                "next_page_token": "",
            }
        ),
    )

    page = await conn.orders_since(datetime.fromtimestamp(NOW - 60, UTC))

    got = sorted((line.order_id, line.line_key, line.sku, line.quantity, line.status) for line in page.lines)
    assert got == [("O1", "S1", "A", 2, "open"), ("O1", "S2", "B", 1, "open")]
    assert page.latest == datetime.fromtimestamp(NOW, UTC)
    [request] = wire.calls(ORDERS)
    assert json.loads(request.content) == {"update_time_ge": NOW - 60}
    assert request.url.params["sort_field"] == "update_time"


async def test_cancelled_orders_and_fully_cancelled_skus_are_cancelled(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """A CANCELLED order cancels its lines; a SKU whose every unit is cancelled is cancelled too."""
    wire.on(
        ORDERS,
        ok(
            {
                "orders": [
                    order("O1", "CANCELLED", NOW, ("L1", "S1", "A", "CANCELLED")),
                    order(
                        "O2",
                        "AWAITING_SHIPMENT",
                        NOW,
                        ("L2", "S1", "A", "CANCELLED"),
                        ("L3", "S2", "B", "CANCELLED"),
                        ("L4", "S2", "B", "AWAITING_SHIPMENT"),
                    ),
                ]
            }
        ),
    )

    page = await conn.orders_since(datetime.fromtimestamp(NOW - 60, UTC))

    got = sorted((line.order_id, line.sku, line.quantity, line.status) for line in page.lines)
    assert got == [("O1", "A", 1, "cancelled"), ("O2", "A", 1, "cancelled"), ("O2", "B", 2, "open")]


async def test_orders_are_paged_and_older_ones_dropped(wire: Wire, conn: TikTokShopConnector) -> None:
    """orders_since reads every page and leaves out orders last changed before ``since``."""
    wire.on(
        ORDERS,
        ok(
            {
                "orders": [order("O1", "COMPLETED", NOW - 120, ("L1", "S1", "A", "COMPLETED"))],
                "next_page_token": "p2",
            }
        ),
        ok({"orders": [order("O2", "UNPAID", NOW + 5, ("L2", "S1", "A", "UNPAID"))], "next_page_token": ""}),
    )

    page = await conn.orders_since(datetime.fromtimestamp(NOW, UTC))

    assert [(line.order_id, line.status) for line in page.lines] == [("O2", "open")]
    assert page.latest == datetime.fromtimestamp(NOW + 5, UTC)
    assert wire.calls(ORDERS)[1].url.params["page_token"] == "p2"


async def test_lines_for_orders_reads_order_detail(wire: Wire, conn: TikTokShopConnector) -> None:
    """lines_for_orders fetches the named orders by id and counts their line items per SKU."""
    wire.on(
        "/order/202309/orders",
        ok(
            {
                "orders": [
                    order("O7", "AWAITING_SHIPMENT", NOW, ("L1", "S1", "A", "X"), ("L2", "S1", "A", "X"))
                ]
            }
        ),
    )

    lines = await conn.lines_for_orders(["O7", "O7"])

    assert [(line.order_id, line.sku, line.quantity) for line in lines] == [("O7", "A", 2)]
    [request] = wire.calls("/order/202309/orders")
    assert request.method == "GET" and request.url.params["ids"] == "O7"


BAD_ITEMS: list[tuple[str, Any]] = [
    ("sku_id", 42),
    ("sku_id", None),
    ("id", True),
    ("seller_sku", ["oops"]),
]


@pytest.mark.parametrize(("field", "value"), BAD_ITEMS)
async def test_malformed_order_between_good_ones_is_quarantined(
    wire: Wire, conn: TikTokShopConnector, field: str, value: Any
) -> None:
    """A page with one unreadable order between two good ones yields the two good orders' lines,
    the bad one quarantined (field named), and the cursor past all three."""
    bad = order("O2", "AWAITING_SHIPMENT", NOW + 2, ("L2", "S2", "B", "X"))
    bad["line_items"][0][field] = value
    bad["recipient_address"] = {"phone_number": "+44 700 900 123"}
    orders = [
        order("O1", "AWAITING_SHIPMENT", NOW + 1, ("L1", "S1", "A", "X")),
        bad,
        order("O3", "AWAITING_SHIPMENT", NOW + 3, ("L3", "S3", "C", "X")),
    ]
    wire.on(ORDERS, ok({"orders": orders, "next_page_token": ""}))

    page = await conn.orders_since(datetime.fromtimestamp(NOW, UTC))

    assert [line.order_id for line in page.lines] == ["O1", "O3"]
    [item] = page.quarantined
    assert (item.connector, item.kind, item.ref) == ("tiktok", "order", "O2")
    assert f"line_items[0].{field}" in item.reason
    assert "+44 700" not in item.excerpt
    assert page.latest == datetime.fromtimestamp(NOW + 3, UTC)


async def test_unreadable_update_time_is_quarantined_without_stalling(
    wire: Wire, conn: TikTokShopConnector
) -> None:
    """An order whose update_time is 'oops' is quarantined; the others and their cursor go on."""
    bad = order("O2", "AWAITING_SHIPMENT", NOW, ("L2", "S2", "B", "X")) | {"update_time": "oops"}
    orders = [order("O1", "AWAITING_SHIPMENT", NOW + 1, ("L1", "S1", "A", "X")), bad]
    wire.on(ORDERS, ok({"orders": orders, "next_page_token": ""}))

    page = await conn.orders_since(datetime.fromtimestamp(NOW, UTC))
    assert [line.order_id for line in page.lines] == ["O1"]
    assert [q.ref for q in page.quarantined] == ["O2"] and "update_time" in page.quarantined[0].reason
    assert page.latest == datetime.fromtimestamp(NOW + 1, UTC)


async def test_order_above_max_quantity_is_quarantined(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """More units of one SKU in an order than max_quantity allows quarantine the order."""
    items = [(f"L{n}", "S1", "A", "X") for n in range(3)]
    wire.on(ORDERS, ok({"orders": [order("O1", "AWAITING_SHIPMENT", NOW, *items)], "next_page_token": ""}))

    page = await make_conn(max_quantity=2).orders_since(datetime.fromtimestamp(NOW, UTC))
    assert page.lines == [] and "above max_quantity 2" in page.quarantined[0].reason


async def test_unreadable_order_in_order_detail_is_left_out(wire: Wire, conn: TikTokShopConnector) -> None:
    """lines_for_orders returns the readable orders' lines and leaves an unreadable one to the poll."""
    bad = order("O8", "AWAITING_SHIPMENT", NOW, ("L2", "S2", "B", "X"))
    bad["line_items"][0]["sku_id"] = 42
    good = order("O7", "AWAITING_SHIPMENT", NOW, ("L1", "S1", "A", "X"))
    wire.on("/order/202309/orders", ok({"orders": [bad, good]}))

    lines = await conn.lines_for_orders(["O7", "O8"])
    assert [(line.order_id, line.sku) for line in lines] == [("O7", "A")]


@pytest.mark.parametrize("stock", [[("W1", -1)], [("W1", 600_000), ("W2", 600_000)]])
async def test_implausible_level_is_never_believed(
    wire: Wire, conn: TikTokShopConnector, stock: list[tuple[str, int]]
) -> None:
    """A total out of bounds reads as unknown for that SKU only, in listings and in reads."""
    wire.on(
        PRODUCTS,
        ok(
            {"products": [product("P1", ("S1", "A", [("W1", 4)]), ("S2", "B", stock))], "next_page_token": ""}
        ),
    )
    listings = {listing.sku: listing.quantity for listing in await conn.list_listings()}
    assert listings == {"A": 4, "B": None}

    both = (
        inventory("P1", "S1", "A", [("W1", 4)])["inventory"] + inventory("P1", "S2", "B", stock)["inventory"]
    )
    wire.on(INVENTORY, ok({"inventory": both}))
    wanted = [Listing("A", "P1:S1", None), Listing("B", "P1:S2", None)]
    assert await conn.read_quantities(wanted) == {"A": 4}


# ---------------------------------------------------------------------------- named warehouses

WAREHOUSE_LIST = "/logistics/202309/warehouses"


def warehouse_list(*ids: str) -> Answer:
    return ok({"warehouses": [{"id": w, "name": f"Depot {w}", "effect_status": "ENABLED"} for w in ids]})


async def test_a_named_warehouse_missing_from_a_read_counts_as_not_stocked(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A SKU whose inventory lacks a named warehouse sums the others; the write leaves it out."""
    conn = make_conn(warehouse_ids=["W1", "W2"])
    wire.on(WAREHOUSE_LIST, warehouse_list("W1", "W2", "W9"))
    wire.on(INVENTORY, ok(inventory("P1", "S1", "A", [("W9", 50), ("W2", 3)])))
    wire.on(update_path("P1"), ok({}))

    assert await conn.read_quantities([Listing("A", "P1:S1", 0)]) == {"A": 3}
    result = await conn.set_quantities([QuantityUpdate("A", "P1:S1", 5)])

    assert result.applied == {"A": 5}
    [request] = wire.calls(update_path("P1"))
    assert json.loads(request.content)["skus"][0]["inventory"] == [{"warehouse_id": "W2", "quantity": 5}]
    assert len(wire.calls(WAREHOUSE_LIST)) == 1


async def test_an_unreadable_warehouse_list_is_a_protocol_error(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A warehouse list answer without a list is malformed: nothing is read or written."""
    conn = make_conn(warehouse_ids=["W1"])
    wire.on(WAREHOUSE_LIST, ok({"warehouses": "W1"}))

    with pytest.raises(ProtocolError, match="no warehouses list"):
        await conn.read_quantities([Listing("A", "P1:S1", 0)])
    assert not wire.calls(INVENTORY)


async def test_numeric_warehouse_ids_in_the_list_match_the_settings(
    wire: Wire, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """Warehouse ids TikTok lists as numbers match the same ids written as text in the settings."""
    conn = make_conn(warehouse_ids=["7068517275539719942"])
    wire.on(WAREHOUSE_LIST, ok({"warehouses": [{"id": 7068517275539719942, "name": "Main"}]}))
    wire.on(INVENTORY, ok(inventory("P1", "S1", "A", [("7068517275539719942", 4)])))

    assert await conn.read_quantities([Listing("A", "P1:S1", 0)]) == {"A": 4}
