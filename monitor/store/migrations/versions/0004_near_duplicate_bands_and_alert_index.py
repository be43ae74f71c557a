"""near-duplicate bands and alert index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 17:04:51.572413
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "minhash_bands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("band", sa.String(length=16), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("minhash_bands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_minhash_bands_band"), ["band"], unique=False)
        batch_op.create_index(batch_op.f("ix_minhash_bands_post_id"), ["post_id"], unique=False)

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alerts_kind_channel_created", ["kind", "channel_key", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_kind_channel_created")

    with op.batch_alter_table("minhash_bands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_minhash_bands_post_id"))
        batch_op.drop_index(batch_op.f("ix_minhash_bands_band"))

    op.drop_table("minhash_bands")
