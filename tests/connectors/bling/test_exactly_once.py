"""Sales recorded in the Bling sandbox exactly once, through lost answers, refusals and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, Movement
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import BlingSandbox
from tests.connectors.bling.conftest import Connect, authorise, bling_settings, no_sleep

SALE = Movement(key="tiktok:5001:1", sku="MUG", delta=-2, reason="sale", reference="tiktok:5001")
CANCEL = Movement(
    key="tiktok:5001:1:cancel", sku="MUG", delta=2, reason="cancellation", reference="tiktok:5001"
)


@pytest.fixture
async def stocked(hooks: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await hooks.post(
        "/_sandbox/stock", json=[{"sku": "MUG", "on_hand": 10}, {"sku": "CAP", "on_hand": 1}]
    )
    assert response.status_code == 200
    return hooks


async def stock(hooks: httpx.AsyncClient) -> dict[str, int]:
    return {row["sku"]: row["on_hand"] for row in (await hooks.get("/_sandbox/stock")).json()}


async def orders(hooks: httpx.AsyncClient) -> list[dict[str, object]]:
    return list((await hooks.get("/_sandbox/orders")).json())


class TimeOutAfter(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox; the first matching one is applied there and its answer lost."""

    def __init__(self, inner: httpx.AsyncBaseTransport, lose: Callable[[httpx.Request], bool]):
        self.inner, self.lose, self.lost = inner, lose, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.lost and self.lose(request):
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("answer lost after the write", request=request)
        return response


def lossy(
    app, tokens, records, lose: Callable[[httpx.Request], bool], **overrides
) -> tuple[BlingConnector, TimeOutAfter]:
    transport = TimeOutAfter(httpx.ASGITransport(app=app), lose)
    erp = BlingConnector(
        bling_settings(**overrides), transport=transport, tokens=tokens, records=records, sleep=no_sleep
    )
    return erp, transport


async def test_order_create_timed_out_after_it_landed_is_found_not_posted_twice(
    app,
    hooks: httpx.AsyncClient,
    stocked,
    tokens: MemoryTokenStore,
    records: MemoryErpRecordStore,
    connect: Connect,
) -> None:
    """POST /pedidos/vendas applied but its answer lost: the retry finds the order by numeroLoja and posts its stock once."""
    await authorise(connect(), hooks)
    erp, transport = lossy(
        app, tokens, records, lambda r: r.method == "POST" and r.url.path == "/pedidos/vendas"
    )
    try:
        assert await erp.record_movements([SALE]) == []
        assert transport.lost == 1
        assert await erp.record_movements([SALE]) == ["tiktok:5001:1"]
    finally:
        await erp.aclose()
    made = await orders(hooks)
    assert len(made) == 1 and made[0]["numeroLoja"] == "tiktok:5001:1"
    assert (await stock(hooks))["MUG"] == 8
    assert records.load_erp_record("erp", SALE.key).state == "posted"  # type: ignore[union-attr]


async def test_stock_post_timed_out_after_it_landed_is_not_posted_twice(
    app, hooks: httpx.AsyncClient, stocked, tokens, records, connect: Connect
) -> None:
    """lancar-estoque applied but its answer lost: asking again posts nothing more."""
    await authorise(connect(), hooks)
    erp, _ = lossy(app, tokens, records, lambda r: "lancar-estoque" in r.url.path)
    try:
        assert await erp.record_movements([SALE]) == []
        assert await erp.record_movements([SALE]) == ["tiktok:5001:1"]
    finally:
        await erp.aclose()
    assert (await stock(hooks))["MUG"] == 8 and len(await orders(hooks)) == 1


async def test_a_restart_with_a_record_left_sending_looks_before_posting(
    bling: BlingConnector, connect: Connect, hooks: httpx.AsyncClient, stocked, sandbox: BlingSandbox
) -> None:
    """The sandbox's own time-out fault after a create, then a new connector on the same records: one order."""
    await hooks.post("/_sandbox/faults", json={"timeout_after_write_rate": 1.0})
    assert await bling.record_movements([SALE]) == []
    await hooks.post("/_sandbox/faults", json={"timeout_after_write_rate": 0.0})

    restarted = connect()
    assert await restarted.record_movements([SALE]) == ["tiktok:5001:1"]
    assert len(await orders(hooks)) == 1 and (await stock(hooks))["MUG"] == 8


async def test_an_order_already_in_bling_is_not_created_again(
    app, tokens: MemoryTokenStore, hooks: httpx.AsyncClient, stocked, bling: BlingConnector
) -> None:
    """With no record kept (another replica, a restored ledger), the look-up finds Bling's order first."""
    assert await bling.record_movements([SALE]) == ["tiktok:5001:1"]
    other = BlingConnector(
        bling_settings(),
        transport=httpx.ASGITransport(app=app),
        tokens=tokens,
        records=MemoryErpRecordStore(),
        sleep=no_sleep,
    )
    try:
        assert await other.record_movements([SALE]) == ["tiktok:5001:1"]
    finally:
        await other.aclose()
    assert len(await orders(hooks)) == 1 and (await stock(hooks))["MUG"] == 8


async def test_a_cancelled_sale_is_reversed_once_even_when_the_answer_is_lost(
    app, hooks: httpx.AsyncClient, stocked, tokens, records, connect: Connect
) -> None:
    """estornar-estoque applied but its answer lost: the retry sees nothing posted and acknowledges; units back once."""
    await authorise(connect(), hooks)
    erp, transport = lossy(app, tokens, records, lambda r: "estornar-estoque" in r.url.path)
    try:
        assert await erp.record_movements([SALE]) == ["tiktok:5001:1"]
        assert await erp.record_movements([CANCEL]) == []
        assert await erp.record_movements([CANCEL]) == ["tiktok:5001:1:cancel"]
        assert await erp.record_movements([CANCEL]) == ["tiktok:5001:1:cancel"]
    finally:
        await erp.aclose()
    assert transport.lost == 1 and (await stock(hooks))["MUG"] == 10


async def test_a_sale_beyond_the_stock_is_refused_and_posted_once_stock_arrives(
    bling: BlingConnector, hooks: httpx.AsyncClient, stocked
) -> None:
    """Bling refuses to post more than it holds: unacknowledged; after a restock the same order is posted, not a new one."""
    big = Movement(key="shop:77:1", sku="CAP", delta=-3, reason="sale", reference="shop:77")
    assert await bling.record_movements([big]) == []
    await hooks.post("/_sandbox/stock", json={"sku": "CAP", "on_hand": 5})
    assert await bling.record_movements([big]) == ["shop:77:1"]
    assert len(await orders(hooks)) == 1 and (await stock(hooks))["CAP"] == 2


async def test_orders_in_bling_reserve_stock_so_on_hand_is_the_virtual_balance(
    bling: BlingConnector, hooks: httpx.AsyncClient, stocked
) -> None:
    """A marketplace order placed in Bling itself lowers the on-hand syncd reads before its stock is posted."""
    placed = await hooks.post("/_sandbox/orders", json={"sku": "MUG", "quantity": 4})
    assert placed.status_code == 201
    assert {r.sku: r.on_hand for r in await bling.read_stock()}["MUG"] == 6


async def test_two_batches_with_one_key_at_once_make_one_order(
    bling: BlingConnector, hooks: httpx.AsyncClient, stocked
) -> None:
    """An order poll and an ERP poll recording the same sale at the same moment create one Bling order."""
    await hooks.post("/_sandbox/faults", json={"latency_ms": 5})  # so that the batches interleave
    results = await asyncio.gather(*(bling.record_movements([SALE]) for _ in range(3)))
    assert all(r == ["tiktok:5001:1"] for r in results)
    assert len(await orders(hooks)) == 1 and (await stock(hooks))["MUG"] == 8


async def test_a_batch_of_sales_is_looked_up_in_one_call(
    bling: BlingConnector, hooks: httpx.AsyncClient, stocked, sandbox: BlingSandbox
) -> None:
    """Five sales in one batch cost one look-up, then a create and a post each."""
    sales = [Movement(f"shop:90{i}:1", "MUG", -1, "sale", f"shop:90{i}") for i in range(5)]
    before = {k: sandbox.calls[k] for k in ("GET /pedidos/vendas", "POST /pedidos/vendas")}
    assert await bling.record_movements(sales) == [m.key for m in sales]
    assert sandbox.calls["GET /pedidos/vendas"] - before["GET /pedidos/vendas"] == 1
    assert sandbox.calls["POST /pedidos/vendas"] - before["POST /pedidos/vendas"] == 5
    assert (await stock(hooks))["MUG"] == 5
