"""Recording sales in Bling exactly once, although Bling takes no idempotency key.

Per movement key an ErpRecord says what was done: ``sending`` is written before a create, with the
Bling id as soon as one is known, ``posted`` once Bling confirmed, ``reversed`` after a cancellation,
``failed`` when Bling refused or never received the call (nothing to look for). As a sales order,
the order carries the key in ``numeroLoja``: before creating one (and after any create whose answer
was lost) syncd asks Bling for it, so a retry finds the first order instead of making a second.
A bare movement (``POST /estoques``) cannot be looked up: one whose answer was lost stays
unconfirmed (its units keep counting as reserved, the safe side) and is logged for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx
import structlog

from connectors.base import ErpRecord, ErpRecordStore, Movement
from connectors.bling import payloads
from connectors.bling.budget import BRASILIA
from syncd.errors import TransientError

if TYPE_CHECKING:
    from connectors.bling.client import BlingConnector

log = structlog.get_logger(__name__)

CANCEL = ":cancel"
LOOKUP_BATCH = 50  # numerosLojas[] per look-up: well inside a page of 100 and URL limits


def not_applied(exc: TransientError) -> bool:
    """True when the failed call surely changed nothing in Bling (throttled, never connected)."""
    from connectors.bling.client import Throttled

    return isinstance(exc, Throttled) or isinstance(exc.__cause__, httpx.ConnectError)


class Recorder:
    def __init__(self, erp: BlingConnector, records: ErpRecordStore):
        self.erp = erp
        self.records = records
        self.settings = erp.settings
        self._found: dict[str, int | None] = {}

    def _save(self, key: str, erp_id: int | str | None, state: str) -> None:
        value = None if erp_id is None else str(erp_id)
        self.records.save_erp_record(self.erp.name, ErpRecord(key, value, state, self.erp.now()))

    async def record(self, movement: Movement) -> bool:
        """True once Bling holds the movement (now or before); False when refused or unsure."""
        if movement.delta > 0 and movement.key.endswith(CANCEL):
            base = movement.key.removesuffix(CANCEL)
            if self.settings.record_as == "order":
                return await self._reverse_order(base)
            return await self._post_movement(movement, "E", reverses=base)
        if movement.delta >= 0:
            log.warning(
                "bling.movement_not_a_sale", erp=self.erp.name, key=movement.key, delta=movement.delta
            )
            return False
        if self.settings.record_as == "order":
            return await self._order(movement)
        return await self._post_movement(movement, "S")

    # ------------------------------------------------------------------ sales orders
    async def look_up(self, movements: Sequence[Movement]) -> None:
        """Ask Bling at once (50 keys a call) for the orders of a batch's keys that have no Bling
        id on record, so that each sale costs its create and post calls only."""
        self._found = {}
        if self.settings.record_as != "order":
            return
        keys = []
        for movement in movements:
            key = movement.key.removesuffix(CANCEL)
            record = self.records.load_erp_record(self.erp.name, key)
            if record is None or (record.erp_id is None and record.state == "sending"):
                keys.append(key)
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), LOOKUP_BATCH):
            chunk = keys[start : start + LOOKUP_BATCH]
            self._found.update(await self._find_orders(chunk))

    async def _find_orders(self, keys: list[str]) -> dict[str, int | None]:
        params = [*payloads.id_params("numerosLojas[]", keys), ("limite", "100")]
        if self.settings.store_id is not None:
            params.append(("idLoja", str(self.settings.store_id)))
        response = await self.erp.call("GET", "/pedidos/vendas", params=params)
        if response.status_code >= 300:
            raise self.erp.refusal(response)
        found = payloads.orders_by_number(response, self.erp.name)
        answer: dict[str, int | None] = {}
        for key in keys:
            ids = found.get(key, [])
            if len(ids) > 1:
                log.error("bling.duplicate_orders", erp=self.erp.name, key=key, ids=ids)
            answer[key] = ids[0] if ids else None
        return answer

    async def _find_order(self, key: str) -> int | None:
        if key in self._found:
            return self._found.pop(key)  # looked up for this batch; a second use asks again
        return (await self._find_orders([key]))[key]

    async def _order(self, movement: Movement) -> bool:
        key = movement.key
        record = self.records.load_erp_record(self.erp.name, key)
        if record is not None and record.state in ("posted", "reversed"):
            return True
        order_id = int(record.erp_id) if record is not None and record.erp_id else None
        if order_id is None:
            order_id = await self._find_order(key)
        if order_id is None:
            order_id = await self._create_order(movement)
            if order_id is None:
                return False
        self._save(key, order_id, "sending")
        deposit = self.settings.sale_deposit
        path = f"/pedidos/vendas/{order_id}/lancar-estoque" + (f"/{deposit}" if deposit is not None else "")
        try:
            response = await self.erp.call("POST", path, write=True)
        except TransientError as exc:
            # Posting an order's stock twice posts it once: the next try simply asks again.
            log.warning("bling.post_stock_unsure", erp=self.erp.name, key=key, order=order_id, error=str(exc))
            return False
        if response.status_code >= 300:
            log.warning(
                "erp.movement_rejected",
                connector=self.erp.name,
                key=key,
                sku=movement.sku,
                reason=str(payloads.failure(response)),
            )
            return False
        self._save(key, order_id, "posted")
        return True

    async def _create_order(self, movement: Movement) -> int | None:
        product_id = await self.erp.product_id(movement.sku)
        if product_id is None:
            log.warning(
                "erp.movement_rejected",
                connector=self.erp.name,
                key=movement.key,
                sku=movement.sku,
                reason="no Bling product has this code",
            )
            return None
        today = self.erp.now().astimezone(BRASILIA).date().isoformat()
        body: dict[str, object] = {
            "numeroLoja": movement.key,
            "data": today,
            "dataSaida": today,
            "dataPrevista": today,
            "contato": {"id": self.settings.contact_id},
            "itens": [
                {
                    "codigo": movement.sku,
                    "produto": {"id": product_id},
                    "quantidade": -movement.delta,
                    "valor": 0,
                    "valorLista": 0,
                    "descricao": movement.sku,
                }
            ],
            "parcelas": [],
            "observacoesInternas": f"syncd {movement.reason} {movement.reference}".strip(),
        }
        if self.settings.store_id is not None:
            body["loja"] = {"id": self.settings.store_id}
        self._save(movement.key, None, "sending")
        try:
            response = await self.erp.call("POST", "/pedidos/vendas", write=True, json=body)
        except TransientError as exc:
            if not_applied(exc):
                self._save(movement.key, None, "failed")
                raise
            log.warning("bling.create_unsure", erp=self.erp.name, key=movement.key, error=str(exc))
            return None  # the record stays "sending": the next try looks for the order first
        if response.status_code >= 300:
            self._save(movement.key, None, "failed")
            log.warning(
                "erp.movement_rejected",
                connector=self.erp.name,
                key=movement.key,
                sku=movement.sku,
                reason=str(payloads.failure(response)),
            )
            return None
        order_id = payloads.created_id(response, self.erp.name)
        self._save(movement.key, order_id, "sending")
        return order_id

    async def _reverse_order(self, key: str) -> bool:
        record = self.records.load_erp_record(self.erp.name, key)
        if record is not None and record.state == "reversed":
            return True
        order_id = int(record.erp_id) if record is not None and record.erp_id else None
        if order_id is None and (record is None or record.state != "failed"):
            order_id = await self._find_order(key)
        if order_id is None:
            self._save(key, None, "reversed")  # nothing was ever recorded: nothing to undo
            return True
        try:
            response = await self.erp.call("POST", f"/pedidos/vendas/{order_id}/estornar-estoque", write=True)
        except TransientError as exc:
            log.warning("bling.reverse_unsure", erp=self.erp.name, key=key, order=order_id, error=str(exc))
            return False
        if response.status_code == 404:
            log.warning("bling.reversed_order_gone", erp=self.erp.name, key=key, order=order_id)
        elif response.status_code >= 300:
            # Stock not posted (any more): a first reversal whose answer was lost, or never posted.
            log.info(
                "bling.reverse_nothing_posted",
                erp=self.erp.name,
                key=key,
                reason=str(payloads.failure(response)),
            )
        self._save(key, order_id, "reversed")
        return True

    # ------------------------------------------------------------------ bare movements
    async def _post_movement(self, movement: Movement, operation: str, reverses: str | None = None) -> bool:
        key = movement.key
        record = self.records.load_erp_record(self.erp.name, key)
        if record is not None and record.state == "posted":
            return True
        if record is not None and record.state == "sending":
            log.error(
                "bling.movement_unconfirmed",
                erp=self.erp.name,
                key=key,
                sku=movement.sku,
                action="check the product's stock history in Bling for this key",
            )
            return False
        if reverses is not None:
            original = self.records.load_erp_record(self.erp.name, reverses)
            if original is None or original.state != "posted":
                self._save(key, None, "posted")  # the sale never reached Bling: nothing to undo
                return True
        product_id = await self.erp.product_id(movement.sku)
        if product_id is None:
            log.warning(
                "erp.movement_rejected",
                connector=self.erp.name,
                key=key,
                sku=movement.sku,
                reason="no Bling product has this code",
            )
            return False
        body = {
            "produto": {"id": product_id},
            "deposito": {"id": self.settings.sale_deposit},
            "operacao": operation,
            "quantidade": abs(movement.delta),
            "observacoes": f"syncd {key}",
        }
        self._save(key, None, "sending")
        try:
            response = await self.erp.call("POST", "/estoques", write=True, json=body)
        except TransientError as exc:
            if not_applied(exc):
                self._save(key, None, "failed")
                raise
            log.error(
                "bling.movement_unconfirmed", erp=self.erp.name, key=key, sku=movement.sku, error=str(exc)
            )
            return False
        if response.status_code >= 300:
            self._save(key, None, "failed")
            log.warning(
                "erp.movement_rejected",
                connector=self.erp.name,
                key=key,
                sku=movement.sku,
                reason=str(payloads.failure(response)),
            )
            return False
        self._save(key, payloads.created_id(response, self.erp.name), "posted")
        if reverses is not None:
            self._save(reverses, None, "reversed")
        return True
