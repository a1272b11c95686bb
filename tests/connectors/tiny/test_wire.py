"""Tiny on the wire: throttling, lost answers to writes, error envelopes, malformed and truncated
bodies. The sandbox answers; a relay (httpx.MockTransport) cuts, replaces or times out its answers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.base import MemoryTokenStore, Movement, StockRecord
from connectors.tiny.sandbox import create_app
from connectors.tiny.sandbox_account import Account
from syncd.errors import AuthError, ProtocolError, TransientError
from tests.connectors.tiny.conftest import Connect
from tests.connectors.tiny.support import CLIENT_ID, CLIENT_SECRET, FakeTime, authorise, build, handle, relay

SALE = Movement("shop:501:1", "A", -2, "sale", "shop:501")


async def seed(hooks: httpx.AsyncClient, **items: int) -> None:
    body = {"items": [{"sku": s, "quantity": q} for s, q in items.items()]}
    assert (await hooks.post("/_sandbox/seed", json=body)).status_code == 201


def orders_for(app, number: str) -> list[int]:
    return [o.id for o in handle(app).account.orders.values() if o.ecommerce_number == number]


async def test_a_time_out_after_the_order_was_created_does_not_create_a_second(
    connect: Connect, app, hooks
) -> None:
    """The first POST /pedidos lands but its answer is lost; the retry looks first and finds it."""
    await seed(hooks, A=10)
    lost: list[str] = []

    async def handler(request, forward):
        response = await forward(request)
        if request.method == "POST" and request.url.path.endswith("/pedidos") and not lost:
            lost.append(request.url.path)
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    erp = connect(transport=relay(app, handler))

    assert await erp.record_movements([SALE]) == ["shop:501:1"]
    assert lost and len(orders_for(app, "shop:501:1")) == 1
    assert (await hooks.get("/_sandbox/stock")).json()[0]["on_hand"] == 8


async def test_a_crash_after_a_lost_answer_does_not_post_twice_after_restart(
    connect: Connect, app, hooks, records
) -> None:
    """The link dies as the order is created (answer lost, then every call times out); the record
    stays 'sending' and a later run finds the one order instead of posting again."""
    await seed(hooks, A=10)
    down: list[bool] = []

    async def handler(request, forward):
        if down:
            raise httpx.ConnectTimeout("link down", request=request)
        response = await forward(request)
        if request.method == "POST":
            down.append(True)
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    with pytest.raises(TransientError):
        await connect(transport=relay(app, handler)).record_movements([SALE])
    assert records.load_erp_record("erp", SALE.key).state == "sending"

    assert await connect().record_movements([SALE]) == [SALE.key]
    assert len(orders_for(app, SALE.key)) == 1
    assert records.load_erp_record("erp", SALE.key).state == "posted"


async def test_the_sandbox_fault_write_applied_answer_lost_leaves_one_order(
    connect: Connect, app, hooks
) -> None:
    """With every write's answer replaced by a 504 after it applied, a sale still makes one order."""
    await seed(hooks, A=10)
    await hooks.post("/_sandbox/faults", json={"timeout_after_write_rate": 1.0})

    assert await connect().record_movements([SALE]) == [SALE.key]
    assert len(orders_for(app, SALE.key)) == 1


async def test_a_truncated_answer_to_a_created_order_is_looked_up_not_resent(
    connect: Connect, app, hooks
) -> None:
    """A cut-off body after POST /pedidos is not trusted, and the order is not sent again."""
    await seed(hooks, A=10)

    async def handler(request, forward):
        response = await forward(request)
        if request.method == "POST":
            return httpx.Response(200, content=response.content[:9])
        return response

    assert await connect(transport=relay(app, handler)).record_movements([SALE]) == [SALE.key]
    assert len(orders_for(app, SALE.key)) == 1


async def test_throttling_waits_out_the_minute_and_goes_on(clock: FakeTime) -> None:
    """At the account's minute limit Tiny answers 429; the connector waits until the window resets
    (X-RateLimit-Reset) and every product is still read."""
    app = create_app(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, requests_per_minute=5, account=Account(clock=clock)
    )
    for n in range(8):
        handle(app).account.set_stock(f"P{n}", n)
    tokens = MemoryTokenStore()
    await authorise(app, tokens, clock)
    erp = build(app, clock, tokens=tokens, retry_attempts=5)
    start = clock.now

    records = await erp.read_stock()

    assert sorted(records, key=lambda r: r.sku) == [StockRecord(f"P{n}", n) for n in range(8)]
    assert handle(app).calls["throttled"] >= 1
    # Nine calls at five a minute: at least one minute boundary was waited for, not hammered.
    assert clock.now - start >= 60 - (start % 60)
    assert handle(app).calls["throttled"] <= 3
    await erp.aclose()


async def test_a_sale_goes_before_reads_queued_on_the_budget(connect: Connect, app, hooks) -> None:
    """Sales share the minute with reads but go first: a sale handed over while a full read waits
    on the budget is sent ahead of the reads already queued."""
    await seed(hooks, **{f"P{n:02d}": 5 for n in range(40)}, A=10)
    served: list[str] = []

    async def log(request, forward):
        served.append(f"{request.method} {request.url.path.rsplit('/v3', 1)[-1]}")
        return await forward(request)

    erp = connect(transport=relay(app, log), requests_per_minute=12, burst=2)
    read = asyncio.create_task(erp.read_stock())
    while len(served) < 6:  # noqa: ASYNC110 - the read under way, more of its calls queued on the budget
        await asyncio.sleep(0)
    handed_over = len(served)

    assert await erp.record_movements([SALE]) == [SALE.key]
    await read

    look_up = served.index("GET /pedidos")
    assert look_up - handed_over <= 1  # at most the read call already on its way went first
    assert served[look_up + 1] == "POST /pedidos"  # no queued read between the look-up and the order


async def test_a_refused_order_is_left_out_with_tinys_reason(connect: Connect, app, hooks) -> None:
    """A 400 with Tiny's envelope refuses that sale only, logged with the remote message."""
    await seed(hooks, A=10, B=10)

    async def handler(request, forward):
        if request.method == "POST" and b'"shop:1:1"' in request.content:
            body = {
                "mensagem": "Erro de validação",
                "detalhes": [{"campo": "itens", "mensagem": "Produto inativo"}],
            }
            return httpx.Response(400, json=body)
        return await forward(request)

    erp = connect(transport=relay(app, handler))
    with capture_logs() as logs:
        acked = await erp.record_movements(
            [Movement("shop:1:1", "A", -1, "sale", "shop:1"), Movement("shop:2:1", "B", -1, "sale", "shop:2")]
        )

    assert acked == ["shop:2:1"]
    refused = [e for e in logs if e["event"] == "erp.movement_rejected"]
    assert refused[0]["sku"] == "A" and "itens: Produto inativo" in refused[0]["reason"]


async def test_one_unreadable_product_does_not_stop_the_others(connect: Connect, app, hooks) -> None:
    """A product whose stock Tiny cannot give (404) is left out; the rest are read."""
    await seed(hooks, A=1, B=2, C=3)
    broken = handle(app).account.product_by_sku("B").id

    async def handler(request, forward):
        if request.url.path.endswith(f"/estoque/{broken}"):
            return httpx.Response(404, json={"mensagem": "Produto não encontrado."})
        return await forward(request)

    records = await connect(transport=relay(app, handler)).read_stock()

    assert sorted(records, key=lambda r: r.sku) == [StockRecord("A", 1), StockRecord("C", 3)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": 10, "codigo": "A", "saldo": 3, "reser', "not JSON"),
        (b"<html>Bad gateway</html>", "not JSON"),
        (b"[1, 2]", "expected an object"),
        (
            b'{"id": 10, "codigo": "A", "saldo": "muitos", "reservado": 0, "disponivel": 1, "depositos": []}',
            "saldo",
        ),
        (b'{"id": 10, "codigo": "A", "saldo": 1, "reservado": 0, "disponivel": 1}', "without 'depositos'"),
        (
            b'{"id": 77, "codigo": "A", "saldo": 1, "reservado": 0, "disponivel": 1, "depositos": []}',
            "product 77",
        ),
        (
            b'{"id": 10, "codigo": "A", "saldo": 1e12, "reservado": 0, "disponivel": 1e12, "depositos": []}',
            "from 0 to",
        ),
    ],
)
async def test_a_malformed_or_implausible_balance_is_quarantined(
    connect: Connect, app, hooks, body, expected
) -> None:
    """One product's balance that cannot be believed (cut short, not JSON, wrong types, another
    product's, absurd) is quarantined with the reason; the other products are read all the same."""
    await seed(hooks, A=1, B=2)
    broken = handle(app).account.product_by_sku("A").id

    async def handler(request, forward):
        if request.url.path.endswith(f"/estoque/{broken}"):
            return httpx.Response(200, content=body.replace(b'"id": 10', f'"id": {broken}'.encode()))
        return await forward(request)

    page = await connect(transport=relay(app, handler)).stock_changes(None)

    assert page.records == [StockRecord("B", 2)]
    [item] = page.quarantined
    assert (item.kind, item.ref) == ("stock", "A") and expected in item.reason


async def test_a_malformed_product_page_is_a_protocol_error(connect: Connect, app, hooks) -> None:
    """A products page that cannot be read stops the read with ProtocolError naming it: nothing
    is inferred from half a catalogue."""
    await seed(hooks, A=1)

    async def handler(request, forward):
        if request.url.path.endswith("/produtos"):
            return httpx.Response(200, content=b'{"itens": [{"id": 5, "sku": "A"}], "paginacao": {"tot')
        return await forward(request)

    with pytest.raises(ProtocolError, match="GET /public-api/v3/produtos answered a body that is not JSON"):
        await connect(transport=relay(app, handler)).read_stock()


async def test_the_sandbox_truncation_fault_is_a_protocol_error(connect: Connect, hooks) -> None:
    """With every 200 body cut in half, a read fails as malformed, never as made-up stock."""
    await seed(hooks, A=1)
    await hooks.post("/_sandbox/faults", json={"truncate_rate": 1.0})

    with pytest.raises(ProtocolError, match="truncated or malformed"):
        await connect().read_stock()


async def test_server_errors_are_retried_then_transient(connect: Connect, app, hooks) -> None:
    """5xx answers are retried; when they persist the call fails as transient."""
    await seed(hooks, A=1)
    seen: list[str] = []

    async def handler(request, forward):
        seen.append(request.url.path)
        return httpx.Response(503, json={"mensagem": "Serviço indisponível"})

    with pytest.raises(TransientError, match="503"):
        await connect(transport=relay(app, handler)).read_stock()
    assert len(seen) == 3


async def test_a_module_without_permission_needs_a_human(connect: Connect, app, hooks) -> None:
    """403 (the app lacks the module's permission) is an AuthError that says what to grant."""

    async def handler(request, forward):
        return httpx.Response(403, json={"mensagem": "Acesso negado"})

    with pytest.raises(AuthError, match="permission"):
        await connect(transport=relay(app, handler)).read_stock()


async def test_the_lookup_ignores_orders_with_a_similar_number(connect: Connect, app, hooks) -> None:
    """Only an exact numeroPedidoEcommerce match counts as the sale already recorded."""
    await seed(hooks, A=10)

    async def handler(request, forward):
        response = await forward(request)
        if request.method == "GET" and request.url.path.endswith("/pedidos"):
            body = json.loads(response.content)
            body["itens"].append(
                {"id": 99999, "situacao": 0, "ecommerce": {"numeroPedidoEcommerce": "shop:501:10"}}
            )
            body["paginacao"]["total"] += 1
            return httpx.Response(200, json=body)
        return response

    assert await connect(transport=relay(app, handler)).record_movements([SALE]) == [SALE.key]
    assert len(orders_for(app, SALE.key)) == 1


async def test_a_refused_sale_is_recorded_failed_and_sent_again_later(
    connect: Connect, app, hooks, records
) -> None:
    """A sale Tiny refused (400) leaves a 'failed' record; once Tiny accepts, it is sent and posted."""
    await seed(hooks, A=10)
    refuse = [True]

    async def handler(request, forward):
        if request.method == "POST" and refuse[0]:
            return httpx.Response(400, json={"mensagem": "Erro de validação"})
        return await forward(request)

    erp = connect(transport=relay(app, handler))
    assert await erp.record_movements([SALE]) == []
    assert records.load_erp_record("erp", SALE.key).state == "failed"

    refuse[0] = False
    assert await erp.record_movements([SALE]) == [SALE.key]
    assert records.load_erp_record("erp", SALE.key).state == "posted"
    assert len(orders_for(app, SALE.key)) == 1
