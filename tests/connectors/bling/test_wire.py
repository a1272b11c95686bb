"""BlingConnector on the wire (httpx.MockTransport): throttling, the daily limit, the error envelope,
malformed and truncated answers, and what it sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, Movement, StockRecord, StoredToken
from connectors.bling.client import BlingConnector
from syncd.errors import AuthError, ConnectorError, ProtocolError, TransientError
from tests.connectors.bling.conftest import bling_settings, no_sleep

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 12:00 in Brasília: 12 h to Bling's new day
SALE = Movement(key="shop:1001:1", sku="MUG", delta=-1, reason="sale", reference="shop:1001")
PRODUCTS = {"data": [{"id": 11, "codigo": "MUG"}, {"id": 12, "codigo": "CAP"}]}
SALDOS = {
    "data": [
        {"produto": {"id": 11, "codigo": "MUG"}, "saldoFisicoTotal": 9, "saldoVirtualTotal": 7,
         "depositos": [{"id": 1, "saldoFisico": 5, "saldoVirtual": 3}, {"id": 2, "saldoFisico": 4, "saldoVirtual": 4}]},
        {"produto": {"id": 12, "codigo": "CAP"}, "saldoFisicoTotal": 2, "saldoVirtualTotal": 2,
         "depositos": [{"id": 1, "saldoFisico": 2, "saldoVirtual": 2}]},
    ]
}  # fmt: skip

Answer = Callable[[httpx.Request], httpx.Response]


def envelope(status: int, kind: str, message: str = "m", **extra: Any) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"type": kind, "message": message, "description": "d", **extra}}
    )


def catalogue(request: httpx.Request) -> httpx.Response | None:
    """Default answers for the read endpoints, None for others."""
    if request.url.path == "/produtos":
        return httpx.Response(200, json=PRODUCTS if request.url.params.get("pagina") == "1" else {"data": []})
    if request.url.path == "/estoques/saldos":
        return httpx.Response(200, json=SALDOS)
    if request.url.path == "/depositos":
        return httpx.Response(
            200, json={"data": [{"id": 1, "descricao": "Geral"}, {"id": 2, "descricao": "Loja"}]}
        )
    return None


@pytest.fixture
async def wired() -> AsyncIterator[Callable[..., BlingConnector]]:
    """Connectors with a valid saved token whose every request is answered by a given function."""
    made: list[BlingConnector] = []

    def build(answer: Answer, **overrides: Any) -> BlingConnector:
        tokens = MemoryTokenStore()
        tokens.save_token("bling:erp", StoredToken("acc-1", "ref-1", NOW + timedelta(hours=6)))
        connector = BlingConnector(
            bling_settings(**overrides),
            transport=httpx.MockTransport(answer),
            tokens=tokens,
            records=MemoryErpRecordStore(),
            sleep=no_sleep,
            now=lambda: NOW,
        )
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.aclose()


async def test_reads_send_bearer_jwt_paging_and_id_batches(wired) -> None:
    """Products are paged by 100 with pagina/limite, balances asked by idsProdutos[], with Bearer and enable-jwt."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return catalogue(request) or httpx.Response(404)

    records = await wired(answer).read_stock()

    assert sorted(records, key=lambda r: r.sku) == [StockRecord("CAP", 2), StockRecord("MUG", 7)]
    first, saldos = seen
    assert first.url.params["pagina"] == "1" and first.url.params["limite"] == "100"
    assert saldos.url.params.get_list("idsProdutos[]") == ["11", "12"]
    assert all(r.headers["authorization"] == "Bearer acc-1" and r.headers["enable-jwt"] == "1" for r in seen)


async def test_on_hand_sums_the_configured_deposits_virtual_balances(wired) -> None:
    """With deposits configured, on-hand is the sum of their saldoVirtual, not the account total."""
    records = await wired(lambda r: catalogue(r) or httpx.Response(404), deposits=[1]).read_stock()
    assert {r.sku: r.on_hand for r in records} == {"MUG": 3, "CAP": 2}


async def test_per_second_throttling_is_retried_after_a_second(wired) -> None:
    """A 429 TOO_MANY_REQUESTS per second is retried (waiting about a second) and the read succeeds."""
    answers = iter([envelope(429, "TOO_MANY_REQUESTS", limit=3, period="second")])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/produtos" and request.url.params.get("pagina") == "1":
            return next(answers, None) or catalogue(request)  # type: ignore[return-value]
        return catalogue(request) or httpx.Response(404)

    records = await wired(answer).read_stock()
    assert {r.sku for r in records} == {"MUG", "CAP"}


async def test_per_day_limit_stops_calls_until_blings_new_day(wired) -> None:
    """A 429 per day is not retried; it waits until midnight in Brasília and later calls are not even sent."""
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return envelope(429, "TOO_MANY_REQUESTS", limit=120000, period="day")

    erp = wired(answer)
    with pytest.raises(TransientError) as caught:
        await erp.read_stock()
    assert caught.value.retry_after == pytest.approx(12 * 3600)
    with pytest.raises(TransientError):
        await erp.record_movements([SALE])
    assert calls == ["/produtos"]
    assert erp.budget_status()["used_today"] == erp.budget_status()["daily_budget"]


async def test_reads_stop_at_their_share_and_sales_keep_the_reserve(wired) -> None:
    """Once reads spent their part of the day's budget they are refused locally; sales still go out."""
    posted: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(request.url.path)
            return httpx.Response(201, json={"data": {"id": 900}})
        return catalogue(request) or httpx.Response(404)

    erp = wired(
        answer,
        account_requests_per_day=10,
        budget_share=1.0,
        movement_reserve=0.5,
        record_as="movement",
        deposits=[1],
    )
    await erp.read_stock()
    await erp.read_stock()  # 5 calls (deposits checked once): the reads' share, half of 10
    with pytest.raises(TransientError, match="stock reads"):
        await erp.read_stock()
    assert await erp.record_movements([SALE]) == ["shop:1001:1"]
    assert posted == ["/estoques"]
    assert erp.budget_status()["used_today"] == 6


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [{"id": 11, "codigo": "MU', "not JSON"),
        (b"", "not JSON"),
        (b'{"data": {"id": 11}}', "without a 'data' list"),
        (b'["data"]', "expected dict"),
    ],
)
async def test_malformed_or_truncated_product_pages_are_protocol_errors(
    wired, body: bytes, expected: str
) -> None:
    """A truncated or wrongly shaped GET /produtos answer is a ProtocolError naming the endpoint."""
    erp = wired(lambda r: httpx.Response(200, content=body))
    with pytest.raises(ProtocolError, match=expected) as caught:
        await erp.read_stock()
    assert "/produtos" in str(caught.value)


async def test_an_unusable_balance_fails_that_sku_only(wired) -> None:
    """A fractional or non-numeric balance leaves that SKU out (logged); the others are read."""
    saldos = {"data": [
        {"produto": {"id": 11}, "saldoVirtualTotal": 2.5},
        {"produto": {"id": 12}, "saldoVirtualTotal": "lots"},
        {"produto": {"id": 13}, "saldoVirtualTotal": 4.0},
    ]}  # fmt: skip
    products = {"data": [{"id": 11, "codigo": "A"}, {"id": 12, "codigo": "B"}, {"id": 13, "codigo": "C"}]}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/produtos":
            return httpx.Response(200, json=products if request.url.params["pagina"] == "1" else {"data": []})
        return httpx.Response(200, json=saldos)

    with capture_logs() as logs:
        records = await wired(answer).read_stock()
    assert records == [StockRecord("C", 4)]
    assert {e["event"] for e in logs} >= {"bling.fractional_balance", "bling.balance_skipped"}


async def test_a_product_bling_leaves_out_of_the_balances_holds_zero(wired) -> None:
    """A product asked for but absent from GET /estoques/saldos (no stock entry) reads as 0."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/estoques/saldos":
            return httpx.Response(200, json={"data": [SALDOS["data"][0]]})
        return catalogue(request) or httpx.Response(404)

    assert {r.sku: r.on_hand for r in await wired(answer).read_stock()} == {"MUG": 7, "CAP": 0}


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (envelope(403, "FORBIDDEN", "Sem permissão"), AuthError, "scope"),
        (
            envelope(400, "VALIDATION_ERROR", "Parâmetro inválido"),
            ConnectorError,
            "VALIDATION_ERROR: Parâmetro inválido",
        ),
        (envelope(500, "SERVER_ERROR", "Erro interno"), TransientError, "500"),
        (httpx.Response(502, content=b"<html>bad gateway</html>"), TransientError, "502"),
    ],
)
async def test_error_envelope_maps_onto_the_error_tree(
    wired, response: httpx.Response, error: type, text: str
) -> None:
    """Bling's error envelope becomes AuthError, ConnectorError or TransientError, with its message."""
    with pytest.raises(error, match=text):
        await wired(lambda r: response).read_stock()


async def test_a_refused_sale_is_left_out_with_blings_reason(wired) -> None:
    """A VALIDATION_ERROR on POST /estoques leaves that sale unacknowledged and logs Bling's field message."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return envelope(
                400, "VALIDATION_ERROR", "Estoque insuficiente", fields=[{"code": 1, "msg": "só 0"}]
            )
        return catalogue(request) or httpx.Response(404)

    with capture_logs() as logs:
        acked = await wired(answer, record_as="movement", deposits=[1]).record_movements([SALE])
    assert acked == []
    rejected = [e for e in logs if e["event"] == "erp.movement_rejected"]
    assert rejected and "Estoque insuficiente" in rejected[0]["reason"] and rejected[0]["sku"] == "MUG"


async def test_movement_body_follows_blings_schema(wired) -> None:
    """POST /estoques carries produto.id, deposito.id, operacao S, the units, and the key in observacoes."""
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
            return httpx.Response(201, json={"data": {"id": 900}})
        return catalogue(request) or httpx.Response(404)

    await wired(answer, record_as="movement", deposits=[2]).record_movements([SALE])
    assert bodies == [
        {
            "produto": {"id": 11},
            "deposito": {"id": 2},
            "operacao": "S",
            "quantidade": 1,
            "observacoes": "syncd shop:1001:1",
        }
    ]


async def test_a_lost_movement_answer_is_never_posted_again(wired) -> None:
    """A POST /estoques that times out stays unconfirmed: not acknowledged, not sent a second time, logged."""
    posts = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        if request.method == "POST":
            posts += 1
            raise httpx.ReadTimeout("no answer", request=request)
        return catalogue(request) or httpx.Response(404)

    erp = wired(answer, record_as="movement", deposits=[1])
    with capture_logs() as logs:
        assert await erp.record_movements([SALE]) == []
        assert await erp.record_movements([SALE]) == []
    assert posts == 1
    assert any(e["event"] == "bling.movement_unconfirmed" for e in logs)


async def test_a_throttled_movement_is_sent_again(wired) -> None:
    """A POST /estoques answered 429 was not applied: the next try posts it."""
    answers = iter([envelope(429, "TOO_MANY_REQUESTS", limit=3, period="second")])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return next(answers, None) or httpx.Response(201, json={"data": {"id": 901}})
        return catalogue(request) or httpx.Response(404)

    erp = wired(answer, record_as="movement", deposits=[1])
    with pytest.raises(TransientError):
        await erp.record_movements([SALE])
    assert await erp.record_movements([SALE]) == ["shop:1001:1"]
