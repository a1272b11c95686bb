"""Alert conditions and their notification state.

Revision ID: 0005_alerts
Revises: 0004_history
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_alerts"
down_revision = "0004_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written out rather than imported from the models (see 0001_initial).
    op.create_table(
        "alert",
        sa.Column("key", sa.String(), nullable=False, primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsent", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert")
