"""Bling webhooks: signatures on the raw body, duplicates, out-of-order deliveries, what they name,
and the sandbox's signed deliveries (with drop, duplicate and reorder faults)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import MemoryTokenStore, StoredToken
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import create_app
from connectors.bling.webhooks import sign
from syncd.errors import PayloadError, SignatureError
from tests.connectors.bling.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, bling_settings
from tests.connectors.support import Receiver


def delivery(event_id: str = "ev-1", date: str = "2026-12-01T10:00:00-03:00", product: int = 11, deposit: int = 1,
             event: str = "stock.updated") -> bytes:  # fmt: skip
    body = {"eventId": event_id, "date": date, "version": "v1", "event": event, "companyId": "c",
            "data": {"produto": {"id": product}, "deposito": {"id": deposit}, "saldoFisicoTotal": 5}}  # fmt: skip
    return json.dumps(body).encode()


def signed(body: bytes, secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"X-Bling-Signature-256": sign(secret, body), "Content-Type": "application/json"}


@pytest.fixture
async def erp() -> BlingConnector:
    products = {"data": [{"id": 11, "codigo": "MUG"}]}
    saldos = {"data": [
        {"produto": {"id": 11}, "saldoVirtualTotal": 5, "depositos": [{"id": 1, "saldoVirtual": 5}]},
        {"produto": {"id": 99}, "saldoVirtualTotal": 1, "depositos": [{"id": 2, "saldoVirtual": 1}]},
    ]}  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/depositos":
            return httpx.Response(200, json={"data": [{"id": 1}, {"id": 2}]})
        if request.url.path == "/produtos":
            ids = request.url.params.get_list("idsProdutos[]")
            if ids == ["99"]:
                return httpx.Response(200, json={"data": [{"id": 99, "codigo": "NEW"}]})
            return httpx.Response(200, json=products if request.url.params["pagina"] == "1" else {"data": []})
        return httpx.Response(200, json=saldos)

    tokens = MemoryTokenStore()
    tokens.save_token("bling:erp", StoredToken("a", "r", datetime.now(UTC) + timedelta(hours=6)))
    connector = BlingConnector(
        bling_settings(deposits=[1, 2]), transport=httpx.MockTransport(answer), tokens=tokens
    )
    await connector.read_stock()  # learns MUG = 11
    return connector


def test_a_signed_stock_event_names_the_sku_to_read(erp: BlingConnector) -> None:
    """A correctly signed stock.updated names the product's SKU, deduplicated on its eventId."""
    body = delivery()
    event = erp.parse_webhook(signed(body), body)
    assert event.skus == ["MUG"] and event.dedupe_key == "bling:ev-1" and event.topic == "stock.updated"
    assert not event.stale and not event.duplicate


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, delivery(), "without X-Bling-Signature-256"),
        ({"X-Bling-Signature-256": sign("other-secret", delivery())}, delivery(), "does not match"),
        ({"X-Bling-Signature-256": sign(CLIENT_SECRET, delivery())}, delivery() + b" ", "does not match"),
        ({"x-bling-signature-256": sign(CLIENT_SECRET, delivery()).upper()}, delivery(), "does not match"),
    ],
)
def test_bad_signatures_are_refused(
    erp: BlingConnector, headers: dict[str, str], body: bytes, expected: str
) -> None:
    """A missing signature, another secret's, or a body changed by one byte is a SignatureError."""
    with pytest.raises(SignatureError, match=expected):
        erp.parse_webhook(headers, body)


def test_header_name_is_matched_case_insensitively(erp: BlingConnector) -> None:
    """The signature header is found whatever its case."""
    body = delivery()
    assert erp.parse_webhook({"x-bling-signature-256": sign(CLIENT_SECRET, body)}, body).skus == ["MUG"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"eventId": "e", "date": "2026-', "not JSON"),
        (b"[]", "not a JSON object"),
        (
            json.dumps({"event": "stock.updated", "date": "2026-12-01T10:00:00Z", "data": {}}).encode(),
            "eventId",
        ),
        (
            json.dumps({"eventId": "e", "event": "stock.updated", "date": "yesterday", "data": {}}).encode(),
            "ISO 8601",
        ),
        (
            json.dumps(
                {"eventId": "e", "event": "stock.updated", "date": "2026-12-01T10:00:00Z", "data": 3}
            ).encode(),
            "data",
        ),
    ],
)
def test_malformed_and_truncated_bodies_are_payload_errors(
    erp: BlingConnector, body: bytes, expected: str
) -> None:
    """A signed but unreadable body is a PayloadError naming what is wrong."""
    with pytest.raises(PayloadError, match=expected):
        erp.parse_webhook(signed(body), body)


def test_a_duplicate_delivery_names_nothing(erp: BlingConnector) -> None:
    """The same eventId a second time is marked duplicate and names no SKU."""
    body = delivery()
    erp.parse_webhook(signed(body), body)
    again = erp.parse_webhook(signed(body), body)
    assert again.duplicate and again.skus == [] and again.dedupe_key == "bling:ev-1"


def test_an_older_event_delivered_late_changes_nothing(erp: BlingConnector) -> None:
    """A stock event older than one already taken for the product is stale: nothing to read."""
    newer = delivery("ev-2", "2026-12-01T10:05:00-03:00")
    older = delivery("ev-1", "2026-12-01T10:00:00-03:00")
    assert erp.parse_webhook(signed(newer), newer).skus == ["MUG"]
    late = erp.parse_webhook(signed(older), older)
    assert late.stale and late.skus == []


def test_events_of_an_uncounted_deposit_or_without_a_product_name_nothing(erp: BlingConnector) -> None:
    """A stock event in a deposit syncd does not count, or an order event, asks for no read."""
    other = delivery(deposit=7)
    order = delivery("ev-9", event="order.created")
    assert erp.parse_webhook(signed(other), other).skus == []
    assert erp.parse_webhook(signed(order), order).skus == []


async def test_an_unknown_product_is_named_by_ref_and_resolved_when_read(erp: BlingConnector) -> None:
    """A product syncd has not listed yet comes as a ref; event_stock learns its code and reads its balance."""
    body = delivery(product=99)
    event = erp.parse_webhook(signed(body), body)
    assert event.skus == [] and event.refs == ["99"]
    records = await erp.event_stock([event])
    assert {r.sku: r.on_hand for r in records} == {"NEW": 1}


async def run_sandbox(faults: dict[str, Any]) -> tuple[Receiver, list[int]]:
    """Set MUG three times in a sandbox with the given webhook faults; what the receiver got."""
    receiver = Receiver("/webhooks/erp")
    app = create_app(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_url="http://syncd.test/webhooks/erp",
        webhook_transport=httpx.ASGITransport(app=receiver.app()),
        seed=11,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as hooks,
    ):
        await hooks.post("/_sandbox/faults", json=faults)
        levels = [4, 3, 2]
        for units in levels:
            await hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": units})
        await app.state.webhooks.drain()
    return receiver, levels


async def test_sandbox_deliveries_are_signed_and_parse_on_the_connector(erp: BlingConnector) -> None:
    """Each stock change the sandbox makes arrives signed with the client secret, with eventId and data."""
    receiver, levels = await run_sandbox({})
    assert len(receiver.received) == len(levels)
    for headers, body in receiver.received:
        payload = json.loads(body)
        assert headers["x-bling-signature-256"] == sign(CLIENT_SECRET, body)
        assert payload["event"] == "stock.updated" and payload["data"]["produto"]["id"]
    assert [json.loads(b)["data"]["saldoFisicoTotal"] for _, b in receiver.received] == levels


async def test_sandbox_faults_drop_duplicate_and_reorder_deliveries() -> None:
    """The drop, duplicate and reorder faults do what they say to the deliveries."""
    dropped, _ = await run_sandbox({"webhook_drop_rate": 1.0})
    assert dropped.received == []
    doubled, levels = await run_sandbox({"webhook_duplicate_rate": 1.0})
    ids = [json.loads(b)["eventId"] for _, b in doubled.received]
    assert len(ids) == 2 * len(levels) and len(set(ids)) == len(levels)
    shuffled, levels = await run_sandbox({"webhook_reorder_rate": 1.0})
    seen = [json.loads(b)["data"]["saldoFisicoTotal"] for _, b in shuffled.received]
    assert seen == [levels[1], levels[0], levels[2]]  # a held delivery goes right after the next
