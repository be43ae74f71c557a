"""a fencing token on each delivery's claim

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ drops columns in place, as 0008 needs already).
    op.add_column(
        "deliveries",
        sa.Column("claim_token", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("deliveries", "claim_token")
