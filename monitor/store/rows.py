"""New rows written at once, each by one INSERT .. RETURNING id, then held by the session
as if read back; or written later, together, when nothing needs their ids at once.

A transaction that needs the id of each row it adds (a page's case events and alerts
name their dedup keys and outbox rows after them) would otherwise run the unit of work
once per row: a flush per row costs several times the INSERT itself. A page's case
events and alerts are mostly needed only by what is written after them (a join's reply
names its event, an outbox row its alert): those wait and go out in one INSERT per table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.orm import ORMExecuteState, SessionTransaction, make_transient_to_detached
from sqlalchemy.sql import Executable, visitors
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
    if table.name in _LATER_TABLES:  # the rows waiting come first, for their ids' order
        write_later(session)
    values = {c.key: getattr(row, c.key) for c in table.columns if not c.primary_key}
    stmt = _statement(session, table, skip_conflict_on)
    new_id = session.connection().execute(stmt, values).scalar_one_or_none()
    if new_id is None:
        return False
    row.id = new_id
    make_transient_to_detached(row)  # as if read back: persistent, nothing left to write
    session.add(row)
    return True


# Rows written later, in order, by one multi-row INSERT per table: a page's case events
# and alerts, whose ids nothing needs at once (see `insert_later`).
_LATER = "koubei.rows.later"
_LATER_TABLES = ("case_events", "alerts")  # the order they are written in: alerts name events


@dataclass
class _Later:
    row: Any
    skip_conflict_on: str | None
    # Called before the row's values are read (an alert's dedup key names an event written
    # just before it), then once it is written or skipped (True: written, its id set).
    ready: Callable[[], None] | None
    done: Callable[[bool], None] | None


def insert_later(
    session: Session,
    row: Any,
    *,
    skip_conflict_on: str | None = None,
    ready: Callable[[], None] | None = None,
    done: Callable[[bool], None] | None = None,
) -> None:
    """Write `row` with the transaction's other later rows of its table, in order.

    The rows of a table go out together (`write_later`) before anything reads the table
    through the session, before a row of it is written at once (`insert_now`), and
    before the commit; a rollback drops them. Their ids are those one INSERT each would
    have given: the rows are written in the order they came, and nothing else writes the
    table in between within the transaction.
    """
    table = table_of(row)
    if table.name not in _LATER_TABLES:
        raise ValueError(f"insert_later: {table.name} rows are written at once")
    later = session.info.get(_LATER)
    if later is None:
        later = session.info[_LATER] = {name: [] for name in _LATER_TABLES}
        if not event.contains(session, "before_commit", write_later):
            event.listen(session, "before_commit", write_later)
            event.listen(session, "after_transaction_end", _drop_later)
            event.listen(session, "do_orm_execute", _before_reading)
    later[table.name].append(_Later(row, skip_conflict_on, ready, done))


def is_later(session: Session, row: Any) -> bool:
    """Whether `row` waits to be written by `write_later`."""
    later = session.info.get(_LATER)
    if not later:
        return False
    return any(w.row is row for w in later.get(table_of(row).name, ()))


def write_later(session: Session) -> None:
    """Write the rows `insert_later` holds, a table at a time, events before alerts."""
    later = session.info.pop(_LATER, None)
    if not later:
        return
    for name in _LATER_TABLES:
        waiting: list[_Later] = later[name]
        if waiting:
            _write(session, waiting)


def _write(session: Session, waiting: list[_Later]) -> None:
    for w in waiting:
        if w.ready is not None:
            w.ready()
    table = table_of(waiting[0].row)
    skip = waiting[0].skip_conflict_on
    assert all(w.skip_conflict_on == skip for w in waiting)
    values = [
        {c.key: getattr(w.row, c.key) for c in table.columns if not c.primary_key} for w in waiting
    ]
    stmt: Any = dialect_insert(session)(table)
    if skip is None:
        # The rows are given their ids in the order of the VALUES, so the ids sorted are
        # the rows' in order. (sort_by_parameter_order would make SQLAlchemy send SQLite
        # one statement per row.)
        result = session.connection().execute(stmt.returning(table.c.id), values)
        ids: list[int | None] = [int(i) for i in sorted(result.scalars().all())]
    else:
        # A row skipped for its key returns nothing: the rows are matched by that key.
        result = session.connection().execute(
            stmt.on_conflict_do_nothing(index_elements=[skip]).returning(table.c.id, table.c[skip]),
            values,
        )
        by_key = {key: int(id_) for id_, key in result.all()}
        ids = [by_key.get(v[skip]) for v in values]
    for w, new_id in zip(waiting, ids, strict=True):
        if new_id is not None:
            w.row.id = new_id
            make_transient_to_detached(w.row)  # as if read back, as insert_now leaves it
            session.add(w.row)
        if w.done is not None:
            w.done(new_id is not None)


def _drop_later(session: Session, transaction: SessionTransaction) -> None:
    # A flush's subtransaction is not the end: only the outermost transaction's is.
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_LATER, None)


def _before_reading(state: ORMExecuteState) -> None:
    """A statement of the session that reads a table with rows waiting: written first."""
    later = state.session.info.get(_LATER)
    if not later or not any(later.values()):
        return
    waiting = {name for name, rows in later.items() if rows}
    if waiting & _tables_in(state.statement):
        session = state.session
        assert isinstance(session, Session)
        write_later(session)


def _tables_in(stmt: Any) -> set[str]:
    return {el.name for el in visitors.iterate(stmt) if isinstance(el, Table)}
