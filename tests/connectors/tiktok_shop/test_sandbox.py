"""The TikTok Shop sandbox checks requests as TikTok does, and the connector copes with its answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import MemoryTokenStore, QuantityUpdate
from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.sandbox import create_app
from connectors.tiktok_shop.settings import TikTokShopSettings
from syncd.errors import AuthError, TransientError
from tests.connectors.tiktok_shop.support import (
    ACCESS_TOKEN,
    APP_KEY,
    APP_SECRET,
    REFRESH_TOKEN,
    SHOP_CIPHER,
    no_wait,
)


@pytest.fixture
async def make_conn(
    tts_app: Starlette, make_settings: Callable[..., TikTokShopSettings]
) -> AsyncIterator[Callable[..., TikTokShopConnector]]:
    made: list[TikTokShopConnector] = []

    def make(
        *, app: Starlette | None = None, tokens: Any = None, clock: Any = time.time, **overrides: Any
    ) -> TikTokShopConnector:
        connector = TikTokShopConnector(
            make_settings(**overrides),
            transport=httpx.ASGITransport(app or tts_app),
            sleep=no_wait,
            tokens=tokens,
            clock=clock,
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()


@pytest.fixture
async def seeded(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    items = [
        {"sku": "MUG-1", "quantity": 5},
        {"sku": "TEE-S", "parent": "TEE", "warehouses": {"W-EAST": 2, "W-WEST": 3}},
        {"sku": "TEE-M", "parent": "TEE", "quantity": 1},
    ]
    response = await hooks.post("/_sandbox/seed", json={"items": items})
    assert response.status_code == 201
    return hooks


async def shown(hooks: httpx.AsyncClient) -> dict[str, Any]:
    return {row["sku"]: row for row in (await hooks.get("/_sandbox/listings")).json()}


async def test_wrong_secret_gets_code_106001_with_http_200(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A request signed with another secret is refused with code 106001 in an HTTP 200 envelope."""
    response = await seeded.post(
        "/product/202309/products/search",
        params={
            "app_key": APP_KEY,
            "timestamp": str(int(time.time())),
            "shop_cipher": SHOP_CIPHER,
            "sign": "0" * 64,
            "page_size": 10,
        },
        headers={"x-tts-access-token": ACCESS_TOKEN},
        json={},
    )
    assert (response.status_code, response.json()["code"]) == (200, 106001)

    with pytest.raises(AuthError, match="106001"):
        await make_conn(app_secret="not-the-secret").list_listings()


@pytest.mark.parametrize(
    "overrides",
    [{"app_key": "other-app"}, {"shop_cipher": "ROW_other"}, {"access_token": "TTP_unknown"}],
    ids=["app_key", "shop_cipher", "token"],
)
async def test_wrong_credentials_are_auth_errors(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector], overrides: dict[str, str]
) -> None:
    """A wrong app_key, shop_cipher or access token is refused (36009004) and surfaces as AuthError."""
    with pytest.raises(AuthError, match="36009004"):
        await make_conn(**overrides).list_listings()


async def test_clock_skew_beyond_five_minutes_is_refused(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A timestamp more than 5 minutes off server time is refused; within the window it passes."""
    await make_conn(clock=lambda: time.time() - 200).list_listings()
    with pytest.raises(AuthError, match="timestamp"):
        await make_conn(clock=lambda: time.time() - 400).list_listings()


async def test_expired_token_is_refreshed_and_survives_a_restart(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """After 105002 the connector refreshes and saves the new pair; a restarted connector uses it."""
    tokens = MemoryTokenStore()
    first = make_conn(tokens=tokens)
    await first.list_listings()
    await seeded.post("/_sandbox/tokens/expire")

    assert len(await first.list_listings()) == 3
    # The sandbox spends a refresh token on use: only the saved pair can work from now on.
    await seeded.post("/_sandbox/tokens/expire")
    restarted = make_conn(tokens=tokens)
    assert len(await restarted.list_listings()) == 3

    saved = tokens.load_token("tiktok_shop:tiktok")
    assert saved is not None
    assert (saved.access_token, saved.refresh_token) != (ACCESS_TOKEN, REFRESH_TOKEN)
    stats = (await seeded.get("/_sandbox/stats")).json()["calls"]
    assert stats["GET /api/v2/token/refresh"] == 2


async def test_qps_limit_answers_throttling(make_settings: Callable[..., TikTokShopSettings]) -> None:
    """Past the sandbox's QPS the API answers 36009002, which the connector retries as transient."""
    app = create_app(
        app_key=APP_KEY,
        app_secret=APP_SECRET,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        shop_cipher=SHOP_CIPHER,
        qps=1,
    )
    connector = TikTokShopConnector(make_settings(), transport=httpx.ASGITransport(app), sleep=no_wait)
    try:
        await connector.list_listings()
        with pytest.raises(TransientError, match="36009002"):
            await connector.list_listings()
    finally:
        await connector.aclose()


async def test_warehouses_sum_and_writes_go_to_the_first(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A SKU's shown quantity is its warehouses' sum; a write puts it all on the first warehouse."""
    conn = make_conn()
    listings = {listing.sku: listing for listing in await conn.list_listings()}
    assert listings["TEE-S"].quantity == 5
    assert listings["TEE-S"].ref.split(":")[0] == listings["TEE-M"].ref.split(":")[0]

    result = await conn.set_quantities([QuantityUpdate("TEE-S", listings["TEE-S"].ref, 8)])

    assert result.applied == {"TEE-S": 8}
    assert (await shown(seeded))["TEE-S"]["warehouses"] == {"W-EAST": 8, "W-WEST": 0}


async def test_purchase_sells_against_the_sum_and_one_line_item_per_unit(
    seeded: httpx.AsyncClient, tts_app: Starlette, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A purchase may span warehouses up to their sum, makes one line item per unit, and 409s above it."""
    too_many = await seeded.post("/_sandbox/purchase", json={"sku": "TEE-S", "quantity": 6})
    assert (too_many.status_code, too_many.json()) == (409, {"error": "insufficient_stock", "available": 5})

    bought = await seeded.post("/_sandbox/purchase", json={"sku": "TEE-S", "quantity": 3})
    order_id = bought.json()["order_id"]
    order = tts_app.state.shop.orders[order_id]

    assert len(order.items) == 3
    assert (await shown(seeded))["TEE-S"]["warehouses"] == {"W-EAST": 0, "W-WEST": 2}
    [line] = await make_conn().lines_for_orders([order_id])
    assert (line.sku, line.quantity, line.status) == ("TEE-S", 3, "open")


async def test_update_to_a_warehouse_the_sku_left_is_a_per_sku_error(
    seeded: httpx.AsyncClient, make_conn: Callable[..., TikTokShopConnector]
) -> None:
    """A write to a warehouse the SKU left is refused for that SKU only; the next write finds the new one."""
    conn = make_conn()
    listings = {listing.sku: listing for listing in await conn.list_listings()}
    # The seller moves the SKU to another warehouse after syncd last read it.
    moved = await seeded.post(
        "/_sandbox/seed", json={"items": [{"sku": "TEE-S", "warehouses": {"W-NORTH": 5}}]}
    )
    assert moved.status_code == 201

    result = await conn.set_quantities(
        [QuantityUpdate("TEE-S", listings["TEE-S"].ref, 4), QuantityUpdate("TEE-M", listings["TEE-M"].ref, 9)]
    )

    assert result.applied == {"TEE-M": 9}
    assert "W-EAST" in result.rejected["TEE-S"]
    assert (await shown(seeded))["TEE-S"]["warehouses"] == {"W-NORTH": 5}
    retried = await conn.set_quantities([QuantityUpdate("TEE-S", listings["TEE-S"].ref, 4)])
    assert retried.applied == {"TEE-S": 4}
    assert (await shown(seeded))["TEE-S"]["warehouses"] == {"W-NORTH": 4}


async def test_unsigned_api_call_gets_an_envelope(seeded: httpx.AsyncClient) -> None:
    """An API call without credentials gets TikTok's envelope (HTTP 200, code 36009004), not a crash."""
    response = await seeded.post("/order/202309/orders/search", json={})

    assert response.status_code == 200
    assert response.json()["code"] == 36009004
