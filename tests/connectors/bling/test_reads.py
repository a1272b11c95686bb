"""Bling reads against the sandbox: the poll's turn through the catalogue, webhook-named products,
edited products, SKUs asked by code, and calls counted against the day's budget."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import BlingSandbox
from connectors.bling.webhooks import sign
from syncd.errors import ConnectorError
from tests.connectors.bling.conftest import CLIENT_SECRET, authorise

CATALOGUE = {f"RD-{n:03d}": n % 7 for n in range(250)}


@pytest.fixture
async def seeded(hooks: httpx.AsyncClient, sandbox: BlingSandbox) -> httpx.AsyncClient:
    """The catalogue, created in Bling an hour ago (older than the poll's overlap)."""
    clock = sandbox.account.now
    sandbox.account.now = lambda: clock() - timedelta(hours=1)
    rows = [{"sku": sku, "on_hand": units} for sku, units in CATALOGUE.items()]
    assert (await hooks.post("/_sandbox/stock", json=rows)).status_code == 200
    sandbox.account.now = clock
    return hooks


async def test_a_silent_change_is_read_within_a_turn_through_the_catalogue(
    bling: BlingConnector, seeded
) -> None:
    """A balance changed without any webhook shows up within catalogue/100 polls (here 3)."""
    page = await bling.stock_changes(None)
    await seeded.post("/_sandbox/stock", json={"sku": "RD-230", "on_hand": 99})
    found = []
    for _ in range(3):
        page = await bling.stock_changes(page.cursor)
        found += [r.on_hand for r in page.records if r.sku == "RD-230"]
    assert found == [99]


async def test_a_product_a_webhook_named_is_read_at_the_next_poll(
    bling: BlingConnector, seeded, sandbox: BlingSandbox
) -> None:
    """A verified stock webhook makes the next poll read that product, whatever its turn."""
    page = await bling.stock_changes(None)
    await seeded.post("/_sandbox/stock", json={"sku": "RD-240", "on_hand": 42})
    pid = next(row["id"] for row in (await seeded.get("/_sandbox/stock")).json() if row["sku"] == "RD-240")
    body = (
        f'{{"eventId":"e-1","date":"2026-12-01T10:00:00-03:00","version":"v1","event":"stock.updated",'
        f'"companyId":"c","data":{{"produto":{{"id":{pid}}},"deposito":{{"id":1}}}}}}'
    ).encode()
    assert bling.parse_webhook({"X-Bling-Signature-256": sign(CLIENT_SECRET, body)}, body).skus == ["RD-240"]

    later = await bling.stock_changes(page.cursor)
    assert {r.sku: r.on_hand for r in later.records}["RD-240"] == 42


async def test_a_product_created_in_bling_is_read_by_the_next_poll(bling: BlingConnector, seeded) -> None:
    """A product added after the full read comes in through dataAlteracaoInicial at the next poll."""
    page = await bling.stock_changes(None)
    await seeded.post("/_sandbox/stock", json={"sku": "NEW-1", "on_hand": 5})
    later = await bling.stock_changes(page.cursor)
    assert {r.sku: r.on_hand for r in later.records}["NEW-1"] == 5


async def test_skus_asked_by_code_without_a_full_read(
    bling: BlingConnector, seeded, sandbox: BlingSandbox
) -> None:
    """read_skus finds unknown codes with codigos[] and reads only those; an unknown SKU is left out."""
    before = sandbox.calls["GET /estoques/saldos"]
    records = await bling.read_skus(["RD-007", "RD-008", "NOT-THERE"])
    assert {r.sku: r.on_hand for r in records} == {"RD-007": 0, "RD-008": 1}
    assert sandbox.calls["GET /estoques/saldos"] == before + 1


async def test_the_days_count_matches_the_calls_bling_served(
    bling: BlingConnector, seeded, sandbox: BlingSandbox
) -> None:
    """Every API call is counted against the day's budget, as Bling counts it (token calls aside)."""
    await bling.read_stock()
    await bling.stock_changes(None)
    assert bling.budget_status()["used_today"] == sandbox.used_today > 0


async def test_a_deposit_the_account_lacks_is_named_with_the_ones_it_has(
    connect, hooks: httpx.AsyncClient
) -> None:
    """Configured deposits are checked once against GET /depositos; a wrong id is refused with the list."""
    erp = connect(deposits=[1, 99])
    await authorise(erp, hooks)
    with pytest.raises(ConnectorError, match=r"deposits \[99\].*1 \(Geral\)"):
        await erp.read_stock()
