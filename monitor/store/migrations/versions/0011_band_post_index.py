"""near-duplicate bands indexed by (band, post_id)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The newest posts of a band are read from this index alone, so a page's lookup stays
    # bounded however many posts share its bands; it also serves every lookup by band,
    # so the single-column index goes (one index less to write per stored band).
    op.create_index("ix_minhash_bands_band_post_id", "minhash_bands", ["band", "post_id"])
    op.drop_index("ix_minhash_bands_band", table_name="minhash_bands")


def downgrade() -> None:
    op.create_index("ix_minhash_bands_band", "minhash_bands", ["band"])
    op.drop_index("ix_minhash_bands_band_post_id", table_name="minhash_bands")
