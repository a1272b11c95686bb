"""TikTok Shop webhooks: signature checks, payload errors, and the sandbox's signed deliveries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from connectors.sandbox_kit import Faults
from connectors.tiktok_shop.client import TikTokShopConnector
from connectors.tiktok_shop.sandbox import create_app
from connectors.tiktok_shop.sandbox_webhooks import WebhookSender
from connectors.tiktok_shop.settings import TikTokShopSettings
from connectors.tiktok_shop.signing import webhook_signature
from syncd.errors import PayloadError, SignatureError
from tests.connectors.support import Receiver, SandboxShop, running_shop
from tests.connectors.tiktok_shop.support import (
    ACCESS_TOKEN,
    APP_KEY,
    APP_SECRET,
    BASE_URL,
    REFRESH_TOKEN,
    SHOP_CIPHER,
    no_wait,
)

VECTOR_BODY = (
    b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":"7495540735365777507",'
    b'"timestamp":1718305585,"data":{"is_on_hold_order":true,"order_id":"576653688135258178",'
    b'"order_status":"UNPAID","update_time":1718305585}}'
)
VECTOR_SIGNATURE = "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"


@pytest.fixture
async def vector_conn(make_settings: Callable[..., TikTokShopSettings]) -> AsyncIterator[TikTokShopConnector]:
    connector = TikTokShopConnector(make_settings(app_key="abcdef", app_secret="123"))
    yield connector
    await connector.aclose()


@pytest.fixture
async def conn(make_settings: Callable[..., TikTokShopSettings]) -> AsyncIterator[TikTokShopConnector]:
    connector = TikTokShopConnector(make_settings())
    yield connector
    await connector.aclose()


def signed(body: bytes) -> dict[str, str]:
    return {"Authorization": webhook_signature(APP_KEY, APP_SECRET, body), "Content-Type": "application/json"}


def test_replays_of_one_signed_body_share_one_dedupe_key(vector_conn: TikTokShopConnector) -> None:
    """The dedupe key is the notification id inside the signed body: replays with any other
    headers give one key, and a body naming another notification cannot reuse the signature."""
    keys = {
        vector_conn.parse_webhook(
            {"authorization": VECTOR_SIGNATURE, "x-request-id": str(n), "x-tts-event-id": str(n)}, VECTOR_BODY
        ).dedupe_key
        for n in range(1000)
    }
    assert keys == {"7380066284010030890"}
    forged = VECTOR_BODY.replace(b"7380066284010030890", b"7380066284010030891")
    with pytest.raises(SignatureError):
        vector_conn.parse_webhook({"authorization": VECTOR_SIGNATURE}, forged)


def test_published_vector_parses_to_an_order_event(vector_conn: TikTokShopConnector) -> None:
    """The published delivery verifies and names its order in the topic, deduped by notification id."""
    event = vector_conn.parse_webhook({"authorization": VECTOR_SIGNATURE}, VECTOR_BODY)

    assert event.topic == "order:576653688135258178"
    assert event.dedupe_key == "7380066284010030890"
    assert event.lines == []
    assert not event.ping


def test_wrong_or_missing_signature_is_refused(vector_conn: TikTokShopConnector) -> None:
    """A signature over other bytes, or no Authorization header, raises SignatureError."""
    with pytest.raises(SignatureError, match="does not match"):
        vector_conn.parse_webhook(
            {"Authorization": VECTOR_SIGNATURE}, VECTOR_BODY.replace(b"UNPAID", b"CANCELLED")
        )
    with pytest.raises(SignatureError, match="no Authorization"):
        vector_conn.parse_webhook({}, VECTOR_BODY)


def test_signature_keyed_with_another_app_is_refused(conn: TikTokShopConnector) -> None:
    """A delivery signed for another app_key/secret pair does not verify."""
    with pytest.raises(SignatureError):
        conn.parse_webhook({"Authorization": VECTOR_SIGNATURE}, VECTOR_BODY)


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":1,"tts_notification_id":"1"',
        b"[]",
        b'{"tts_notification_id":"1","data":{"order_id":"9"}}',
        b'{"type":1,"data":{"order_id":"9"}}',
        b'{"type":1,"tts_notification_id":"1","data":{"order_status":"UNPAID"}}',
        b'{"type":1,"tts_notification_id":"1","data":{"order_id":9}}',
    ],
    ids=["truncated", "array", "no-type", "no-notification-id", "no-order-id", "numeric-order-id"],
)
def test_signed_but_malformed_bodies_are_payload_errors(conn: TikTokShopConnector, body: bytes) -> None:
    """A correctly signed body that is not a usable notification raises PayloadError."""
    with pytest.raises(PayloadError):
        conn.parse_webhook(signed(body), body)


def test_other_notification_types_carry_no_order(conn: TikTokShopConnector) -> None:
    """A non-order notification (e.g. type 5, product status) is accepted with no lines and its type as topic."""
    body = b'{"type":5,"tts_notification_id":"42","shop_id":"1","timestamp":1,"data":{"product_id":"7"}}'

    event = conn.parse_webhook(signed(body), body)

    assert (event.topic, event.dedupe_key, event.lines) == ("type:5", "42", [])


# ---------------------------------------------------------------------------- sandbox deliveries


@pytest.fixture
async def shop() -> AsyncIterator[SandboxShop]:
    receiver = Receiver("/hooks/tiktok")
    faults = Faults()
    app = create_app(
        app_key=APP_KEY,
        app_secret=APP_SECRET,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        shop_cipher=SHOP_CIPHER,
        webhook_url="http://syncd.test/hooks/tiktok",
        faults=faults,
        seed=3,
        webhook_transport=httpx.ASGITransport(receiver.app()),
    )
    async with running_shop(app, receiver, faults, BASE_URL, WebhookSender) as shop:
        yield shop


@pytest.fixture
async def shop_conn(
    shop: SandboxShop, make_settings: Callable[..., TikTokShopSettings]
) -> AsyncIterator[TikTokShopConnector]:
    connector = TikTokShopConnector(make_settings(), transport=httpx.ASGITransport(shop.app), sleep=no_wait)
    yield connector
    await connector.aclose()


async def test_sandbox_deliveries_verify_and_lead_to_the_order_lines(
    shop: SandboxShop, shop_conn: TikTokShopConnector
) -> None:
    """A purchase and its cancellation arrive signed; their topics name the order, whose lines can be fetched."""
    order_id = (await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 2})).json()[
        "order_id"
    ]
    await shop.sender.drain()
    [(headers, body)] = shop.receiver.received
    created = shop_conn.parse_webhook(headers, body)
    open_lines = await shop_conn.lines_for_orders([order_id])
    await shop.hooks.post(f"/_sandbox/orders/{order_id}/cancel")
    await shop.sender.drain()

    cancelled = shop_conn.parse_webhook(*shop.receiver.received[1])
    cancelled_lines = await shop_conn.lines_for_orders([order_id])

    assert created.topic == cancelled.topic == f"order:{order_id}"
    assert created.dedupe_key != cancelled.dedupe_key
    assert json.loads(body)["data"]["order_status"] == "AWAITING_SHIPMENT"
    assert [(line.order_id, line.sku, line.quantity, line.status) for line in open_lines] == [
        (order_id, "MUG-1", 2, "open")
    ]
    assert [(line.sku, line.quantity, line.status) for line in cancelled_lines] == [("MUG-1", 2, "cancelled")]


async def test_duplicated_delivery_keeps_its_notification_id(
    shop: SandboxShop, shop_conn: TikTokShopConnector
) -> None:
    """With webhook_duplicate_rate 1 a delivery arrives twice with one dedupe key."""
    shop.faults.update({"webhook_duplicate_rate": 1})

    await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
    await shop.sender.drain()

    assert len(shop.receiver.received) == 2
    assert len({shop_conn.parse_webhook(h, b).dedupe_key for h, b in shop.receiver.received}) == 1


async def test_dropped_deliveries_never_arrive(shop: SandboxShop) -> None:
    """With webhook_drop_rate 1 the order is placed but nothing is delivered (the poll must find it)."""
    shop.faults.update({"webhook_drop_rate": 1})

    response = await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
    await shop.sender.drain()

    assert response.status_code == 201
    assert shop.receiver.received == []
