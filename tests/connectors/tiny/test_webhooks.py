"""Tiny's unsigned stock webhook: parsed into SKUs to read again, never into a quantity."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import MemoryTokenStore, StockRecord
from connectors.tiny.sandbox import create_app
from connectors.tiny.sandbox_account import Account
from connectors.tiny.webhooks import StockHint, parse_stock_webhook
from syncd.errors import PayloadError
from tests.connectors.support import Receiver
from tests.connectors.tiny.support import CLIENT_ID, CLIENT_SECRET, authorise, build, handle


def delivery(**dados: object) -> bytes:
    return json.dumps(
        {"versao": "1.0.0", "cnpj": "00000000000191", "tipo": "estoque", "idEcommerce": 1, "dados": dados}
    ).encode()


@pytest.mark.parametrize(
    ("body", "skus", "ids"),
    [
        (delivery(idProduto="1001", sku="MUG-1", saldo=7, tipoEstoque="F"), {"MUG-1"}, {1001}),
        (delivery(idProduto=1001, sku=" MUG-1 ", saldo=7), {"MUG-1"}, {1001}),
        (delivery(idProduto="1001", sku="", saldo=7), set(), {1001}),
        (delivery(sku="MUG-1"), {"MUG-1"}, set()),
    ],
)
def test_a_stock_delivery_names_what_to_read(body: bytes, skus: set[str], ids: set[int]) -> None:
    """The hint carries the SKU and product id the delivery names, whatever form they take."""
    hint = parse_stock_webhook(body)
    assert (set(hint.skus), set(hint.product_ids), hint.kind) == (skus, ids, "estoque")


def test_other_notifications_name_nothing_to_read() -> None:
    """An order or product notification on the same URL is understood and names no SKU."""
    assert parse_stock_webhook(json.dumps({"tipo": "vendas", "dados": {"id": 5}}).encode()) == StockHint(
        kind="vendas"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"tipo": "estoque", "dados": {"sku": "MU', "not JSON"),
        (b"[]", "JSON object"),
        (b'{"dados": {}}', "'tipo'"),
        (b'{"tipo": "estoque"}', "'dados'"),
        (b'{"tipo": "estoque", "dados": {"saldo": 3}}', "neither"),
        (b'{"tipo": "estoque", "dados": {"sku": 12}}', "dados.sku"),
        (b'{"tipo": "estoque", "dados": {"idProduto": "abc"}}', "dados.idProduto"),
        (b"{" + b" " * 70_000 + b"}", "larger than"),
    ],
)
def test_a_malformed_delivery_is_a_payload_error(body: bytes, problem: str) -> None:
    """A body that cannot be understood raises PayloadError naming what is wrong."""
    with pytest.raises(PayloadError, match=problem):
        parse_stock_webhook(body)


@given(st.binary(max_size=300))
def test_any_body_parses_or_is_refused_cleanly(body: bytes) -> None:
    """Whatever arrives, parsing yields a hint or a PayloadError, nothing else."""
    try:
        hint = parse_stock_webhook(body)
    except PayloadError:
        return
    assert isinstance(hint, StockHint)


async def test_a_hint_reads_the_quantity_from_the_api_not_the_webhook(erp, hooks) -> None:
    """A delivery claiming 999 units only triggers a read: the record holds what Tiny's API says."""
    await hooks.post(
        "/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}, {"sku": "CUP", "quantity": 1}]}
    )

    hint = erp.stock_hint(delivery(idProduto="1", sku="MUG-1", saldo=999))

    assert await erp.read_hint(hint) == [StockRecord("MUG-1", 3)]


async def test_a_hint_by_product_id_alone_is_read_by_id(erp, hooks, app) -> None:
    """A delivery without a SKU is read through its product id; the SKU comes from Tiny."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}]})
    product = handle(app).account.product_by_sku("MUG-1")

    assert await erp.read_hint(erp.stock_hint(delivery(idProduto=str(product.id), saldo=50))) == [
        StockRecord("MUG-1", 3)
    ]


async def test_a_forged_hint_for_an_unknown_sku_reads_nothing(erp, hooks) -> None:
    """A delivery naming a SKU Tiny does not have yields no record (and no error)."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}]})

    assert await erp.read_hint(erp.stock_hint(delivery(sku="NOT-THERE", saldo=5))) == []


async def test_the_erp_webhook_route_surface_needs_no_signature_and_reads_the_api(erp, hooks, app) -> None:
    """parse_webhook (what POST /webhooks/erp calls) takes an unsigned delivery as SKUs and ids to
    read; event_stock reads them through the API, whatever saldo the delivery claimed."""
    await hooks.post(
        "/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}, {"sku": "CUP", "quantity": 2}]}
    )
    cup = handle(app).account.product_by_sku("CUP")

    events = [
        erp.parse_webhook({}, delivery(idProduto="1", sku="MUG-1", saldo=999)),
        erp.parse_webhook({"content-type": "application/json"}, delivery(idProduto=str(cup.id), saldo=0)),
    ]

    assert events[0].skus == ["MUG-1"] and events[0].dedupe_key is None
    assert events[1].skus == [] and events[1].refs == [str(cup.id)]
    assert sorted(await erp.event_stock(events), key=lambda r: r.sku) == [
        StockRecord("CUP", 2),
        StockRecord("MUG-1", 3),
    ]


def test_the_erp_webhook_surface_refuses_a_malformed_body(erp) -> None:
    """parse_webhook raises PayloadError (the route answers 400) for a body it cannot read."""
    with pytest.raises(PayloadError):
        erp.parse_webhook({}, b"{not json")


async def test_the_sandbox_delivers_tinys_unsigned_stock_webhook(clock) -> None:
    """With a webhook URL, a stock change in the sandbox reaches it with no signature header; the
    connector turns the delivery into a read of that SKU."""
    receiver = Receiver("/webhooks/erp")
    app = create_app(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        account=Account(clock),
        webhook_url="http://syncd.test/webhooks/erp",
        webhook_transport=httpx.ASGITransport(receiver.app()),
    )
    async with app.router.lifespan_context(app):
        handle(app).account.set_stock("MUG-1", 9)
        await app.state.webhooks.drain()
    tokens = MemoryTokenStore()
    await authorise(app, tokens, clock)
    erp = build(app, clock, tokens=tokens)

    [(headers, body)] = receiver.received
    event = erp.parse_webhook(headers, body)

    assert not any("signature" in name.lower() for name in headers)
    assert event.skus == ["MUG-1"]
    assert await erp.event_stock([event]) == [StockRecord("MUG-1", 9)]
    await erp.aclose()


async def test_forged_hints_for_made_up_skus_cost_no_calls(erp, hooks, app) -> None:
    """Once the SKU map is built, hints naming SKUs Tiny does not have spend no API calls."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}]})
    await erp.read_stock()
    before = handle(app).calls["total"]

    for n in range(20):
        assert await erp.event_stock([erp.parse_webhook({}, delivery(sku=f"FAKE-{n}", saldo=1))]) == []

    assert handle(app).calls["total"] == before


async def test_forged_hints_for_made_up_product_ids_cost_no_calls(erp, hooks, app) -> None:
    """Once the SKU map is built, hints naming product ids Tiny does not have spend no API calls."""
    await hooks.post("/_sandbox/seed", json={"items": [{"sku": "MUG-1", "quantity": 3}]})
    await erp.read_stock()
    before = handle(app).calls["total"]

    for n in range(20):
        assert (
            await erp.event_stock([erp.parse_webhook({}, delivery(idProduto=str(90_000 + n), saldo=1))]) == []
        )

    assert handle(app).calls["total"] == before
