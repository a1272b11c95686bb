"""Property: whatever answers are lost, and whether the process restarts with or without its
records, each sale ends as exactly one Tiny order, and on-hand is what the sales left."""

from __future__ import annotations

import asyncio
import random

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, Movement
from connectors.tiny.client import TinyConnector
from connectors.tiny.sandbox import create_app
from connectors.tiny.sandbox_account import Account
from connectors.tiny.wire import CANCELLED
from syncd.errors import ConnectorError
from tests.connectors.tiny.support import CLIENT_ID, CLIENT_SECRET, FakeTime, authorise, build, handle, relay

SKUS = ("A", "B")
START = 50

# What the wire does to one request: pass it, lose it before Tiny sees it, lose Tiny's answer
# after the write applied, answer 503 without applying, or cut the answer short.
FATES = ("pass", "pass", "pass", "drop_before", "drop_after", "unavailable", "truncate")

steps = st.lists(
    st.tuples(
        st.sampled_from(("sell", "cancel", "restart", "restart_without_records")),
        st.integers(min_value=0, max_value=4),  # which order
        st.integers(min_value=0, max_value=10_000),  # seed of the wire's fates for this step
    ),
    min_size=1,
    max_size=12,
)


def movement(kind: str, order: int) -> Movement:
    sku, units = SKUS[order % 2], 1 + order % 3
    key = f"shop:{order}:1"
    if kind == "sell":
        return Movement(key, sku, -units, "sale", f"shop:{order}")
    return Movement(f"{key}:cancel", sku, units, "cancellation", f"shop:{order}")


async def scenario(plan: list[tuple[str, int, int]]) -> None:
    clock = FakeTime()
    app = create_app(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, requests_per_minute=100_000, account=Account(clock)
    )
    for sku in SKUS:
        handle(app).account.set_stock(sku, START)
    tokens = MemoryTokenStore()
    await authorise(app, tokens, clock)
    fates = random.Random(0)

    async def wire(request: httpx.Request, forward):  # type: ignore[no-untyped-def]
        fate = fates.choice(FATES)
        if fate == "drop_before":
            raise httpx.ConnectError("lost on the way", request=request)
        if fate == "unavailable":
            return httpx.Response(503, json={"mensagem": "Serviço indisponível"})
        response = await forward(request)
        if fate == "drop_after":
            raise httpx.ReadTimeout("answer lost", request=request)
        if fate == "truncate" and response.content:
            return httpx.Response(
                response.status_code, content=response.content[: len(response.content) // 2]
            )
        return response

    records = MemoryErpRecordStore()
    erp: TinyConnector = build(
        app, clock, tokens=tokens, records=records, transport=relay(app, wire), retry_attempts=2
    )
    sold: set[int] = set()  # orders the engine has offered as sales (until acknowledged it retries)
    cancelled: set[int] = set()
    pending: list[Movement] = []
    for kind, order, seed in plan:
        fates.seed(seed)
        if kind.startswith("restart"):
            await erp.aclose()
            if kind == "restart_without_records":
                records = MemoryErpRecordStore()
            erp = build(
                app, clock, tokens=tokens, records=records, transport=relay(app, wire), retry_attempts=2
            )
            continue
        if kind == "cancel" and order not in sold:
            continue  # the engine only cancels a sale it has recorded
        (sold if kind == "sell" else cancelled).add(order)
        pending.append(movement(kind, order))
        try:
            acknowledged = set(await erp.record_movements(pending))
        except ConnectorError:
            continue  # the engine keeps the movements and offers them again later
        pending = [m for m in pending if m.key not in acknowledged]
    await erp.aclose()

    # The wire heals; the engine offers what is still unacknowledged once more.
    clean = build(app, clock, tokens=tokens, records=records)
    assert set(await clean.record_movements(pending)) == {m.key for m in pending}
    await clean.aclose()

    account = handle(app).account
    for order in sold:
        mine = [o for o in account.orders.values() if o.ecommerce_number == f"shop:{order}:1"]
        assert len(mine) == 1, f"order {order}: {len(mine)} Tiny orders"
        assert (mine[0].situacao == CANCELLED) == (order in cancelled)
    for sku in SKUS:
        taken = sum(1 + o % 3 for o in sold - cancelled if SKUS[o % 2] == sku)
        assert account.available(sku) == START - taken


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_every_sale_ends_as_exactly_one_order(plan: list[tuple[str, int, int]]) -> None:
    """Lost requests, lost answers after the write, 503s, truncated bodies and restarts (with or
    without syncd's records) never make a second order or lose one."""
    asyncio.run(scenario(plan))
