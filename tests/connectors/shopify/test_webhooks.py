"""Shopify webhook verification and parsing, and the sandbox's signed deliveries."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from connectors.shopify.client import ShopifyConnector
from connectors.shopify.sandbox import create_app
from connectors.shopify.settings import ShopifySettings
from connectors.shopify.webhooks import ORDER_TOPICS, signature
from syncd.errors import PayloadError, SignatureError
from tests.connectors.shopify.support import BASE_URL, TOKEN, WEBHOOK_SECRET

ORDER = {
    "id": 820982911946154508,
    "updated_at": "2026-11-23T05:00:00-05:00",
    "cancelled_at": None,
    "line_items": [
        {"id": 466157049, "sku": "IPOD-342-N", "quantity": 2},
        {"id": 466157050, "sku": None, "quantity": 1},
    ],
}


def headers(body: bytes, secret: str = WEBHOOK_SECRET, **extra: str) -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": signature(secret, body),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
    } | extra


@pytest.fixture
async def connector(make_settings: Callable[..., ShopifySettings]) -> AsyncIterator[ShopifyConnector]:
    # parse_webhook makes no HTTP call.
    connector = ShopifyConnector(
        make_settings(), transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    yield connector
    await connector.aclose()


def test_published_vector() -> None:
    """The published Shopify vector: secret test_secret_key over {"foo": "bar"}."""
    assert signature("test_secret_key", b'{"foo": "bar"}') == "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="


async def test_order_delivery_yields_its_lines(connector: ShopifyConnector) -> None:
    """A signed orders/create delivery yields open lines with numeric ids; its dedupe key comes from the body."""
    body = json.dumps(ORDER).encode()

    event = connector.parse_webhook(headers(body), body)

    assert event.dedupe_key is not None and event.dedupe_key.startswith("body:")
    assert "b54557e4" not in event.dedupe_key
    assert event.topic == "orders/create"
    [line] = event.lines
    assert (line.order_id, line.line_key, line.sku, line.quantity, line.status) == (
        "820982911946154508",
        "466157049",
        "IPOD-342-N",
        2,
        "open",
    )
    assert line.updated_at.utcoffset() is not None and line.updated_at.hour == 10


async def test_cancelled_order_lines_are_cancelled(connector: ShopifyConnector) -> None:
    """An orders/cancelled delivery reports its lines as cancelled."""
    body = json.dumps(ORDER | {"cancelled_at": "2026-11-23T05:00:00-05:00"}).encode()

    event = connector.parse_webhook(headers(body, **{"X-Shopify-Topic": "orders/cancelled"}), body)

    assert [line.status for line in event.lines] == ["cancelled"]


async def test_replays_with_fresh_header_ids_share_one_dedupe_key(connector: ShopifyConnector) -> None:
    """5,000 replays of one signed body with fresh webhook and event ids (and any order topic)
    give one dedupe key: the unsigned headers cannot add dedupe rows."""
    body = json.dumps(ORDER).encode()
    topics = sorted(ORDER_TOPICS)
    keys = {
        connector.parse_webhook(
            headers(
                body,
                **{
                    "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                    "X-Shopify-Event-Id": str(uuid.uuid4()),
                    "X-Shopify-Topic": topics[n % len(topics)],
                },
            ),
            body,
        ).dedupe_key
        for n in range(5000)
    }
    assert len(keys) == 1


async def test_another_order_state_has_another_dedupe_key(connector: ShopifyConnector) -> None:
    """A cancellation stamped with the same updated_at second is not taken for a duplicate."""
    body = json.dumps(ORDER).encode()
    cancelled = json.dumps(ORDER | {"cancelled_at": ORDER["updated_at"]}).encode()
    first = connector.parse_webhook(headers(body), body)
    second = connector.parse_webhook(headers(cancelled, **{"X-Shopify-Topic": "orders/cancelled"}), cancelled)
    assert first.dedupe_key != second.dedupe_key
    assert [line.status for line in second.lines] == ["cancelled"]


@pytest.mark.parametrize("quantity", ["oops", 1.5, True, None, -2, 10**9])
async def test_implausible_quantity_is_quarantined(connector: ShopifyConnector, quantity: object) -> None:
    """A signed order whose line quantity is not an integer from 0 to max_quantity is quarantined
    by its id, the reason naming the field, the value and the bound; none of its lines is read."""
    raw = ORDER | {"line_items": [{"id": 1, "sku": "A", "quantity": quantity}]}
    body = json.dumps(raw).encode()
    event = connector.parse_webhook(headers(body), body)
    [item] = event.quarantined
    assert event.lines == [] and event.dedupe_key
    assert (item.connector, item.kind, item.ref) == (connector.name, "order", str(ORDER["id"]))
    message = item.reason
    assert "line_items[0].quantity" in message and repr(quantity)[:10] in message and "1000000" in message


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, b: ({**h, "x-shopify-hmac-sha256": signature("other", b)}, b),
        lambda h, b: (h, b + b" "),
        lambda h, b: ({k: v for k, v in h.items() if k != "x-shopify-hmac-sha256"}, b),
    ],
    ids=["wrong-secret", "body-changed", "missing"],
)
async def test_bad_signature_is_refused(connector: ShopifyConnector, mangle: Any) -> None:
    """A wrong, stale or missing signature raises SignatureError."""
    body = json.dumps(ORDER).encode()
    given, sent = mangle(headers(body), body)

    with pytest.raises(SignatureError):
        connector.parse_webhook(given, sent)


async def test_missing_secret_refuses_every_delivery(make_settings: Callable[..., ShopifySettings]) -> None:
    """Without a configured client secret no delivery is accepted."""
    connector = ShopifyConnector(make_settings(webhook_secret=None))
    body = json.dumps(ORDER).encode()

    with pytest.raises(SignatureError, match="not configured"):
        connector.parse_webhook(headers(body), body)
    await connector.aclose()


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"], ids=["not-json", "array"])
async def test_malformed_signed_body_is_a_payload_error(connector: ShopifyConnector, body: bytes) -> None:
    """A correctly signed body that is not a JSON object raises PayloadError."""
    with pytest.raises(PayloadError):
        connector.parse_webhook(headers(body), body)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"id": 1, "line_items": "x", "updated_at": "2026-11-23T05:00:00Z"}).encode(),
        json.dumps({"id": 1, "line_items": [], "updated_at": "yesterday"}).encode(),
    ],
    ids=["bad-lines", "bad-time"],
)
async def test_malformed_signed_order_is_quarantined(connector: ShopifyConnector, body: bytes) -> None:
    """A correctly signed order that cannot be read is quarantined by its id, with no lines."""
    event = connector.parse_webhook(headers(body), body)
    assert event.lines == [] and [q.ref for q in event.quarantined] == ["1"]


async def test_sandbox_delivers_signed_order_webhooks(make_settings: Callable[..., ShopifySettings]) -> None:
    """The sandbox signs orders/create and orders/cancelled deliveries the connector accepts."""
    received: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    app = create_app(
        access_token=TOKEN,
        webhook_url="http://syncd.test/webhooks/shopify",
        webhook_secret=WEBHOOK_SECRET,
        webhook_transport=httpx.MockTransport(receive),
    )
    connector = ShopifyConnector(make_settings())
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as hooks:
            await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG", "quantity": 3}]})
            order_id = (await hooks.post("/_sandbox/purchase", json={"sku": "MUG", "quantity": 2})).json()[
                "order_id"
            ]
            await hooks.post(f"/_sandbox/orders/{order_id}/cancel")
            await app.state.webhooks.drain()

    events = [connector.parse_webhook(dict(r.headers), r.content) for r in received]
    assert [e.topic for e in events] == ["orders/create", "orders/cancelled"]
    assert [(e.lines[0].order_id, e.lines[0].quantity, e.lines[0].status) for e in events] == [
        (order_id, 2, "open"),
        (order_id, 2, "cancelled"),
    ]
    assert len({e.dedupe_key for e in events}) == 2
    await connector.aclose()
