"""Every request the Bling connector sends (in both recording modes) is one Bling's OpenAPI file
describes: the path and method exist, the query parameters are declared and the required ones
present, and JSON bodies carry the fields the schema requires. Skips when the file is absent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import MemoryErpRecordStore, MemoryTokenStore, Movement
from connectors.bling.client import BlingConnector
from connectors.bling.sandbox import create_app
from tests.connectors.bling.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, bling_settings, no_sleep

SPEC_FILE = (
    Path(__file__).resolve().parents[4] / "shared" / "reference" / "bling-openapi" / "bling-openapi-v3.json"
)
# Outside the OpenAPI file (it describes the resource API only): the OAuth endpoint.
OAUTH = {("POST", "/oauth/token")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_FILE.exists():
        pytest.skip(f"Bling's OpenAPI file is not at {SPEC_FILE}")
    loaded: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return loaded


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def required_fields(
    spec: dict[str, Any], schema: dict[str, Any]
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """The required property names of a schema (allOf merged) and its properties."""
    schema = resolve(spec, schema)
    required, props = set(schema.get("required", [])), dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        more, more_props = required_fields(spec, part)
        required |= more
        props |= more_props
    return required, props


def missing(
    spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str, *, post: bool = True
) -> list[str]:
    """Required fields absent from ``value`` (recursing into objects and arrays). Read-only fields and
    those Bling documents as ignored on POST are not required of a request."""
    schema = resolve(spec, schema)
    if schema.get("type") == "array" or "items" in schema:
        return [
            m
            for i, item in enumerate(value or [])
            for m in missing(spec, schema["items"], item, f"{where}[{i}]")
        ]
    required, props = required_fields(spec, schema)
    if not isinstance(value, dict):
        return []
    gaps = []
    for name in sorted(required):
        prop = resolve(spec, props.get(name, {}))
        ignored = prop.get("readOnly") or "Ignorado no método POST" in str(prop.get("description", ""))
        if name not in value and not (post and ignored) and "." not in name:
            gaps.append(f"{where}.{name}")
    for name, item in value.items():
        if name in props:
            gaps += missing(spec, props[name], item, f"{where}.{name}")
    return gaps


def template_of(spec: dict[str, Any], method: str, path: str) -> str | None:
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template
    return None


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner, self.requests = inner, []  # type: ignore[var-annotated]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


async def every_request() -> list[httpx.Request]:
    """Run everything the connector does against the sandbox, in both modes; the requests it sent."""
    app = create_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, per_second=10_000)
    recorder = Recorder(httpx.ASGITransport(app=app))
    tokens = MemoryTokenStore()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as hooks:
        await hooks.post("/_sandbox/stock", json=[{"sku": "MUG", "on_hand": 9}, {"sku": "CAP", "on_hand": 9}])
        for mode in (
            {"record_as": "order", "store_id": 7, "deposits": [1]},
            {"record_as": "movement", "deposits": [1]},
        ):
            erp = BlingConnector(
                bling_settings(**mode),
                transport=recorder,
                tokens=tokens,
                records=MemoryErpRecordStore(),
                sleep=no_sleep,
            )
            try:
                if tokens.load_token("bling:erp") is None:
                    await erp.auth.exchange_code((await hooks.post("/_sandbox/oauth/code")).json()["code"])
                page = await erp.stock_changes(None)
                await erp.stock_changes(page.cursor)
                await erp.read_skus(["MUG", "NEW-ONE"])
                sale = Movement("shop:1:1", "MUG", -1, "sale", "shop:1")
                await erp.record_movements([sale])
                await erp.record_movements([Movement("shop:1:1:cancel", "MUG", 1, "cancellation", "shop:1")])
            finally:
                await erp.aclose()
    return recorder.requests


async def test_every_request_the_connector_sends_is_in_blings_openapi(spec: dict[str, Any]) -> None:
    """Paths, methods, query parameters and required body fields of every request match the OpenAPI file."""
    requests = await every_request()
    problems: list[str] = []
    used: set[tuple[str, str]] = set()
    for request in requests:
        method, path = request.method, request.url.path
        if (method, path) in OAUTH:
            continue
        template = template_of(spec, method, path)
        if template is None:
            problems.append(f"{method} {path}: not in the OpenAPI file")
            continue
        used.add((method, template))
        operation = spec["paths"][template][method.lower()]
        params = [
            resolve(spec, p)
            for p in operation.get("parameters", []) + spec["paths"][template].get("parameters", [])
        ]
        declared = {p["name"] for p in params if p.get("in") == "query"}
        sent = set(request.url.params.keys())
        problems += [
            f"{method} {template}: query parameter {name!r} is not declared" for name in sent - declared
        ]
        problems += [
            f"{method} {template}: required query parameter {p['name']!r} missing"
            for p in params
            if p.get("in") == "query" and p.get("required") and p["name"] not in sent
        ]
        body = operation.get("requestBody")
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            value = json.loads(request.content) if request.content else None
            if value is None and body.get("required"):
                problems.append(f"{method} {template}: body required, none sent")
            elif value is not None:
                problems += [
                    f"{method} {template}: missing {gap}" for gap in missing(spec, schema, value, "body")
                ]
    assert problems == []
    assert used >= {
        ("GET", "/produtos"),
        ("GET", "/estoques/saldos"),
        ("GET", "/pedidos/vendas"),
        ("POST", "/pedidos/vendas"),
        ("POST", "/pedidos/vendas/{idPedidoVenda}/lancar-estoque/{idDeposito}"),
        ("POST", "/pedidos/vendas/{idPedidoVenda}/estornar-estoque"),
        ("POST", "/estoques"),
    }


def test_the_sandbox_serves_only_paths_the_openapi_file_has(spec: dict[str, Any]) -> None:
    """Each API route of the sandbox (hooks and OAuth aside) is a path and method of Bling's OpenAPI file."""
    app = create_app()
    routes = [r for r in app.routes if not r.path.startswith(("/_sandbox", "/oauth"))]  # type: ignore[attr-defined]
    for route in routes:
        template = re.sub(r":int\}", "}", route.path)  # type: ignore[attr-defined]
        for method in route.methods - {"HEAD"}:  # type: ignore[attr-defined]
            assert method.lower() in spec["paths"].get(template, {}), f"{method} {template}"
