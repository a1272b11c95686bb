"""The engine: moves data between the connectors and the ledger and asks the core what to push.

One module per job: intake (webhooks, order polls, the fast path), planner (targets and pushes),
sender and slices (the per-channel senders and their writes), reconcile, settlement (the ERP),
sold_out (second looks), demand (sales rates, thresholds), health (connectors), reports (cycles,
propagation). engine.py wires them together.
"""

from syncd.engine.engine import Engine, utcnow
from syncd.engine.health import ConnectorHealth
from syncd.engine.intake import WEBHOOK_DEDUPE_TTL
from syncd.engine.planner import LowStock, Plan
from syncd.engine.reports import CycleReport

__all__ = ["WEBHOOK_DEDUPE_TTL", "ConnectorHealth", "CycleReport", "Engine", "LowStock", "Plan", "utcnow"]
