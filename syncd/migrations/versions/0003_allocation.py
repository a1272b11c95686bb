"""The allocation ledger: exposure per listing, push states, unaccounted units per SKU.

Revision ID: 0003_allocation
Revises: 0002_erp_records
"""

from __future__ import annotations

revision = "0003_allocation"
down_revision = "0002_erp_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
