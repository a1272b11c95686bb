"""SKU history for the operator's view: stock, reads, pushes and allocation decisions over time.

Revision ID: 0004_history
Revises: 0003_allocation
"""

from __future__ import annotations

revision = "0004_history"
down_revision = "0003_allocation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
