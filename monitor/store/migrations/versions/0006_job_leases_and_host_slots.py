"""job leases and shared per-host request slots

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 20:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from monitor.store.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("job", sa.String(length=96), nullable=False),
        sa.Column("holder", sa.String(length=96), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("job"),
    )
    op.create_table(
        "host_slots",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("next_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )


def downgrade() -> None:
    op.drop_table("host_slots")
    op.drop_table("job_leases")
