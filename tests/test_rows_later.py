"""A page's case events and alerts written later, together: one INSERT per table, with the
ids, outbox rows and skips that one INSERT per row gave them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlmodel import Session, col

from monitor.domain import AlertKind, Notice
from monitor.store.notices import enqueue_to, remember
from monitor.store.rows import insert_later, insert_now
from monitor.store.tables import AlertRow, CaseEventRow, CaseRow, DeliveryRow

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
TARGETS = [("slack", "#a"), ("wecom", "ops")]


def notice(key: str) -> Notice:
    return Notice(kind=AlertKind.DELIVERY_FAILED, dedup_key=key, route="ops", headline=key)


def outbox(engine: Engine) -> list[tuple[str, str]]:
    """(alert dedup key, sink) of every outbox row, in id order."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(AlertRow.dedup_key), col(DeliveryRow.sink))
            .join(AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
            .order_by(col(DeliveryRow.id))
        ).all()
    return [(k, sink) for k, sink in rows]


def alerts(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return list(s.execute(select(col(AlertRow.dedup_key)).order_by(col(AlertRow.id))).scalars())


@contextmanager
def inserts(engine: Engine, table: str) -> Iterator[list[str]]:
    """The INSERT statements into `table` run meanwhile."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_later_alerts_go_out_in_one_insert_in_the_order_queued(engine: Engine) -> None:
    with inserts(engine, "alerts") as seen, Session(engine) as s, s.begin():
        remember(s)
        for key in ("a", "b", "c"):
            alert = enqueue_to(s, notice(key), NOW, TARGETS, later=True)
            assert alert is not None and alert.id is None  # its id comes with the others'
    assert len(seen) == 1
    assert alerts(engine) == ["a", "b", "c"]
    assert outbox(engine) == [(k, sink) for k in "abc" for sink in ("slack", "wecom")]


def test_an_alert_written_at_once_comes_after_the_later_ones(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        enqueue_to(s, notice("a"), NOW, TARGETS[:1], later=True)
        now = enqueue_to(s, notice("b"), NOW, TARGETS[:1])
        assert now is not None and now.id is not None
        enqueue_to(s, notice("c"), NOW, TARGETS[:1], later=True)
    assert alerts(engine) == ["a", "b", "c"]
    assert outbox(engine) == [("a", "slack"), ("b", "slack"), ("c", "slack")]


def test_a_query_of_the_session_sees_the_alerts_waiting(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        enqueue_to(s, notice("a"), NOW, TARGETS, later=True)
        found = s.execute(select(col(AlertRow.dedup_key))).scalars().all()
        assert found == ["a"]


def test_a_key_taken_meanwhile_is_skipped_with_its_outbox_rows(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        enqueue_to(s, notice("a"), NOW, TARGETS[:1], later=True)
        enqueue_to(s, notice("taken"), NOW, TARGETS, later=True)
        with Session(engine) as other, other.begin():  # another run, first
            enqueue_to(other, notice("taken"), NOW, TARGETS[1:])
    assert alerts(engine) == ["taken", "a"]
    assert outbox(engine) == [("taken", "wecom"), ("a", "slack")]


def test_a_rollback_drops_the_rows_waiting(engine: Engine) -> None:
    with Session(engine) as s:
        with pytest.raises(RuntimeError, match="page failed"), s.begin():
            remember(s)
            enqueue_to(s, notice("lost"), NOW, TARGETS, later=True)
            raise RuntimeError("page failed")
        with s.begin():
            remember(s)
            enqueue_to(s, notice("kept"), NOW, TARGETS[:1], later=True)
    assert alerts(engine) == ["kept"]
    assert outbox(engine) == [("kept", "slack")]


def test_a_reply_named_after_a_later_event_gets_its_id(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        case = CaseRow(
            severity="P2", state="open", source="x", opened_at=NOW, updated_at=NOW, title="t"
        )
        insert_now(s, case)
        case_id = case.id
        assert case_id is not None
        events = [CaseEventRow(case_id=case_id, kind="post_added", at=NOW) for _ in range(3)]
        for e in events:
            insert_later(s, e)
        for e in events:

            def key(e: CaseEventRow = e) -> str:
                return f"case:{case_id}:event:{e.id}"

            enqueue_to(s, notice("placeholder"), NOW, TARGETS[:1], later=True, dedup_key=key)
    with Session(engine) as s:
        ids = list(s.execute(select(col(CaseEventRow.id)).order_by(col(CaseEventRow.id))).scalars())
        rows = s.execute(select(AlertRow).order_by(col(AlertRow.id))).scalars().all()
        assert [(r.dedup_key, r.payload["dedup_key"]) for r in rows] == [
            (f"case:{case_id}:event:{i}", f"case:{case_id}:event:{i}") for i in ids
        ]


def test_a_later_key_needs_a_memo(engine: Engine) -> None:
    with Session(engine) as s, s.begin(), pytest.raises(ValueError, match="memo"):
        enqueue_to(s, notice("x"), NOW, TARGETS, later=True, dedup_key=lambda: "y")
