"""The initial ledger: stock, listings, order lines, outbox, drift, cursors, runs, dedupe keys, leases,
tokens.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# Written out rather than imported from the models: a migration must keep creating what it
# created on the day it was written, whatever the models become.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, primary_key: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=False, primary_key=primary_key)


def _int(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table("sku", _str("sku", primary_key=True), _int("on_hand"), _time("read_at"))
    op.create_table(
        "listing",
        _str("channel", primary_key=True),
        _str("sku", primary_key=True),
        _str("ref"),
        _int("last_pushed", nullable=True),
        _time("pushed_at", nullable=True),
        _int("sold_since_push"),
        _int("observed", nullable=True),
        _time("observed_at", nullable=True),
        _str("status"),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_table(
        "order_line",
        _id(),
        _str("channel"),
        _str("order_id"),
        _str("line_key"),
        _str("sku"),
        _int("quantity"),
        _str("state"),
        _time("created_at"),
        _time("updated_at"),
        _time("acked_at", nullable=True),
        sa.UniqueConstraint("channel", "order_id", "line_key", name="uq_order_line_key"),
    )
    op.create_index("ix_order_line_state_sku", "order_line", ["state", "sku"])
    op.create_table(
        "push",
        _id(),
        _str("channel"),
        _str("sku"),
        _int("target"),
        _int("compare", nullable=True),
        _str("reason"),
        _str("state"),
        _int("attempts"),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("last_error", sa.Text(), nullable=False),
    )
    op.create_index("ix_push_state", "push", ["state"])
    op.create_index("ix_push_channel_sku", "push", ["channel", "sku"])
    op.create_table(
        "drift",
        _id(),
        _time("at"),
        _str("channel"),
        _str("sku"),
        _int("expected", nullable=True),
        _int("observed"),
        _str("cause"),
        _int("correction", nullable=True),
    )
    op.create_index("ix_drift_at", "drift", ["at"])
    op.create_table("cursor", _str("name", primary_key=True), sa.Column("value", sa.Text(), nullable=False))
    op.create_table(
        "run",
        _id(),
        _str("kind"),
        _time("started_at"),
        _time("finished_at", nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_run_started_at", "run", ["started_at"])
    op.create_table("webhook_seen", _str("key", primary_key=True), _time("seen_at"), _time("expires_at"))
    op.create_index("ix_webhook_seen_expires_at", "webhook_seen", ["expires_at"])
    op.create_table("lease", _str("name", primary_key=True), _str("holder"), _time("expires_at"))
    op.create_table(
        "token",
        _str("name", primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        _time("expires_at", nullable=True),
    )


def downgrade() -> None:
    tables = (
        "token",
        "lease",
        "webhook_seen",
        "run",
        "cursor",
        "drift",
        "push",
        "order_line",
        "listing",
        "sku",
    )
    for table in tables:
        op.drop_table(table)
