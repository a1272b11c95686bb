"""Quarantined orders and stock records; the process that ran each run, so a start can close the
runs a crash left open.

Revision ID: 0007_quarantine
Revises: 0006_replicas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_quarantine"
down_revision = "0006_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written out rather than imported from the models (see 0001_initial).
    op.create_table(
        "quarantine",
        sa.Column("key", sa.String(), nullable=False, primary_key=True),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_quarantine_last_seen_at", "quarantine", ["last_seen_at"])
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_quarantine_last_seen_at", table_name="quarantine")
    op.drop_table("quarantine")
