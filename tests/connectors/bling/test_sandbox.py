"""The Bling sandbox by itself: Bling's envelopes, per-account limits, OAuth rules, deposits, hooks."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.bling.sandbox import create_app
from tests.connectors.bling.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()}


async def open_sandbox(**options: object) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = create_app(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, deposits={1: "Geral", 2: "Loja"}, **options
    )  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        code = (await client.post("/_sandbox/oauth/code")).json()["code"]
        token = await client.post(
            "/oauth/token", headers=BASIC, data={"grant_type": "authorization_code", "code": code}
        )
        yield client, {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async for pair in open_sandbox(per_day=50, per_second=1000):
        yield pair


async def test_api_without_a_valid_token_is_401_in_blings_envelope(api) -> None:
    """No token or a wrong one: 401 with error.type invalid_token."""
    client, _ = api
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await client.get("/produtos", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["type"] == "invalid_token"


async def test_daily_limit_answers_429_too_many_requests_per_day() -> None:
    """Past the account's daily requests the API answers Bling's 429 body with period day."""
    async for client, auth in open_sandbox(per_day=2):
        assert (await client.get("/depositos", headers=auth)).status_code == 200
        assert (await client.get("/depositos", headers=auth)).status_code == 200
        over = await client.get("/depositos", headers=auth)
        assert over.status_code == 429
        assert over.json()["error"] | {"message": "", "description": ""} == {
            "type": "TOO_MANY_REQUESTS", "limit": 2, "period": "day", "message": "", "description": ""
        }  # fmt: skip


async def test_per_second_limit_answers_429_per_second() -> None:
    """More requests than the per-second limit at once: the extra one gets 429 with period second."""
    async for client, auth in open_sandbox(per_second=1):
        statuses = [(await client.get("/depositos", headers=auth)) for _ in range(2)]
        assert statuses[0].status_code == 200
        assert statuses[1].status_code == 429 and statuses[1].json()["error"]["period"] == "second"


async def test_refresh_tokens_rotate_and_a_spent_one_is_refused(api) -> None:
    """A refresh answers a new refresh token; the old one is then refused with invalid_grant."""
    client, _ = api
    code = (await client.post("/_sandbox/oauth/code")).json()["code"]
    first = (
        await client.post(
            "/oauth/token", headers=BASIC, data={"grant_type": "authorization_code", "code": code}
        )
    ).json()
    second = await client.post(
        "/oauth/token",
        headers=BASIC,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    again = await client.post(
        "/oauth/token",
        headers=BASIC,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["expires_in"] == 21600
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_grant"


async def test_token_endpoint_blocks_after_twenty_calls_a_minute(api) -> None:
    """The 20th token call in a minute blocks the caller: later calls get 429 even with good credentials."""
    client, _ = api
    for _ in range(19):
        await client.post(
            "/oauth/token", headers=BASIC, data={"grant_type": "refresh_token", "refresh_token": "x"}
        )
    code = (await client.post("/_sandbox/oauth/code")).json()["code"]
    blocked = await client.post(
        "/oauth/token", headers=BASIC, data={"grant_type": "authorization_code", "code": code}
    )
    assert blocked.status_code == 429


async def test_wrong_client_credentials_are_refused(api) -> None:
    """The token endpoint checks the app's Basic credentials."""
    client, _ = api
    bad = {"Authorization": "Basic " + base64.b64encode(b"syncd-test-app:wrong").decode()}
    response = await client.post(
        "/oauth/token", headers=bad, data={"grant_type": "authorization_code", "code": "c"}
    )
    assert response.status_code == 401


async def test_balances_per_deposit_and_the_reservation_of_an_open_order(api) -> None:
    """Saldos show each deposit; an order reserves in the default deposit until its stock is posted."""
    client, auth = api
    await client.post(
        "/_sandbox/stock", json=[{"sku": "MUG", "on_hand": 5}, {"sku": "MUG", "on_hand": 3, "deposit": 2}]
    )
    pid = (await client.get("/produtos", headers=auth)).json()["data"][0]["id"]
    body = {"numeroLoja": "s:1:1", "data": "2026-12-01", "dataSaida": "2026-12-01", "dataPrevista": "2026-12-01",
            "contato": {"id": 1}, "itens": [{"produto": {"id": pid}, "quantidade": 2, "valor": 0, "descricao": "MUG"}],
            "parcelas": []}  # fmt: skip
    order = await client.post("/pedidos/vendas", headers=auth, json=body)
    saldo = (await client.get("/estoques/saldos", headers=auth, params={"idsProdutos[]": pid})).json()[
        "data"
    ][0]
    assert saldo["saldoFisicoTotal"] == 8 and saldo["saldoVirtualTotal"] == 6
    assert saldo["depositos"] == [
        {"id": 1, "saldoFisico": 5, "saldoVirtual": 3},
        {"id": 2, "saldoFisico": 3, "saldoVirtual": 3},
    ]
    posted = await client.post(f"/pedidos/vendas/{order.json()['data']['id']}/lancar-estoque/1", headers=auth)
    one = (await client.get("/estoques/saldos/1", headers=auth, params={"idsProdutos[]": pid})).json()[
        "data"
    ][0]
    assert posted.status_code == 204 and one["saldoFisicoTotal"] == 3 and one["saldoVirtualTotal"] == 3


@pytest.mark.parametrize(
    ("path", "body", "kind"),
    [
        ("/estoques", b"{not json", "INVALID_REQUEST_BODY"),
        (
            "/estoques",
            {"produto": {"id": 1}, "operacao": "S", "quantidade": 1},
            "MISSING_REQUIRED_FIELD_ERROR",
        ),
        (
            "/estoques",
            {"produto": {"id": 1}, "deposito": {"id": 1}, "operacao": "X", "quantidade": 1},
            "VALIDATION_ERROR",
        ),
        ("/pedidos/vendas", {"contato": {"id": 1}}, "MISSING_REQUIRED_FIELD_ERROR"),
    ],
)
async def test_bad_writes_answer_blings_error_envelope(api, path: str, body: object, kind: str) -> None:
    """A malformed write is refused with 400 and error.type naming the problem."""
    client, auth = api
    content = body if isinstance(body, bytes) else None
    response = await client.post(path, headers=auth, content=content, json=None if content else body)
    assert response.status_code == 400 and response.json()["error"]["type"] == kind


async def test_saldos_without_ids_is_refused(api) -> None:
    """idsProdutos[] is required on GET /estoques/saldos, as in Bling."""
    client, auth = api
    response = await client.get("/estoques/saldos", headers=auth)
    assert response.status_code == 400 and response.json()["error"]["type"] == "MISSING_REQUIRED_FIELD_ERROR"


async def test_faults_hit_the_api_never_the_hooks(api) -> None:
    """With every request failing, the API answers 500 SERVER_ERROR while the hooks still work."""
    client, auth = api
    await client.post("/_sandbox/faults", json={"error_rate": 1.0})
    failed = await client.get("/depositos", headers=auth)
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "SERVER_ERROR"
    assert (await client.get("/_sandbox/stock")).status_code == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"sku": "", "on_hand": 1}, "sku"),
        ({"sku": "A", "on_hand": -1}, "on_hand"),
        ([{"sku": "A", "on_hand": 1}, 3], "[1] must be an object"),
        ({"sku": "A", "on_hand": 1, "deposit": 99}, "deposit 99"),
    ],
)
async def test_bad_stock_hook_bodies_are_400_naming_the_problem(api, body: object, expected: str) -> None:
    """The stock hook refuses a bad body with a message naming what was wrong."""
    client, _ = api
    response = await client.post("/_sandbox/stock", json=body)
    assert response.status_code == 400 and expected in response.json()["error"]
