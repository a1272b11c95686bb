"""WooCommerce webhooks: signature checks, pings, payload errors, and the sandbox's deliveries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from connectors.sandbox_kit import Faults
from connectors.woocommerce.client import WooCommerceConnector
from connectors.woocommerce.sandbox import create_app
from connectors.woocommerce.sandbox_webhooks import WebhookSender
from connectors.woocommerce.settings import WooCommerceSettings
from connectors.woocommerce.webhooks import signature
from syncd.errors import PayloadError, SignatureError
from tests.connectors.support import Receiver, SandboxShop, running_shop
from tests.connectors.woocommerce.support import BASE_URL, KEY, SECRET, WEBHOOK_SECRET

ORDER = {
    "id": 727,
    "status": "processing",
    "date_created_gmt": "2024-05-01T10:00:00",
    "date_modified_gmt": "2024-05-01T10:00:05",
    "line_items": [
        {"id": 1, "product_id": 93, "variation_id": 0, "sku": "MUG-1", "quantity": 2},
        {"id": 2, "product_id": 94, "variation_id": 0, "sku": "", "quantity": 1},
    ],
}


def signed(body: bytes, topic: str = "order.created", secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "x-wc-webhook-topic": topic,
        "X-WC-Webhook-Signature": signature(secret, body),
        "X-WC-Webhook-Delivery-ID": "d1",
    }


@pytest.fixture
async def woo_conn(make_settings: Callable[..., WooCommerceSettings]) -> AsyncIterator[WooCommerceConnector]:
    connector = WooCommerceConnector(make_settings())
    yield connector
    await connector.aclose()


def test_signature_matches_published_vector() -> None:
    """The signature is base64 HMAC-SHA256 of the body, as WooCommerce's published vector says."""
    assert signature("", b"secret") == "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="


def test_signed_order_delivery_becomes_open_lines(woo_conn: WooCommerceConnector) -> None:
    """A signed order.created delivery yields its SKU-bearing lines, open, keyed by order and line."""
    body = json.dumps(ORDER).encode()

    event = woo_conn.parse_webhook(signed(body), body)

    assert event.topic == "order.created"
    assert event.ping is False
    [line] = event.lines
    assert (line.channel, line.order_id, line.line_key, line.sku, line.quantity, line.status) == (
        "webstore",
        "727",
        "1",
        "MUG-1",
        2,
        "open",
    )
    assert line.updated_at.isoformat() == "2024-05-01T10:00:05+00:00"


@pytest.mark.parametrize("status", ["cancelled", "refunded", "failed", "trash"])
def test_cancelled_statuses_mark_lines_cancelled(woo_conn: WooCommerceConnector, status: str) -> None:
    """Orders cancelled, refunded, failed or trashed report their lines as cancelled."""
    body = json.dumps(ORDER | {"status": status}).encode()

    event = woo_conn.parse_webhook(signed(body, "order.updated"), body)

    assert [line.status for line in event.lines] == ["cancelled"]


def test_bad_signature_is_refused(woo_conn: WooCommerceConnector) -> None:
    """A body signed with another secret raises SignatureError."""
    body = json.dumps(ORDER).encode()

    with pytest.raises(SignatureError, match="does not match"):
        woo_conn.parse_webhook(signed(body, secret="someone-else"), body)


def test_tampered_body_is_refused(woo_conn: WooCommerceConnector) -> None:
    """A signature over different bytes (here, re-serialised JSON) does not verify."""
    body = json.dumps(ORDER).encode()
    headers = signed(body)

    with pytest.raises(SignatureError):
        woo_conn.parse_webhook(headers, json.dumps(ORDER, indent=1).encode())


def test_missing_signature_is_refused(woo_conn: WooCommerceConnector) -> None:
    """A JSON delivery without X-WC-Webhook-Signature raises SignatureError."""
    with pytest.raises(SignatureError, match="X-WC-Webhook-Signature"):
        woo_conn.parse_webhook({"X-WC-Webhook-Topic": "order.created"}, json.dumps(ORDER).encode())


async def test_unconfigured_secret_refuses_signed_deliveries(
    make_settings: Callable[..., WooCommerceSettings],
) -> None:
    """Without webhook_secret nothing can be verified, so deliveries are refused and the error says why."""
    connector = WooCommerceConnector(make_settings(webhook_secret=None))
    body = json.dumps(ORDER).encode()

    with pytest.raises(SignatureError, match="not configured"):
        connector.parse_webhook(signed(body), body)
    await connector.aclose()


def test_creation_ping_is_acknowledged_without_signature(woo_conn: WooCommerceConnector) -> None:
    """The unsigned form-encoded ping WooCommerce sends on webhook creation is a ping event."""
    event = woo_conn.parse_webhook({"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12")

    assert event.ping is True
    assert event.lines == []
    assert event.dedupe_key is None


def test_malformed_json_is_a_payload_error(woo_conn: WooCommerceConnector) -> None:
    """A correctly signed body that is not JSON raises PayloadError."""
    body = b'{"id": 727, "status": '

    with pytest.raises(PayloadError, match="not JSON"):
        woo_conn.parse_webhook(signed(body), body)


def test_order_with_wrong_field_type_names_the_field(woo_conn: WooCommerceConnector) -> None:
    """A signed order whose line quantity is not an integer is quarantined, the reason naming the field."""
    broken = ORDER | {"line_items": [{"id": 1, "sku": "MUG-1", "quantity": "two"}]}
    body = json.dumps(broken).encode()

    [item] = woo_conn.parse_webhook(signed(body), body).quarantined
    assert "line_items[0].quantity" in item.reason


def test_non_order_topic_carries_no_lines(woo_conn: WooCommerceConnector) -> None:
    """A verified product.updated delivery is accepted with no order lines."""
    body = json.dumps({"id": 93, "sku": "MUG-1", "stock_quantity": 4}).encode()

    event = woo_conn.parse_webhook(signed(body, "product.updated"), body)

    assert (event.topic, event.lines, event.ping) == ("product.updated", [], False)


def test_dedupe_key_is_the_same_for_a_redelivered_order(woo_conn: WooCommerceConnector) -> None:
    """Replays of one signed body share one dedupe key whatever their unsigned headers (delivery
    id, topic); another state of the order, even within the same second, has another."""
    body = json.dumps(ORDER).encode()
    keys = {
        woo_conn.parse_webhook(signed(body, topic) | {"X-WC-Webhook-Delivery-ID": str(n)}, body).dedupe_key
        for n in range(500)
        for topic in ("order.created", "order.updated")
    }
    changed = json.dumps(ORDER | {"date_modified_gmt": "2024-05-01T11:00:00"}).encode()
    cancelled = json.dumps(ORDER | {"status": "cancelled"}).encode()

    assert len(keys) == 1 and next(iter(keys)).startswith("727:")
    assert woo_conn.parse_webhook(signed(changed), changed).dedupe_key not in keys
    assert woo_conn.parse_webhook(signed(cancelled), cancelled).dedupe_key not in keys


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [
        ("oops", "'oops' (str)"),
        (1.5, "1.5 (float)"),
        (True, "True (bool)"),
        (None, "None (NoneType)"),
        (-1, "-1 (int)"),
        (1_000_001, "1000001 (int)"),
        (10**9, "1000000000 (int)"),
    ],
)
def test_implausible_quantity_is_quarantined_naming_field_value_and_bound(
    woo_conn: WooCommerceConnector, quantity: object, shown: str
) -> None:
    """A signed delivery whose line quantity is not an integer from 0 to max_quantity is quarantined
    by the order's id, naming the field, the value and the bound; it never becomes a reservation."""
    raw = {**ORDER, "line_items": [{**ORDER["line_items"][0], "quantity": quantity}]}  # type: ignore[dict-item]
    body = json.dumps(raw).encode()
    event = woo_conn.parse_webhook(signed(body), body)
    [item] = event.quarantined
    assert event.lines == [] and item.ref == "727"
    message = item.reason
    assert "line_items[0].quantity" in message and shown in message and "1000000" in message


def test_max_quantity_is_configurable(make_settings: Callable[..., WooCommerceSettings]) -> None:
    """With max_quantity 1 a line of 2 units is quarantined; with the default it is read."""
    body = json.dumps(ORDER).encode()
    strict = WooCommerceConnector(make_settings(max_quantity=1))
    [item] = strict.parse_webhook(signed(body), body).quarantined
    assert "from 0 to 1, got 2" in item.reason
    assert WooCommerceConnector(make_settings()).parse_webhook(signed(body), body).lines[0].quantity == 2


# ---------------------------------------------------------------------- sandbox deliveries


@pytest.fixture
async def shop() -> AsyncIterator[SandboxShop]:
    receiver = Receiver("/hooks/woo")
    faults = Faults()
    app = create_app(
        consumer_key=KEY,
        consumer_secret=SECRET,
        webhook_url="http://syncd.test/hooks/woo",
        webhook_secret=WEBHOOK_SECRET,
        faults=faults,
        seed=3,
        webhook_transport=httpx.ASGITransport(receiver.app()),
    )
    async with running_shop(app, receiver, faults, BASE_URL, WebhookSender) as shop:
        yield shop


async def test_sandbox_deliveries_verify_and_parse(shop: SandboxShop, woo_conn: WooCommerceConnector) -> None:
    """A purchase and its cancellation reach the webhook URL signed, and parse_webhook accepts both."""
    order_id = (await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 2})).json()[
        "order_id"
    ]
    await shop.hooks.post(f"/_sandbox/orders/{order_id}/cancel")
    await shop.sender.drain()

    events = [woo_conn.parse_webhook(headers, body) for headers, body in shop.receiver.received]

    assert [event.topic for event in events] == ["order.created", "order.updated"]
    assert [[(line.order_id, line.sku, line.quantity, line.status) for line in e.lines] for e in events] == [
        [(str(order_id), "MUG-1", 2, "open")],
        [(str(order_id), "MUG-1", 2, "cancelled")],
    ]
    headers, body = shop.receiver.received[0]
    assert headers["x-wc-webhook-resource"] == "order"
    assert headers["x-wc-webhook-event"] == "created"
    assert headers["x-wc-webhook-source"] == f"{BASE_URL}/"
    rest = await shop.hooks.get(f"/wp-json/wc/v3/orders/{order_id}", auth=(KEY, SECRET))
    assert json.loads(body)["line_items"] == rest.json()["line_items"]


async def test_duplicated_delivery_dedupes_to_one_key(
    shop: SandboxShop, woo_conn: WooCommerceConnector
) -> None:
    """With webhook_duplicate_rate 1 every delivery arrives twice, with one dedupe key between them."""
    shop.faults.update({"webhook_duplicate_rate": 1})

    await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
    await shop.sender.drain()

    assert len(shop.receiver.received) == 2
    delivery_ids = {headers["x-wc-webhook-delivery-id"] for headers, _ in shop.receiver.received}
    keys = {woo_conn.parse_webhook(headers, body).dedupe_key for headers, body in shop.receiver.received}
    assert len(delivery_ids) == 2
    assert len(keys) == 1


async def test_dropped_deliveries_never_arrive(shop: SandboxShop) -> None:
    """With webhook_drop_rate 1 the order is placed but no delivery is made (the poll must find it)."""
    shop.faults.update({"webhook_drop_rate": 1})

    response = await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
    await shop.sender.drain()

    assert response.status_code == 201
    assert shop.receiver.received == []


async def test_delayed_delivery_arrives_after_the_purchase_returns(shop: SandboxShop) -> None:
    """webhook_delay_ms holds a delivery back without holding back the purchase response."""
    shop.faults.update({"webhook_delay_ms": 50})

    await shop.hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
    assert shop.receiver.received == []
    await shop.sender.drain()

    assert len(shop.receiver.received) == 1


async def test_unreachable_webhook_url_does_not_break_the_shop() -> None:
    """A delivery that fails is dropped silently, as WooCommerce does, and the order still stands."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    app = create_app(
        consumer_key=KEY,
        consumer_secret=SECRET,
        webhook_url="http://syncd.test/hooks/woo",
        webhook_transport=httpx.MockTransport(refuse),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as hooks,
    ):
        await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 5}]})
        response = await hooks.post("/_sandbox/purchase", json={"sku": "MUG-1", "quantity": 1})
        await app.state.webhooks.drain()
        orders = await hooks.get("/wp-json/wc/v3/orders", auth=(KEY, SECRET))

    assert response.status_code == 201
    assert [order["id"] for order in orders.json()] == [response.json()["order_id"]]
