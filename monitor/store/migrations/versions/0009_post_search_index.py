"""full-text search over posts: FTS5 trigram (SQLite), pg_trgm GIN index (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from monitor.store import search

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        search.install_sqlite(conn)
    else:
        search.install_postgresql(conn)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        search.uninstall_sqlite(conn)
    else:
        search.uninstall_postgresql(conn)
