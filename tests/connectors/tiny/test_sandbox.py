"""The Tiny sandbox through its HTTP API and hooks: Tiny's paths, envelopes, paging, tokens, limits."""

from __future__ import annotations

import httpx
import pytest

from connectors.tiny.sandbox import create_app
from connectors.tiny.sandbox_account import Account
from tests.connectors.tiny.support import BASE, CLIENT_ID, CLIENT_SECRET, REDIRECT, FakeTime

API = "/public-api/v3"
TOKEN = "/realms/tiny/protocol/openid-connect/token"


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    code = (
        await client.post("/_sandbox/oauth/code", json={"client_id": CLIENT_ID, "redirect_uri": REDIRECT})
    ).json()
    answer = await client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": code["code"],
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
async def api(hooks: httpx.AsyncClient) -> tuple[httpx.AsyncClient, dict[str, str]]:
    return hooks, await bearer(hooks)


async def test_the_api_wants_a_bearer_token(hooks) -> None:
    """Without a valid access token the API answers 401 in Tiny's envelope."""
    answer = await hooks.get(f"{API}/produtos")
    assert answer.status_code == 401 and "mensagem" in answer.json()


async def test_products_page_with_limit_offset_and_total(api) -> None:
    """GET /produtos pages with limit/offset and reports paginacao.total; codigo filters exactly."""
    client, auth = api
    await client.post(
        "/_sandbox/seed", json={"items": [{"sku": f"P{n:03d}", "quantity": 1} for n in range(150)]}
    )

    first = (await client.get(f"{API}/produtos", params={"limit": 100}, headers=auth)).json()
    second = (await client.get(f"{API}/produtos", params={"limit": 100, "offset": 100}, headers=auth)).json()
    exact = (await client.get(f"{API}/produtos", params={"codigo": "P007"}, headers=auth)).json()

    assert len(first["itens"]) == 100 and len(second["itens"]) == 50
    assert first["paginacao"] == {"limit": 100, "offset": 0, "total": 150}
    assert [i["sku"] for i in exact["itens"]] == ["P007"]
    bad = await client.get(f"{API}/produtos", params={"limit": 500}, headers=auth)
    assert bad.status_code == 400 and "limit" in bad.json()["mensagem"]


async def test_an_order_reserves_and_posting_moves_the_stock(api) -> None:
    """Creating an order reserves (disponivel drops, saldo stays); posting it lowers saldo and
    frees the reservation; cancelling returns the units."""
    client, auth = api
    await client.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
    product = (await client.get(f"{API}/produtos", headers=auth)).json()["itens"][0]["id"]
    order = {
        "idContato": 1,
        "ecommerce": {"numeroPedidoEcommerce": "X-1"},
        "itens": [{"produto": {"id": product}, "quantidade": 3, "valorUnitario": 0}],
    }

    created = (await client.post(f"{API}/pedidos", json=order, headers=auth)).json()
    reserved = (await client.get(f"{API}/estoque/{product}", headers=auth)).json()
    await client.post(f"{API}/pedidos/{created['id']}/lancar-estoque", headers=auth)
    posted = (await client.get(f"{API}/estoque/{product}", headers=auth)).json()
    await client.put(f"{API}/pedidos/{created['id']}/situacao", json={"situacao": 2}, headers=auth)
    cancelled = (await client.get(f"{API}/estoque/{product}", headers=auth)).json()

    assert (reserved["saldo"], reserved["reservado"], reserved["disponivel"]) == (10, 3, 7)
    assert (posted["saldo"], posted["reservado"], posted["disponivel"]) == (7, 0, 7)
    assert (cancelled["saldo"], cancelled["disponivel"]) == (10, 10)


async def test_a_repeated_ecommerce_number_makes_a_second_order(api) -> None:
    """Like Tiny, the sandbox does not dedupe numeroPedidoEcommerce: the look-up is the client's job."""
    client, auth = api
    await client.post("/_sandbox/seed", json={"items": [{"sku": "A", "quantity": 10}]})
    product = (await client.get(f"{API}/produtos", headers=auth)).json()["itens"][0]["id"]
    order = {
        "idContato": 1,
        "ecommerce": {"numeroPedidoEcommerce": "X-1"},
        "itens": [{"produto": {"id": product}, "quantidade": 1}],
    }

    await client.post(f"{API}/pedidos", json=order, headers=auth)
    await client.post(f"{API}/pedidos", json=order, headers=auth)
    found = (await client.get(f"{API}/pedidos", params={"numeroPedidoEcommerce": "X-1"}, headers=auth)).json()

    assert found["paginacao"]["total"] == 2


async def test_an_invalid_order_names_each_field(api) -> None:
    """A bad order is refused with 400, mensagem and one detalhes entry per field at fault."""
    client, auth = api
    answer = await client.post(
        f"{API}/pedidos", json={"itens": [{"produto": {"id": 5}, "quantidade": 1}]}, headers=auth
    )

    assert answer.status_code == 400
    fields = {d["campo"] for d in answer.json()["detalhes"]}
    assert fields == {"idContato", "itens[0].produto.id"}


async def test_the_minute_limit_answers_429_with_the_reset() -> None:
    """Past the account's requests a minute: 429 with X-RateLimit-Reset, then room in the next minute."""
    clock = FakeTime(start=1_800_000_000.0)
    app = create_app(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, requests_per_minute=3, account=Account(clock=clock)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as client:
        auth = await bearer(client)
        statuses = [(await client.get(f"{API}/produtos", headers=auth)).status_code for _ in range(4)]
        last = await client.get(f"{API}/produtos", headers=auth)
        clock.now += float(last.headers["x-ratelimit-reset"])
        again = await client.get(f"{API}/produtos", headers=auth)

    assert statuses == [200, 200, 200, 429]
    assert last.status_code == 429 and last.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(last.headers["x-ratelimit-reset"]) <= 60
    assert again.status_code == 200


async def test_refresh_rotates_and_old_refresh_tokens_stay_valid_unless_revoked(hooks) -> None:
    """Each refresh issues a new refresh token; the used one still works (Keycloak's default) until
    the sandbox is told to revoke used tokens."""
    code = (
        await hooks.post("/_sandbox/oauth/code", json={"client_id": CLIENT_ID, "redirect_uri": REDIRECT})
    ).json()
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    first = (
        await hooks.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code["code"],
                "redirect_uri": REDIRECT,
                **creds,
            },
        )
    ).json()

    async def refresh(token: str) -> httpx.Response:
        return await hooks.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token, **creds})

    second = (await refresh(first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await refresh(first["refresh_token"])).status_code == 200
    await hooks.post("/_sandbox/oauth/settings", json={"revoke_used": True})
    assert (await refresh(second["refresh_token"])).status_code == 200
    refused = await refresh(second["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_faults_reject_unknown_names(hooks) -> None:
    """POST /_sandbox/faults names the valid faults when given an unknown one."""
    answer = await hooks.post("/_sandbox/faults", json={"explode": 1})
    assert answer.status_code == 400 and "timeout_after_write_rate" in answer.json()["error"]


async def test_the_stock_hook_validates_its_body(hooks) -> None:
    """A bad /_sandbox/stock body is refused with a message naming the field."""
    answer = await hooks.post("/_sandbox/stock", json={"sku": "A", "quantity": "ten"})
    assert answer.status_code == 400 and "quantity" in answer.json()["error"]
