"""MockErpConnector on the wire: what it sends, and how it refuses malformed answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from connectors.base import Movement
from connectors.mock_erp.client import MockErpConnector
from syncd.errors import ConnectorError, ProtocolError, TransientError

GOOD_PAGE = {"items": [{"sku": "A", "on_hand": 3, "seq": 1}], "cursor": "1", "next_page_token": None}
SALE = Movement(key="shop:1:1", sku="A", delta=-1, reason="sale", reference="shop:1")

Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
async def wired(make_settings) -> AsyncIterator[Callable[[Answer], MockErpConnector]]:
    """Connectors whose every request is answered by a given function."""
    made: list[MockErpConnector] = []

    def build(answer: Answer) -> MockErpConnector:
        connector = MockErpConnector(make_settings(), transport=httpx.MockTransport(answer))
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.aclose()


def replying(body: Any, status: int = 200) -> Answer:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content)


def page(**changes: Any) -> dict[str, Any]:
    return {**GOOD_PAGE, **changes}


def item(**changes: Any) -> dict[str, Any]:
    return page(items=[{**GOOD_PAGE["items"][0], **changes}])


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


async def test_requests_carry_the_bearer_key_and_movement_json(wired, api_key: str) -> None:
    """Movements go as a JSON list under "movements", authorised by the Bearer API key."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"acknowledged": ["shop:1:1"], "rejected": []})

    assert await wired(answer).record_movements([SALE]) == ["shop:1:1"]

    (request,) = seen
    assert request.method == "POST" and request.url.path == "/api/v1/movements"
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert json.loads(request.content) == {
        "movements": [{"key": "shop:1:1", "sku": "A", "delta": -1, "reason": "sale", "reference": "shop:1"}]
    }


async def test_stock_pages_are_asked_by_token(wired) -> None:
    """The second page is requested with the token the first page gave, and records are merged."""
    seen: list[httpx.QueryParams] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        if "page_token" not in request.url.params:
            return httpx.Response(200, json=page(next_page_token="t1"))
        return httpx.Response(200, json=page(items=[{"sku": "B", "on_hand": 0, "seq": 2}], cursor="2"))

    result = await wired(answer).stock_changes("0")

    assert [(r.sku, r.on_hand) for r in result.records] == [("A", 3), ("B", 0)]
    assert result.cursor == "2"
    assert seen[0]["since"] == "0" and seen[1]["page_token"] == "t1"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>Bad gateway</html>", "not JSON"),
        (b'{"items": [{"sku": "A", "on_hand": 3', "not JSON"),
        (b"", "not JSON"),
        ([], "expected dict"),
        (page(items={"sku": "A"}), "items = "),
        (without(GOOD_PAGE, "items"), "without 'items'"),
        (without(GOOD_PAGE, "cursor"), "without 'cursor'"),
        (page(cursor=7), "cursor = 7 (int)"),
        (without(GOOD_PAGE, "next_page_token"), "without 'next_page_token'"),
        (page(next_page_token=3), "next_page_token = 3"),
    ],
)
async def test_malformed_stock_answers_are_protocol_errors(wired, body: Any, expected: str) -> None:
    """A stock answer that is not JSON, truncated, or has a wrong or missing field names the problem."""
    with pytest.raises(ProtocolError) as caught:
        await wired(replying(body)).read_stock()

    message = str(caught.value)
    assert expected in message
    assert message.startswith("erp: GET /api/v1/stock answered")


GOOD = {"sku": "A", "on_hand": 3, "seq": 1}
LATER = {"sku": "C", "on_hand": 7, "seq": 3}


@pytest.mark.parametrize(
    ("bad", "ref", "reason"),
    [
        ("A", None, "items[1] = 'A' (str), expected an object"),
        (
            {"sku": "B", "on_hand": "5", "seq": 2},
            "B",
            "items[1].on_hand = '5' (str), expected a non-negative integer",
        ),
        ({"sku": "B", "on_hand": -1, "seq": 2}, "B", "items[1].on_hand = -1"),
        ({"sku": "B", "on_hand": 2.5, "seq": 2}, "B", "items[1].on_hand = 2.5"),
        ({"sku": "B", "on_hand": True, "seq": 2}, "B", "items[1].on_hand = True"),
        ({"sku": "B", "on_hand": None, "seq": 2}, "B", "items[1].on_hand = None"),
        (
            {"sku": "B", "on_hand": 10**12, "seq": 2},
            "B",
            "items[1].on_hand = 1000000000000 (int), expected an integer from 0 to 1000000",
        ),
        ({"on_hand": 1, "seq": 2}, None, "items[1] without 'sku'"),
        ({"sku": "", "on_hand": 1, "seq": 2}, None, "items[1].sku = ''"),
        ({"sku": 12, "on_hand": 1, "seq": 2}, "12", "items[1].sku = 12 (int)"),
        ({"sku": "B", "on_hand": 1}, "B", "items[1] without 'seq'"),
    ],
)
async def test_bad_stock_record_is_quarantined_and_the_rest_count(
    wired, bad: Any, ref: str | None, reason: str
) -> None:
    """A malformed or implausible record between two good ones is left out and quarantined with
    the field and value at fault; the good records and the cursor still come through."""
    body = page(items=[GOOD, bad, LATER], cursor="3")
    result = await wired(replying(body)).stock_changes("0")

    assert [(r.sku, r.on_hand) for r in result.records] == [("A", 3), ("C", 7)]
    assert result.cursor == "3"
    [item] = result.quarantined
    assert (item.connector, item.kind, item.ref) == ("erp", "stock", ref)
    assert reason in item.reason and item.excerpt
    assert [r.sku for r in await wired(replying(body)).read_stock()] == ["A", "C"]


async def test_record_refused_on_a_later_page_drops_the_earlier_one(wired) -> None:
    """A SKU whose newest record (a later page) is refused keeps its last on-hand in the ledger:
    its older record from an earlier page of the same read is not returned either."""

    def answer(request: httpx.Request) -> httpx.Response:
        if "page_token" not in request.url.params:
            return httpx.Response(200, json=page(items=[GOOD], next_page_token="t1"))
        return httpx.Response(200, json=page(items=[{"sku": "A", "on_hand": 10**12, "seq": 2}], cursor="2"))

    result = await wired(answer).stock_changes("0")
    assert result.records == [] and [q.ref for q in result.quarantined] == ["A"] and result.cursor == "2"


async def test_max_quantity_bounds_on_hand(make_settings) -> None:
    """max_quantity is the connector's setting: with 5, an on-hand of 6 is quarantined."""
    body = page(items=[{"sku": "A", "on_hand": 6, "seq": 1}])
    connector = MockErpConnector(make_settings(max_quantity=5), transport=httpx.MockTransport(replying(body)))
    result = await connector.stock_changes(None)
    assert result.records == [] and "from 0 to 5" in result.quarantined[0].reason
    await connector.aclose()


async def test_repeated_page_token_is_a_protocol_error(wired) -> None:
    """An ERP that hands out the same page token twice is refused instead of looping forever."""
    with pytest.raises(ProtocolError, match="page token it gave before"):
        await wired(replying(page(next_page_token="same"))).read_stock()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"acknowledged": "shop:1:1", "rejected": []}, "acknowledged = 'shop:1:1' (str), expected a list"),
        ({"rejected": []}, "without 'acknowledged'"),
        ({"acknowledged": [1], "rejected": []}, "acknowledged[0] = 1 (int)"),
        ({"acknowledged": ["other:9:9"], "rejected": []}, "expected a key of a movement sent"),
        ({"acknowledged": []}, "without 'rejected'"),
        ({"acknowledged": [], "rejected": [{"key": "shop:1:1"}]}, "rejected[0] without 'reason'"),
        (
            {"acknowledged": [], "rejected": ["shop:1:1"]},
            "rejected[0] = 'shop:1:1' (str), expected an object",
        ),
    ],
)
async def test_malformed_movement_answers_are_protocol_errors(wired, body: Any, expected: str) -> None:
    """A movements answer with wrong types, missing fields or keys never sent names the problem."""
    with pytest.raises(ProtocolError) as caught:
        await wired(replying(body)).record_movements([SALE])

    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"imported": "shop:1"}, "imported = 'shop:1' (str), expected a list"),
        ({}, "without 'imported'"),
        ({"imported": ["shop:2"]}, "imported[0] = 'shop:2' (str), expected one of the references asked"),
    ],
)
async def test_malformed_imported_answers_are_protocol_errors(wired, body: Any, expected: str) -> None:
    """An imported-orders answer of the wrong shape, or naming refs not asked, is refused."""
    with pytest.raises(ProtocolError) as caught:
        await wired(replying(body)).imported_orders(["shop:1"])

    assert expected in str(caught.value)


async def test_client_error_status_is_a_connector_error_with_the_remote_message(wired) -> None:
    """A 400 is neither retried nor transient, and carries the ERP's own message."""
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"error": "bad_request", "message": "'since' is not valid"})

    with pytest.raises(ConnectorError) as caught:
        await wired(answer).stock_changes("garbage")

    assert not isinstance(caught.value, TransientError | ProtocolError)
    assert "'since' is not valid" in str(caught.value)
    assert len(calls) == 1


async def test_refs_with_commas_are_not_asked(wired) -> None:
    """A ref containing the list separator is left out of the query rather than split in two."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["refs"])
        return httpx.Response(200, json={"imported": ["shop:1"]})

    assert await wired(answer).imported_orders(["shop:1", "shop:a,b", "shop:1"]) == {"shop:1"}
    assert seen == ["shop:1"]
