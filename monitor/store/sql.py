"""SQL that differs by dialect, kept in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.store.tables import SourceStateRow, VerdictRow


def dialect_insert(session: Session) -> Any:
    """`insert` with ON CONFLICT support for the session's database (both dialects have it)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def lock_source_state(session: Session, source: str) -> SourceStateRow:
    """The source's state row, created if missing, locked for this transaction.

    Concurrent first runs would both try to create it: ON CONFLICT DO NOTHING
    lets one win quietly, and FOR UPDATE makes the other wait its turn.
    """
    table = SourceStateRow.__table__  # type: ignore[attr-defined]
    session.execute(
        dialect_insert(session)(table)
        .values(source=source, consecutive_failures=0, last_run_complete=False)
        .on_conflict_do_nothing(index_elements=["source"])
    )
    return session.get_one(SourceStateRow, source, with_for_update=True)


def latest_verdict_only() -> Any:
    """A WHERE clause keeping each post's newest verdict (an edited post is graded again)."""
    newer = aliased(VerdictRow)  # its own FROM: no correlation with the outer query's verdicts
    return ~(
        select(col(newer.id))
        .where(col(newer.post_id) == col(VerdictRow.post_id), col(newer.id) > col(VerdictRow.id))
        .exists()
    )
