"""Property: whatever answers are lost, whatever restarts and lost records happen in between, each
sale becomes at most one Bling order, its stock leaves once, and it is acknowledged once a try goes
through (sales orders mode, against the sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, Movement
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import create_app
from tests.connectors.bling.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, bling_settings, no_sleep

SALES = [Movement(f"shop:{n}:1", "MUG", -1, "sale", f"shop:{n}") for n in range(3)]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.lists(st.sampled_from(range(3)), min_size=1, max_size=3), st.lists(st.booleans(), max_size=6)),
        st.tuples(st.just("restart"), st.booleans(), st.just([])),  # True: the records are lost too
    ),
    max_size=8,
)  # fmt: skip


class Losing(httpx.AsyncBaseTransport):
    """Applies every request; loses the answer of the i-th write when ``losses[i]`` is true."""

    def __init__(self, inner: httpx.AsyncBaseTransport, losses: Iterator[bool]):
        self.inner, self.losses = inner, losses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path != "/oauth/token" and next(self.losses, False):
            await response.aread()
            raise httpx.ReadTimeout("lost", request=request)
        return response


async def scenario(plan: list[tuple[str, object, list[bool]]]) -> None:
    app = create_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, per_second=100_000)
    tokens, records = MemoryTokenStore(), MemoryErpRecordStore()
    acked: set[str] = set()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as hooks:
        await hooks.post("/_sandbox/stock", json={"sku": "MUG", "on_hand": 50})

        def connector(losses: list[bool]) -> BlingConnector:
            transport = Losing(httpx.ASGITransport(app=app), iter(losses))
            return BlingConnector(
                bling_settings(), transport=transport, tokens=tokens, records=records, sleep=no_sleep
            )

        first = connector([])
        await first.auth.exchange_code((await hooks.post("/_sandbox/oauth/code")).json()["code"])
        await first.aclose()
        for kind, arg, losses in [*plan, ("record", [0, 1, 2], [])]:
            if kind == "restart":
                if arg:
                    records = MemoryErpRecordStore()
                continue
            erp = connector(losses)
            try:
                acked |= set(await erp.record_movements([SALES[i] for i in arg]))  # type: ignore[union-attr]
            finally:
                await erp.aclose()
        orders = (await hooks.get("/_sandbox/orders")).json()
        stock = {row["sku"]: row["on_hand"] for row in (await hooks.get("/_sandbox/stock")).json()}
    numbers = [o["numeroLoja"] for o in orders]
    assert sorted(numbers) == sorted(set(numbers)), "a sale became two orders"
    assert all(o["posted_deposit"] is not None for o in orders)
    assert acked == {s.key for s in SALES}
    assert stock["MUG"] == 50 - len(SALES)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_each_sale_is_one_order_posted_once_whatever_is_lost(
    plan: list[tuple[str, object, list[bool]]],
) -> None:
    """Lost answers of any write, restarts and lost records never make a second order or a second exit."""
    asyncio.run(scenario(plan))
