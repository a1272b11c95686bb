"""Quarantined orders end to end: a web store order the daemon cannot read (a quantity of "oops"
on the wire) or a signed webhook whose quantity is out of bounds is kept for a person, shown in
/api/status and by ``syncd quarantine``, alerted once, never reserved, and the orders after it
are taken in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.woocommerce.webhooks import signature
from syncd.alerts import Alerter
from syncd.cli import main
from tests.connectors.support import Spoiler
from tests.daemon.conftest import ERP_KEY, WC_KEY, WC_SECRET, WEBHOOK_SECRET, World


def spoil(body: Any, orders: set[str]) -> None:
    """A line quantity of "oops" in the named orders of a WooCommerce orders list."""
    for order in body if isinstance(body, list) else []:
        if isinstance(order, dict) and str(order.get("id")) in orders and order.get("line_items"):
            order["line_items"][0]["quantity"] = "oops"


@pytest.fixture
def spoiler(world: World) -> Spoiler:
    """The daemon's road to the web store, spoiling the orders the test names."""
    spoiled = Spoiler(world.shop_wire.inner, spoil)
    world.shop_wire.inner = spoiled
    return spoiled


def write_config(tmp_path: Path) -> Path:
    """A config file for the CLI naming the world's ledger."""
    path = tmp_path / "cli.yaml"
    path.write_text(
        f"""
database_url: sqlite:///{tmp_path / "syncd.db"}
erp: {{type: mock_erp, base_url: "http://erp.test", api_key: {ERP_KEY}}}
channels:
  - name: webstore
    type: woocommerce
    base_url: "http://shop.test"
    consumer_key: {WC_KEY}
    consumer_secret: {WC_SECRET}
    webhook_secret: {WEBHOOK_SECRET}
"""
    )
    return path


async def api_status(world: World) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as client:
        response = await client.get("/api/status")
    assert response.status_code == 200
    return dict(response.json())


async def status_page(world: World) -> str:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as client:
        response = await client.get("/status")
    assert response.status_code == 200
    return response.text


async def order_id(response: httpx.Response) -> str:
    assert response.status_code == 201
    return str(response.json()["order_id"])


def alerter(world: World) -> Alerter:
    return Alerter(
        world.daemon.config.alerts,
        world.store,
        lambda: world.engine.status()["connectors"],
        reconcile_interval=world.daemon.config.schedule.reconcile_interval,
    )


async def test_an_order_with_quantity_oops_is_quarantined_and_later_orders_are_ingested(
    world: World, spoiler: Spoiler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three sales, the middle one's quantity "oops" on the wire: the other two are reserved, the
    bad one is quarantined (channel, id, reason, a short excerpt without secrets) once however
    often it is polled, shown by /api/status and `syncd quarantine`, alerted once; a later sale is
    still taken in, and once the order reads clean its quarantine and alert are resolved."""
    await world.seed({"A": 10, "B": 10}, {"A": 10, "B": 10})
    await world.engine.reconcile()
    first = await order_id(await world.purchase("A"))
    bad = await order_id(await world.purchase("B", 2))
    third = await order_id(await world.purchase("A"))
    spoiler.orders.add(bad)

    report = await world.engine.poll_orders()
    await world.engine.poll_orders()  # the overlap reads the same orders again

    assert report.counts["orders_quarantined"] == 1
    assert world.store.reserved_by_sku() == {"A": 2}
    assert {line.order_id for line in world.store.lines_of_sku("A")} == {first, third}
    quarantine = (await api_status(world))["quarantine"]
    assert (quarantine["total"], quarantine["open"]) == (1, 1)
    [item] = quarantine["latest"]
    assert (item["connector"], item["kind"], item["ref"], item["seen"]) == ("webstore", "order", bad, 2)
    assert "quantity" in item["reason"] and "'oops'" in item["reason"]
    assert 0 < len(item["excerpt"]) <= 200 and item["resolved_at"] is None
    for secret in (WC_KEY, WC_SECRET, WEBHOOK_SECRET, ERP_KEY):
        assert secret not in json.dumps(quarantine)
    page = await status_page(world)
    assert "Quarantined (1 open)" in page and bad in page and "oops" in page

    opened = await alerter(world).check()
    again = await alerter(world).check()
    assert [(t.kind, t.action) for t in opened if t.kind == "quarantined"] == [("quarantined", "open")]
    assert bad in next(t.text for t in opened if t.kind == "quarantined")
    assert [t for t in again if t.kind == "quarantined"] == []

    config = write_config(tmp_path)
    capsys.readouterr()  # the daemon's log lines so far
    assert main(["quarantine", "-c", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["total"], [i["ref"] for i in shown["items"]]) == (1, [bad])
    assert main(["quarantine", "-c", str(config)]) == 0
    table = capsys.readouterr().out
    assert "webstore" in table and bad in table and "open" in table

    later = await order_id(await world.purchase("A"))
    await world.engine.poll_orders()
    assert world.store.reserved_by_sku() == {"A": 3}
    assert later in {line.order_id for line in world.store.lines_of_sku("A")}

    spoiler.orders.clear()  # the shop fixed the order: the next poll reads it clean
    await world.engine.poll_orders()
    assert world.store.reserved_by_sku() == {"A": 3, "B": 2}
    assert world.store.quarantine_counts() == {"total": 1, "open": 0}
    assert "Nothing is quarantined." in await status_page(world)
    cleared = await alerter(world).check()
    assert [(t.kind, t.action) for t in cleared if t.kind == "quarantined"] == [("quarantined", "resolved")]


async def test_a_signed_webhook_out_of_bounds_is_quarantined_not_reserved(world: World) -> None:
    """A correctly signed order webhook with a quantity of 10^9 is answered 200 (the shop need not
    send it again), quarantined by its order id and reserves nothing; the same delivery sent
    again is not recorded twice."""
    await world.seed({"A": 10}, {"A": 10})
    await world.engine.reconcile()
    order = {
        "id": 4242,
        "status": "processing",
        "date_modified_gmt": "2026-12-01T10:00:00",
        "billing": {"email": "buyer@example.com"},
        "line_items": [{"id": 1, "sku": "A", "quantity": 10**9}],
    }
    body = json.dumps(order).encode()
    headers = {
        "X-WC-Webhook-Signature": signature(WEBHOOK_SECRET, body),
        "X-WC-Webhook-Topic": "order.created",
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.daemon.app()), base_url="http://syncd.test"
    ) as client:
        answers = [(await client.post("/webhooks/webstore", content=body, headers=headers)) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert world.store.reserved_by_sku() == {}
    [item] = world.store.quarantined()
    assert (item.connector, item.ref, item.seen) == ("webstore", "4242", 1)
    assert "1000000000" in item.reason and "buyer@example.com" not in item.excerpt
    assert (await api_status(world))["quarantine"]["open"] == 1
