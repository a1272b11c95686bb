"""SKU history for the operator's view: stock, reads, pushes and allocation decisions over time.

Revision ID: 0004_history
Revises: 0003_allocation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_history"
down_revision = "0003_allocation"
branch_labels = None
depends_on = None

# Written out rather than imported from the models (see 0001_initial).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "history",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_history_sku_at", "history", ["sku", "at"])
    op.create_index("ix_history_at", "history", ["at"])
    op.create_index("ix_history_kind_at", "history", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_history_kind_at", table_name="history")
    op.drop_index("ix_history_at", table_name="history")
    op.drop_index("ix_history_sku_at", table_name="history")
    op.drop_table("history")
