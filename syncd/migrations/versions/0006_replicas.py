"""Replicas on one PostgreSQL: outbox claims (which replica is writing a push) and the hand-off of
SKUs a standby took sales for to the replica that plans and pushes.

Revision ID: 0006_replicas
Revises: 0005_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_replicas"
down_revision = "0005_alerts"
branch_labels = None
depends_on = None

# Written out rather than imported from the models (see 0001_initial).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("push") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "handoff",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("handoff")
    with op.batch_alter_table("push") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
