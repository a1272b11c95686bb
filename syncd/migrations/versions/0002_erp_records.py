"""What ERP connectors without idempotency keys posted (movement key, ERP id, state).

Revision ID: 0002_erp_records
Revises: 0001_initial
"""

from __future__ import annotations

revision = "0002_erp_records"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
