"""slack threads, heartbeats, replay guard

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:52:51.359604
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("started_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("beat_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "slack_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("received_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    with op.batch_alter_table("slack_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_requests_received_at"), ["received_at"], unique=False
        )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_group_id"), ["group_id"], unique=False)
        batch_op.create_foreign_key("fk_alerts_group_id", "alerts", ["group_id"], ["id"])

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_channel_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("slack_channel", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("slack_ts", sa.String(length=32), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("method", sa.String(length=8), nullable=False, server_default="post")
        )
        batch_op.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_deliveries_case_id"), ["case_id"], unique=False)
        batch_op.create_foreign_key("fk_deliveries_case_id", "cases", ["case_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_case_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_deliveries_case_id"))
        batch_op.drop_column("case_id")
        batch_op.drop_column("method")

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("slack_ts")
        batch_op.drop_column("slack_channel")
        batch_op.drop_column("slack_channel_name")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_alerts_group_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_alerts_group_id"))
        batch_op.drop_column("group_id")

    with op.batch_alter_table("slack_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_requests_received_at"))

    op.drop_table("slack_requests")
    op.drop_table("heartbeats")
