"""The allocation ledger: exposure per listing, push states, unaccounted units per SKU.

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

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Written out rather than imported from the models (see 0001_initial).
    op.create_table(
        "allocation_level",
        sa.Column("channel", sa.String(), nullable=False, primary_key=True),
        sa.Column("sku", sa.String(), nullable=False, primary_key=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
    )
    op.create_table(
        "allocation_write",
        sa.Column("push_id", _BIG_ID, nullable=False, primary_key=True, autoincrement=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("compare", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
    )
    op.create_index("ix_allocation_write_sku", "allocation_write", ["sku"])
    op.create_table(
        "allocation_part",
        sa.Column("id", _BIG_ID, nullable=False, primary_key=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("push_id", _BIG_ID, nullable=True),
    )
    op.create_index("ix_allocation_part_sku", "allocation_part", ["sku"])
    op.create_index("ix_allocation_part_channel", "allocation_part", ["channel"])


def downgrade() -> None:
    op.drop_table("allocation_part")
    op.drop_table("allocation_write")
    op.drop_table("allocation_level")
