"""New rows written at once, each by one INSERT .. RETURNING id, then held by the session
as if read back.

A transaction that needs the id of each row it adds (a page's case events and alerts
name their dedup keys and outbox rows after them) would otherwise run the unit of work
once per row: a flush per row costs several times the INSERT itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql import Executable
from sqlmodel import Session, SQLModel

from monitor.store.sql import dialect_insert

_STATEMENTS: dict[tuple[str, str, str | None], Executable] = {}


def table_of(model: type[SQLModel] | SQLModel) -> Table:
    table = model.__table__  # type: ignore[union-attr]
    assert isinstance(table, Table)
    return table


def _statement(session: Session, table: Table, skip_conflict_on: str | None) -> Executable:
    """Built once per table and dialect: building it per row costs more than running it."""
    dialect = session.get_bind().dialect.name
    key = (table.name, dialect, skip_conflict_on)
    if key not in _STATEMENTS:
        stmt = dialect_insert(session)(table)
        if skip_conflict_on is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=[skip_conflict_on])
        _STATEMENTS[key] = stmt.returning(table.c.id)
    return _STATEMENTS[key]


def insert_now(session: Session, row: Any, *, skip_conflict_on: str | None = None) -> bool:
    """Write `row` (new, its id unset) now, and hold it in the session, unchanged.

    What was added to the session before it is written first (it may be what the row
    refers to), as a flush would. With `skip_conflict_on` (a unique column), a row
    clashing with one already stored is not written and False comes back: the check
    and the write in one statement, so a concurrent transaction writing the same key
    makes this one wait and then skip it.
    """
    if session.new:
        session.flush()
    table = table_of(row)
    values = {c.key: getattr(row, c.key) for c in table.columns if not c.primary_key}
    stmt = _statement(session, table, skip_conflict_on)
    new_id = session.connection().execute(stmt, values).scalar_one_or_none()
    if new_id is None:
        return False
    row.id = new_id
    make_transient_to_detached(row)  # as if read back: persistent, nothing left to write
    session.add(row)
    return True
