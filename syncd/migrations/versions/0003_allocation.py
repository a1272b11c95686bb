"""The allocation ledger: per SKU, its listings' levels, the writes on the wire and the units held.

Revision ID: 0003_allocation
Revises: 0002_erp_records
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_allocation"
down_revision = "0002_erp_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written out rather than imported from the models (see 0001_initial).
    op.create_table(
        "allocation_book",
        sa.Column("sku", sa.String(), nullable=False, primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("holding", sa.String(), nullable=False),
        sa.Column("writing", sa.Integer(), nullable=False),
    )
    op.create_index("ix_allocation_book_writing", "allocation_book", ["writing"])
    # Pending pushes looked up by SKU: planning a SKU costs the same whatever the outbox holds.
    op.create_index("ix_push_sku_state", "push", ["sku", "state"])


def downgrade() -> None:
    op.drop_index("ix_push_sku_state", table_name="push")
    op.drop_table("allocation_book")
