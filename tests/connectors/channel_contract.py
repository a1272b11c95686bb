"""The contract every channel connector keeps, run against each connector's own sandbox.

A concrete test module subclasses ``ChannelContract`` (as ``Test<Platform>Contract``), sets
``unknown_ref`` and provides three fixtures:

- ``sandbox``: an ``httpx.AsyncClient`` bound to the platform's sandbox app, already seeded (in the
  platform's own way) with ``contract_catalogue()``: items sharing a ``group`` are variants of one
  product where the platform has variants.
- ``channel``: the connector, connected to that same app through ``httpx.ASGITransport``.
- ``spoiled``: a second connector to that app through a ``Spoiler``, and the spoiler, whose
  ``spoil`` makes the orders it names unreadable in the platform's own answer format.

The sandbox hooks used here are the common ones: ``GET``/``POST /_sandbox/listings``,
``POST /_sandbox/purchase`` (201 ``{"order_id"}``, the id ``orders_since`` reports; 409
``{"error": "insufficient_stock", "available"}``), ``POST /_sandbox/orders/{id}/cancel`` and
``GET /_sandbox/changes?since=`` (every change of a shown quantity with its true cause).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from connectors.base import ChannelConnector, OrderLine, QuantityUpdate
from tests.connectors.support import Spoiler


@dataclass(frozen=True)
class CatalogueItem:
    sku: str
    quantity: int
    group: str | None = None


def contract_catalogue() -> list[CatalogueItem]:
    """260 SKUs (more than two pages of 100), four products with five variants each, some at 0."""
    simple = [CatalogueItem(f"CT-{n:04d}", (n * 7) % 23) for n in range(1, 241)]
    variants = [
        CatalogueItem(f"CT-TEE-{colour}-{size}", 5 + index, group=f"CT-TEE-{colour}")
        for colour in ("RED", "BLUE", "GREEN", "BLACK")
        for index, size in enumerate(("XS", "S", "M", "L", "XL"))
    ]
    return simple + variants


async def sandbox_quantities(sandbox: httpx.AsyncClient) -> dict[str, int]:
    response = await sandbox.get("/_sandbox/listings")
    response.raise_for_status()
    return {row["sku"]: row["quantity"] for row in response.json()}


async def purchase(sandbox: httpx.AsyncClient, sku: str, quantity: int) -> httpx.Response:
    return await sandbox.post("/_sandbox/purchase", json={"sku": sku, "quantity": quantity})


def lines_of(lines: list[OrderLine], order_id: object) -> list[OrderLine]:
    return [line for line in lines if line.order_id == str(order_id)]


class ChannelContract:
    """Behaviour syncd relies on from every channel, whatever its API looks like."""

    unknown_ref: str = ""
    """A well-formed ref of the platform that addresses no item in the sandbox."""

    async def test_listings_cover_exactly_the_seeded_catalogue(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """list_listings returns every seeded SKU once, managed, with its seeded quantity."""
        listings = await channel.list_listings()
        assert {listing.sku: listing.quantity for listing in listings} == {
            item.sku: item.quantity for item in contract_catalogue()
        }
        assert len(listings) == len(contract_catalogue())
        assert all(listing.managed for listing in listings)
        assert len({listing.ref for listing in listings}) == len(listings)

    async def test_set_quantities_beyond_one_batch_applies_every_update(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """More updates than max_batch all land, and every read path then shows the new quantities."""
        listings = await channel.list_listings()
        assert len(listings) > channel.max_batch, "the catalogue must exceed one batch"
        wanted = {listing.sku: 3 + index % 40 for index, listing in enumerate(listings)}
        updates = [
            QuantityUpdate(listing.sku, listing.ref, wanted[listing.sku], compare=listing.quantity)
            for listing in listings
        ]

        result = await channel.set_quantities(updates)

        assert result.rejected == {}
        assert result.stale == []
        assert result.applied == wanted
        assert {listing.sku: listing.quantity for listing in await channel.list_listings()} == wanted
        assert await channel.read_quantities(listings) == wanted
        assert await sandbox_quantities(sandbox) == wanted

    async def test_unknown_ref_is_rejected_while_the_rest_apply(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """An update addressing no item is rejected for its SKU only; the others in the call apply."""
        assert self.unknown_ref, "the concrete contract must set unknown_ref"
        known = (await channel.list_listings())[:3]
        updates = [QuantityUpdate(listing.sku, listing.ref, 11) for listing in known]
        updates.insert(1, QuantityUpdate("NO-SUCH-SKU", self.unknown_ref, 4))

        result = await channel.set_quantities(updates)

        assert set(result.rejected) == {"NO-SUCH-SKU"}
        assert result.rejected["NO-SUCH-SKU"]
        assert result.applied == {listing.sku: 11 for listing in known}
        shown = await sandbox_quantities(sandbox)
        assert all(shown[listing.sku] == 11 for listing in known)

    async def test_read_quantities_matches_what_the_sandbox_shows(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """read_quantities agrees with the platform, including a seller's manual edit made there."""
        listings = await channel.list_listings()
        edited = listings[-1]
        response = await sandbox.post("/_sandbox/listings", json={"sku": edited.sku, "quantity": 17})
        assert response.status_code == 200

        read = await channel.read_quantities(listings)

        assert read == await sandbox_quantities(sandbox)
        assert read[edited.sku] == 17

    async def test_purchase_appears_in_orders_since(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """A shopper's order shows up as an open line with its SKU and quantity, and stock drops."""
        item = next(i for i in contract_catalogue() if i.group and i.quantity >= 3)
        since = datetime.now(UTC)
        response = await purchase(sandbox, item.sku, 2)
        assert response.status_code == 201

        page = await channel.orders_since(since)

        [line] = lines_of(page.lines, response.json()["order_id"])
        assert (line.sku, line.quantity, line.status) == (item.sku, 2, "open")
        assert line.channel == channel.name
        assert page.latest is not None and page.latest >= line.updated_at
        [listing] = [listing for listing in await channel.list_listings() if listing.sku == item.sku]
        assert await channel.read_quantities([listing]) == {item.sku: item.quantity - 2}

    async def test_one_unreadable_order_is_quarantined_and_the_poll_goes_on(
        self,
        channel: ChannelConnector,
        sandbox: httpx.AsyncClient,
        spoiled: tuple[ChannelConnector, Spoiler],
    ) -> None:
        """Three purchases, the middle one spoiled on the wire (a quantity of "oops" where the
        platform has quantities): orders_since returns the other two orders' lines, quarantines
        the middle one by its id, and its cursor is the one a clean poll gives (past all three)."""
        spoiled_channel, spoiler = spoiled
        since = datetime.now(UTC) - timedelta(seconds=1)
        ids = []
        for sku in ("CT-0001", "CT-0002", "CT-0003"):
            response = await purchase(sandbox, sku, 1)
            assert response.status_code == 201
            ids.append(str(response.json()["order_id"]))
        spoiler.orders.add(ids[1])

        page = await spoiled_channel.orders_since(since)
        clean = await channel.orders_since(since)

        assert {line.order_id for line in page.lines} == {ids[0], ids[2]}
        assert {line.order_id for line in clean.lines} == set(ids)
        [bad] = page.quarantined
        assert (bad.connector, bad.kind, bad.ref) == (channel.name, "order", ids[1])
        assert bad.reason and bad.excerpt
        assert clean.quarantined == []
        assert page.latest is not None and page.latest == clean.latest

    async def test_orders_before_since_are_left_out(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """orders_since does not report orders last changed before ``since``."""
        response = await purchase(sandbox, "CT-0001", 1)
        assert response.status_code == 201

        page = await channel.orders_since(datetime.now(UTC) + timedelta(minutes=5))

        assert page.lines == []
        assert page.latest is None

    async def test_purchase_above_the_shown_quantity_is_refused(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """The platform refuses to sell more than it shows (409) and nothing changes."""
        item = next(i for i in contract_catalogue() if i.group is None and i.quantity >= 2)
        since = datetime.now(UTC)

        response = await purchase(sandbox, item.sku, item.quantity + 1)

        assert response.status_code == 409
        assert response.json() == {"error": "insufficient_stock", "available": item.quantity}
        assert (await sandbox_quantities(sandbox))[item.sku] == item.quantity
        assert [line for line in (await channel.orders_since(since)).lines if line.sku == item.sku] == []

    async def test_cancelled_order_reports_its_lines_cancelled(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """After a cancellation, orders_since reports the order's line once, as cancelled."""
        item = next(i for i in contract_catalogue() if i.group is None and i.quantity >= 1)
        since = datetime.now(UTC)
        order_id = (await purchase(sandbox, item.sku, 1)).json()["order_id"]
        cancel = await sandbox.post(f"/_sandbox/orders/{order_id}/cancel")
        assert cancel.status_code == 200

        page = await channel.orders_since(since)

        [line] = lines_of(page.lines, order_id)
        assert (line.sku, line.quantity, line.status) == (item.sku, 1, "cancelled")

    async def test_change_journal_names_the_true_cause_of_every_change(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """A purchase, a manual edit, a write through the API and a cancellation each appear in
        ``/_sandbox/changes`` once, in order, with their cause, SKU, before and after (and order id)."""
        item = next(i for i in contract_catalogue() if i.group is None and i.quantity >= 5)
        [listing] = [x for x in await channel.list_listings() if x.sku == item.sku]
        since = datetime.now(UTC)
        order_id = str((await purchase(sandbox, item.sku, 2)).json()["order_id"])
        edit = await sandbox.post("/_sandbox/listings", json={"sku": item.sku, "quantity": 30})
        assert edit.status_code == 200
        result = await channel.set_quantities([QuantityUpdate(item.sku, listing.ref, 12, compare=30)])
        assert result.applied == {item.sku: 12}
        assert (await sandbox.post(f"/_sandbox/orders/{order_id}/cancel")).status_code == 200

        response = await sandbox.get("/_sandbox/changes", params={"since": since.isoformat()})

        assert response.status_code == 200
        changes = [c for c in response.json() if c["sku"] == item.sku]
        assert [(c["cause"], c["before"], c["after"], c["order_id"], c["written"]) for c in changes] == [
            ("purchase", item.quantity, item.quantity - 2, order_id, None),
            ("manual_edit", item.quantity - 2, 30, None, None),
            ("syncd_write", 30, 12, None, 12),
            ("cancellation", 12, 14, order_id, None),
        ]
        times = [datetime.fromisoformat(c["at"]) for c in changes]
        assert times == sorted(times) and times[0] > since

    async def test_change_journal_since_leaves_older_changes_out(
        self, channel: ChannelConnector, sandbox: httpx.AsyncClient
    ) -> None:
        """``since`` keeps only later changes, and a malformed ``since`` is a 400 that names it."""
        await purchase(sandbox, "CT-0001", 1)
        later = datetime.now(UTC)
        await purchase(sandbox, "CT-0002", 1)

        newer = (await sandbox.get("/_sandbox/changes", params={"since": later.isoformat()})).json()
        bad = await sandbox.get("/_sandbox/changes", params={"since": "yesterday"})

        assert [(c["sku"], c["cause"]) for c in newer] == [("CT-0002", "purchase")]
        assert bad.status_code == 400 and "since" in bad.json()["error"]
