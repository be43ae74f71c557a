"""Under a page's notices memo, alerts' outbox rows are kept and written together: by the
commit, in the order they were queued; a rollback takes them with it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.domain import AlertKind, Notice
from monitor.store.notices import enqueue_to, remember
from monitor.store.tables import AlertRow, DeliveryRow

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
TARGETS = [("slack", "#a"), ("wecom", "ops")]


def notice(key: str) -> Notice:
    return Notice(kind=AlertKind.DELIVERY_FAILED, dedup_key=key, route="ops", headline=key)


def outbox(engine: Engine) -> list[tuple[str, str, str]]:
    """(alert dedup key, sink, channel) of every outbox row, in id order."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(AlertRow.dedup_key), col(DeliveryRow.sink), col(DeliveryRow.channel))
            .join(AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
            .order_by(col(DeliveryRow.id))
        ).all()
    return [tuple(r) for r in rows]


def test_kept_rows_are_written_by_the_commit_in_order(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        assert enqueue_to(s, notice("a"), NOW, TARGETS) is not None
        assert enqueue_to(s, notice("b"), NOW, TARGETS[:1]) is not None
    assert outbox(engine) == [("a", "slack", "#a"), ("a", "wecom", "ops"), ("b", "slack", "#a")]


def test_a_rollback_takes_the_kept_rows_with_it(engine: Engine) -> None:
    with Session(engine) as s:
        with pytest.raises(RuntimeError, match="page failed"), s.begin():
            remember(s)
            enqueue_to(s, notice("lost"), NOW, TARGETS)
            raise RuntimeError("page failed")
        # The same session's next transaction (no memo: written at once) writes its own
        # rows only, not the ones the rollback took back.
        with s.begin():
            enqueue_to(s, notice("kept"), NOW, TARGETS[:1])
        with s.begin():
            remember(s)
            enqueue_to(s, notice("later"), NOW, TARGETS[1:])
    assert outbox(engine) == [("kept", "slack", "#a"), ("later", "wecom", "ops")]


def test_a_savepoint_under_a_memo_is_refused(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        remember(s)
        enqueue_to(s, notice("a"), NOW, TARGETS)
        with pytest.raises(RuntimeError, match="savepoint"), s.begin_nested():
            enqueue_to(s, notice("b"), NOW, TARGETS)
