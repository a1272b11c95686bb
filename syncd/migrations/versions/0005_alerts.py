"""Alert conditions and their notification state.

Revision ID: 0005_alerts
Revises: 0004_history
"""

from __future__ import annotations

revision = "0005_alerts"
down_revision = "0004_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
