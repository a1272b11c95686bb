"""The Tiny sandbox's ``/_sandbox`` hooks: stock, seed, orders, OAuth shortcuts, faults, stats."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.sandbox_kit import HOOK_PREFIX, faults_endpoint, read_json_object
from connectors.tiny.sandbox_api import TinySandbox, positive_int
from connectors.tiny.wire import CANCELLED


def _whole(value: Any) -> Any:
    """A float that holds a whole number, as an int (the demo and tests compare with ints)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class SandboxHooks:
    """``/_sandbox`` routes: never authenticated, faulted or rate-limited."""

    def __init__(self, sandbox: TinySandbox):
        self.s = sandbox
        self.account = sandbox.account

    def routes(self) -> list[Route]:
        return [
            Route(HOOK_PREFIX + "/stock", self.stock, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/seed", self.seed, methods=["POST"]),
            Route(HOOK_PREFIX + "/orders", self.orders, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/oauth/code", self.code, methods=["POST"]),
            Route(HOOK_PREFIX + "/oauth/expire", self.expire, methods=["POST"]),
            Route(HOOK_PREFIX + "/oauth/settings", self.oauth_settings, methods=["POST"]),
            Route(HOOK_PREFIX + "/faults", self.faults, methods=["GET", "POST"]),
            Route(HOOK_PREFIX + "/stats", self.stats, methods=["GET"]),
        ]

    def _stock_rows(self) -> list[dict[str, Any]]:
        rows = []
        for p in sorted(self.account.products.values(), key=lambda p: p.sku):
            b = self.account.balance(p)
            rows.append(
                {
                    "sku": p.sku,
                    "id": p.id,
                    "on_hand": _whole(b["disponivel"]),
                    "saldo": b["saldo"],
                    "reservado": b["reservado"],
                    "depositos": b["depositos"],
                }
            )
        return rows

    def _set(self, entries: Any, quantity_key: str) -> int:
        entries = entries if isinstance(entries, list) else [entries]
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("sku"), str) or not e["sku"]:
                raise ValueError(f"[{i}] must be an object with a non-empty 'sku'")
            qty = e.get(quantity_key, e.get("on_hand"))  # on_hand: the name the demo's hooks use
            if not isinstance(qty, int | float) or isinstance(qty, bool):
                raise ValueError(f"[{i}].{quantity_key} must be a number")
            deposit = e.get("deposit")
            if deposit is not None and not positive_int(deposit):
                raise ValueError(f"[{i}].deposit must be a deposit id")
            self.account.set_stock(e["sku"], float(qty), deposit)
        return len(entries)

    async def stock(self, request: Request) -> Response:
        """GET: every SKU's balance (``on_hand`` is disponivel). POST ``{sku, quantity, deposit?}``
        (or a list): set saldo, as an edit in Tiny would."""
        if request.method == "POST":
            try:
                self._set(await request.json(), "quantity")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self._stock_rows())

    async def seed(self, request: Request) -> Response:
        """``{"items": [{sku, quantity, deposit?}], "deposits": [{id, nome, desconsiderar?}]}``."""
        try:
            body = await read_json_object(request)
            for i, d in enumerate(body.get("deposits") or []):
                if (
                    not isinstance(d, dict)
                    or not positive_int(d.get("id"))
                    or not isinstance(d.get("nome"), str)
                ):
                    raise ValueError(f"deposits[{i}] must be {{'id': int, 'nome': str}}")
                self.account.add_deposit(d["id"], d["nome"], d.get("desconsiderar") is True)
            count = self._set(body.get("items") or [], "quantity")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"seeded": count}, status_code=201)

    async def orders(self, request: Request) -> Response:
        """GET: every order. POST ``{sku, quantity, numeroPedidoEcommerce?}``: an order another
        sales channel integrated with Tiny creates (it reserves stock)."""
        if request.method == "POST":
            try:
                body = await read_json_object(request)
                product = self.account.product_by_sku(str(body.get("sku")))
                qty = body.get("quantity", 1)
                if product is None:
                    raise ValueError("unknown sku")
                if not isinstance(qty, int) or qty < 1:
                    raise ValueError("'quantity' must be a positive integer")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            order = self.account.create_order(
                1, [(product.id, float(qty))], body.get("numeroPedidoEcommerce"), None, None
            )
            return JSONResponse(self.account.order_json(order), status_code=201)
        return JSONResponse([self.account.order_json(o) for o in self.account.orders.values()])

    async def code(self, request: Request) -> Response:
        """An authorisation code, as if the seller had approved the app: ``{client_id, redirect_uri}``."""
        body = await read_json_object(request)
        client = body.get("client_id")
        if client not in self.account.tokens.clients:
            return JSONResponse({"error": "unknown client_id"}, status_code=400)
        return JSONResponse({"code": self.account.issue_code(str(client), str(body.get("redirect_uri", "")))})

    async def expire(self, request: Request) -> Response:
        return JSONResponse({"expired": self.account.expire_access_tokens()})

    async def oauth_settings(self, request: Request) -> Response:
        """``{revoke_used?: bool, access_lifetime?: s, refresh_lifetime?: s}``."""
        body = await read_json_object(request)
        t = self.account.tokens
        if "revoke_used" in body:
            t.revoke_used = body["revoke_used"] is True
        for name in ("access_lifetime", "refresh_lifetime"):
            if name in body:
                if not positive_int(body[name]):
                    return JSONResponse({"error": f"{name} must be a positive integer"}, status_code=400)
                setattr(t, name, body[name])
        return JSONResponse(
            {
                "revoke_used": t.revoke_used,
                "access_lifetime": t.access_lifetime,
                "refresh_lifetime": t.refresh_lifetime,
            }
        )

    async def faults(self, request: Request) -> Response:
        return await faults_endpoint(request, self.s.faults)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "calls": dict(self.s.calls),
                "faults": asdict(self.s.faults),
                "orders": len(self.account.orders),
                "cancelled": sum(o.situacao == CANCELLED for o in self.account.orders.values()),
            }
        )
