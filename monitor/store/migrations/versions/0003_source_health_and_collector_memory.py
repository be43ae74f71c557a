"""source health and collector memory

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 16:36:32.156687
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blind", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("blind_reason", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("blind_since", monitor.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("memory", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.drop_column("memory")
        batch_op.drop_column("blind_since")
        batch_op.drop_column("blind_reason")
        batch_op.drop_column("blind")
