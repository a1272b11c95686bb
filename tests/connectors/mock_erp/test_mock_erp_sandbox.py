"""The mock ERP sandbox itself: its API's validation and auth, its /_sandbox hooks, its persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mock_erp.sandbox import create_app


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_api_without_the_right_key_is_401(client: httpx.AsyncClient) -> None:
    """Every API route answers 401 with the ERP's error envelope when the key is missing or wrong."""
    answers = [
        await client.get("/api/v1/stock"),
        await client.get("/api/v1/stock", headers={"Authorization": "Bearer wrong"}),
        await client.post("/api/v1/movements", json={"movements": []}),
        await client.get("/api/v1/imported-orders?refs=a", headers={"Authorization": "Basic abc"}),
    ]

    for response in answers:
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.json()["message"]


async def test_stock_read_uses_default_limit_and_cursor(client: httpx.AsyncClient, auth) -> None:
    """Without a limit a page holds 1000 items in seq order; the cursor is the latest seq."""
    seeded = await client.post(
        "/_sandbox/seed", json={"items": [{"sku": f"S{i:04}", "quantity": 1} for i in range(1500)]}
    )
    assert seeded.json() == {"seeded": 1500}

    first = (await client.get("/api/v1/stock", headers=auth)).json()
    rest = (
        await client.get("/api/v1/stock", headers=auth, params={"page_token": first["next_page_token"]})
    ).json()

    assert len(first["items"]) == 1000 and len(rest["items"]) == 500
    seqs = [i["seq"] for i in first["items"] + rest["items"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 1500
    assert first["cursor"] == rest["cursor"] == str(seqs[-1])
    assert rest["next_page_token"] is None


async def test_stock_read_since_cursor(client: httpx.AsyncClient, auth) -> None:
    """``since`` returns only SKUs changed after that seq; a page that fits has no next token."""
    await client.post("/_sandbox/stock", json=[{"sku": "A", "on_hand": 1}, {"sku": "B", "on_hand": 2}])
    cursor = (await client.get("/api/v1/stock", headers=auth)).json()["cursor"]
    await client.post("/_sandbox/stock", json={"sku": "A", "on_hand": 9})

    body = (await client.get("/api/v1/stock", headers=auth, params={"since": cursor, "limit": 1})).json()

    assert [(i["sku"], i["on_hand"]) for i in body["items"]] == [("A", 9)]
    assert body["next_page_token"] is None
    assert int(body["cursor"]) > int(cursor)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=-1", "since"),
        ("since=abc", "since"),
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=ten", "limit"),
        ("page_token=bm9wZQ", "page_token"),
        ("page_token=%25%25", "page_token"),
    ],
)
async def test_bad_stock_parameters_are_400(
    client: httpx.AsyncClient, auth, query: str, parameter: str
) -> None:
    """A bad query parameter is refused with a 400 naming it."""
    response = await client.get(f"/api/v1/stock?{query}", headers=auth)

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert f"'{parameter}'" in response.json()["message"]


def movement(**changes: Any) -> dict[str, Any]:
    return {"key": "shop:1:1", "sku": "A", "delta": -1, "reason": "sale", "reference": "shop:1", **changes}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "'movements' must be a list"),
        ({"movements": {"key": "x"}}, "'movements' must be a list"),
        ({"movements": [movement(key=f"k{i}") for i in range(501)]}, "at most 500"),
        ({"movements": ["shop:1:1"]}, "movements[0] must be an object"),
        ({"movements": [movement(), movement(delta="-1")]}, "movements[1].delta must be an integer"),
        ({"movements": [movement(delta=True)]}, "movements[0].delta"),
        ({"movements": [movement(key="")]}, "movements[0].key"),
        ({"movements": [{k: v for k, v in movement().items() if k != "sku"}]}, "movements[0].sku"),
        ({"movements": [movement(reason=None)]}, "movements[0].reason"),
        ({"movements": [movement(reference=5)]}, "movements[0].reference"),
    ],
)
async def test_malformed_movements_are_400(client: httpx.AsyncClient, auth, body: Any, expected: str) -> None:
    """A malformed movements body is refused whole with a 400 naming the problem; nothing applies."""
    await client.post("/_sandbox/stock", json={"sku": "A", "on_hand": 5})
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body

    response = await client.post("/api/v1/movements", headers=auth, content=content, json=json_body)

    assert response.status_code == 400
    assert expected in response.json()["message"]
    assert (await client.get("/_sandbox/movements")).json() == []


async def test_movements_hook_lists_what_was_applied(client: httpx.AsyncClient, auth) -> None:
    """GET /_sandbox/movements lists applied movements with their time; refused ones are absent."""
    await client.post("/_sandbox/stock", json={"sku": "A", "on_hand": 5})
    answer = await client.post(
        "/api/v1/movements", headers=auth, json={"movements": [movement(), movement(key="k2", sku="Z")]}
    )

    assert answer.json() == {
        "acknowledged": ["shop:1:1"],
        "rejected": [{"key": "k2", "reason": "unknown SKU 'Z'"}],
    }
    (recorded,) = (await client.get("/_sandbox/movements")).json()
    assert {k: v for k, v in recorded.items() if k != "at"} == movement()
    assert recorded["at"]


async def test_imported_orders_api(client: httpx.AsyncClient, auth) -> None:
    """Imported-orders answers only refs marked through the hook, and needs ``refs``."""
    assert (await client.post("/_sandbox/imported-orders", json={"refs": ["shop:2"]})).status_code == 200

    answer = await client.get("/api/v1/imported-orders", headers=auth, params={"refs": "shop:1,shop:2"})
    missing = await client.get("/api/v1/imported-orders", headers=auth)

    assert answer.json() == {"imported": ["shop:2"]}
    assert missing.status_code == 400 and "'refs'" in missing.json()["message"]


async def test_stock_hooks_set_seed_and_read(client: httpx.AsyncClient) -> None:
    """Setting one SKU, a list, or seeding in bulk all land in GET /_sandbox/stock."""
    await client.post(
        "/_sandbox/seed", json={"items": [{"sku": "B", "quantity": 4}, {"sku": "C", "quantity": 0}]}
    )
    one = await client.post("/_sandbox/stock", json={"sku": "A", "on_hand": 7})
    many = await client.post("/_sandbox/stock", json=[{"sku": "B", "on_hand": 1}, {"sku": "D", "on_hand": 2}])

    assert one.status_code == many.status_code == 200
    assert (await client.get("/_sandbox/stock")).json() == [
        {"sku": "A", "on_hand": 7},
        {"sku": "B", "on_hand": 1},
        {"sku": "C", "on_hand": 0},
        {"sku": "D", "on_hand": 2},
    ]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/_sandbox/stock", b"nope", "not valid JSON"),
        ("/_sandbox/stock", {"sku": "A", "on_hand": -1}, "on_hand must be a non-negative integer"),
        ("/_sandbox/stock", {"on_hand": 1}, "sku must be a non-empty string"),
        ("/_sandbox/stock", [{"sku": "A", "on_hand": 1}, 5], "[1] must be an object"),
        ("/_sandbox/seed", {"items": {"sku": "A"}}, "'items' must be a list"),
        ("/_sandbox/seed", {"items": [{"sku": "A", "quantity": "3"}]}, "items[0].quantity"),
        ("/_sandbox/imported-orders", {"refs": "shop:1"}, "'refs' must be a list"),
        ("/_sandbox/faults", {"error_rate": 2}, "probability"),
        ("/_sandbox/faults", {"explode": 1}, "unknown fault"),
    ],
)
async def test_bad_hook_bodies_are_400(
    client: httpx.AsyncClient, path: str, body: Any, expected: str
) -> None:
    """A hook given a bad body answers 400 naming the problem and changes nothing."""
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body

    response = await client.post(path, content=content, json=json_body)

    assert response.status_code == 400
    assert expected in response.json()["error" if path == "/_sandbox/faults" else "message"]
    assert (await client.get("/_sandbox/stock")).json() == []


async def test_faults_hit_the_api_but_never_the_hooks(client: httpx.AsyncClient, auth) -> None:
    """With every request failing, the API answers 500 in the ERP envelope while hooks still work."""
    changed = await client.post("/_sandbox/faults", json={"error_rate": 1.0})
    assert changed.json()["error_rate"] == 1.0

    api = await client.get("/api/v1/stock", headers=auth)
    hook = await client.get("/_sandbox/stock")

    assert api.status_code == 500 and api.json()["error"] == "internal_error"
    assert hook.status_code == 200
    assert (await client.get("/_sandbox/faults")).json()["error_rate"] == 1.0


async def test_stats_count_api_calls_only(client: httpx.AsyncClient, auth) -> None:
    """/_sandbox/stats counts API requests per route and in total, not hook requests."""
    await client.get("/api/v1/stock", headers=auth)
    await client.get("/api/v1/stock", headers=auth)
    await client.post("/api/v1/movements", headers=auth, json={"movements": []})
    await client.get("/_sandbox/stock")

    calls = (await client.get("/_sandbox/stats")).json()["calls"]

    assert calls == {"GET /api/v1/stock": 2, "POST /api/v1/movements": 1, "total": 3}


async def test_the_erp_has_no_purchase_hook(client: httpx.AsyncClient) -> None:
    """Purchases happen on channels, not in the ERP: the hook is absent, answered in the ERP envelope."""
    response = await client.post("/_sandbox/purchase", json={"sku": "A", "quantity": 1})

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_stock_and_movements_survive_a_restart(tmp_path: Path, api_key: str) -> None:
    """On a database file, stock, movements and the change sequence outlive the app."""
    db_path = str(tmp_path / "erp.sqlite")
    headers = {"Authorization": f"Bearer {api_key}"}
    first = create_app(api_key=api_key, db_path=db_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://erp") as http:
        await http.post("/_sandbox/stock", json={"sku": "A", "on_hand": 5})
        await http.post("/api/v1/movements", headers=headers, json={"movements": [movement()]})
        cursor = (await http.get("/api/v1/stock", headers=headers)).json()["cursor"]
    first.state.sandbox.close()

    second = create_app(api_key=api_key, db_path=db_path)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://erp"
        ) as http:
            assert (await http.get("/_sandbox/stock")).json() == [{"sku": "A", "on_hand": 4}]
            again = await http.post("/api/v1/movements", headers=headers, json={"movements": [movement()]})
            await http.post("/_sandbox/stock", json={"sku": "B", "on_hand": 1})
            changes = (await http.get("/api/v1/stock", headers=headers, params={"since": cursor})).json()
    finally:
        second.state.sandbox.close()

    assert again.json()["acknowledged"] == ["shop:1:1"]
    assert [i["sku"] for i in changes["items"]] == ["B"]
    assert int(changes["cursor"]) > int(cursor)
