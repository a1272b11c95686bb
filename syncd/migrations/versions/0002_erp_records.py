"""What ERP connectors without idempotency keys posted (movement key, ERP id, state).

Revision ID: 0002_erp_records
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_erp_records"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written out rather than imported from the models (see 0001_initial).
    op.create_table(
        "erp_record",
        sa.Column("erp", sa.String(), nullable=False, primary_key=True),
        sa.Column("key", sa.String(), nullable=False, primary_key=True),
        sa.Column("erp_id", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erp_record")
