"""The contract every ERP connector keeps, run against each connector's own sandbox.

A concrete test module subclasses ``ErpContract`` (as ``Test<Erp>Contract``) and provides two
fixtures:

- ``erp_sandbox``: an ``httpx.AsyncClient`` on the ERP's sandbox, already seeded with
  ``contract_stock()``. The sandbox has ``GET /_sandbox/stock`` (a list of ``{"sku", "on_hand"}``,
  on-hand as the connector should read it) and ``POST /_sandbox/stock`` (``{"sku", "on_hand"}``:
  a change made in the ERP by a person).
- ``erp``: the connector, connected to that same sandbox, authorised if it needs to be.

Sales are movements with a negative delta and key ``channel:order:line``; a cancellation of a
recorded sale is ``<key>:cancel`` with the positive delta, as the engine sends them.
"""

from __future__ import annotations

import httpx

from connectors.base import ErpConnector, Movement, StockRecord


def contract_stock() -> dict[str, int]:
    """130 SKUs (more than one page of 100 on every ERP here), some at 0."""
    return {f"EC-{n:04d}": (n * 7) % 19 for n in range(1, 131)}


def sale(key: str, sku: str, units: int) -> Movement:
    return Movement(key=key, sku=sku, delta=-units, reason="sale", reference=key.rsplit(":", 1)[0])


def cancellation(key: str, sku: str, units: int) -> Movement:
    return Movement(
        key=f"{key}:cancel", sku=sku, delta=units, reason="cancellation", reference=key.rsplit(":", 1)[0]
    )


async def sandbox_stock(erp_sandbox: httpx.AsyncClient) -> dict[str, int]:
    response = await erp_sandbox.get("/_sandbox/stock")
    response.raise_for_status()
    return {row["sku"]: row["on_hand"] for row in response.json()}


def as_dict(records: list[StockRecord]) -> dict[str, int]:
    found: dict[str, int] = {}
    for record in records:
        assert record.sku not in found, f"{record.sku} read twice"
        found[record.sku] = record.on_hand
    return found


class ErpContract:
    """Behaviour syncd relies on from every ERP, whatever its API looks like."""

    async def test_read_stock_returns_every_sku_with_its_on_hand(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """read_stock returns each seeded SKU once with the on-hand the ERP holds, across pages."""
        assert as_dict(await erp.read_stock()) == contract_stock()

    async def test_stock_changes_since_a_cursor_show_a_change_made_in_the_erp(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """After a full read, a person's change in the ERP shows up in the next changes read."""
        first = await erp.stock_changes(None)
        assert as_dict(first.records) == contract_stock()
        changed = await erp_sandbox.post("/_sandbox/stock", json={"sku": "EC-0042", "on_hand": 77})
        assert changed.status_code == 200

        later = await erp.stock_changes(first.cursor)

        truth = await sandbox_stock(erp_sandbox)
        assert as_dict(later.records)["EC-0042"] == 77
        assert all(truth[sku] == units for sku, units in as_dict(later.records).items())
        assert later.cursor is not None

    async def test_a_sale_is_recorded_once_and_lowers_on_hand(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """A recorded sale is acknowledged and takes its units off the SKU's on-hand."""
        before = contract_stock()["EC-0005"]
        acked = await erp.record_movements([sale("shop:1001:1", "EC-0005", 2)])

        assert acked == ["shop:1001:1"]
        assert (await sandbox_stock(erp_sandbox))["EC-0005"] == before - 2
        assert as_dict(await erp.read_stock())["EC-0005"] == before - 2

    async def test_a_repeated_key_is_acknowledged_but_applied_once(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """The same key in one batch and again later is acknowledged each time, applied once."""
        before = contract_stock()["EC-0006"]
        first = await erp.record_movements(
            [sale("shop:1002:1", "EC-0006", 1), sale("shop:1002:1", "EC-0006", 1)]
        )
        again = await erp.record_movements([sale("shop:1002:1", "EC-0006", 1)])

        assert set(first) == {"shop:1002:1"} and again == ["shop:1002:1"]
        assert (await sandbox_stock(erp_sandbox))["EC-0006"] == before - 1

    async def test_a_refused_movement_is_left_out_and_the_others_count(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """A sale of an SKU the ERP does not know is not acknowledged; the rest of the batch is."""
        before = contract_stock()["EC-0010"]
        acked = await erp.record_movements(
            [sale("shop:1003:1", "NOT-IN-ERP", 1), sale("shop:1004:1", "EC-0010", 1)]
        )

        assert acked == ["shop:1004:1"]
        stock = await sandbox_stock(erp_sandbox)
        assert stock["EC-0010"] == before - 1 and "NOT-IN-ERP" not in stock

    async def test_a_cancellation_gives_the_units_back_once(
        self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient
    ) -> None:
        """Cancelling a recorded sale restores its units, and repeating the cancellation changes nothing."""
        before = contract_stock()["EC-0013"]
        assert await erp.record_movements([sale("shop:1005:1", "EC-0013", 3)]) == ["shop:1005:1"]

        first = await erp.record_movements([cancellation("shop:1005:1", "EC-0013", 3)])
        again = await erp.record_movements([cancellation("shop:1005:1", "EC-0013", 3)])

        assert first == again == ["shop:1005:1:cancel"]
        assert (await sandbox_stock(erp_sandbox))["EC-0013"] == before

    async def test_no_movements_is_a_no_op(self, erp: ErpConnector, erp_sandbox: httpx.AsyncClient) -> None:
        """Recording an empty batch acknowledges nothing and changes no stock."""
        assert await erp.record_movements([]) == []
        assert await sandbox_stock(erp_sandbox) == contract_stock()
