"""Draining the outbox: at-least-once delivery that, in practice, never posts twice.

Each delivery is claimed in its own committed transaction (attempts+1, a lease,
`maybe_sent` set) before anything is sent. If the process dies after Slack took
the message but before we recorded it, the row is still pending with
`maybe_sent`; the next attempt looks for the alert id in the channel first.
A failed delivery stays pending with a backoff: alerts are never dropped.

Order is kept per case (a case's thread reply waits for its message), and at
most `per_channel_per_second` messages go to one channel, as Slack asks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerting.groups import render_group
from monitor.alerting.sinks import Sent, Sink, SinkError
from monitor.clock import Clock
from monitor.config import OutboxConfig
from monitor.domain import AlertKind, DeliveryStatus
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow

log = logging.getLogger(__name__)
_WAIT_FOR_ROOT = timedelta(seconds=15)


@dataclass
class DrainReport:
    sent: int = 0
    found_already_sent: int = 0
    failed: int = 0
    pending: int = 0


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    alert_id: int
    alert_kind: str
    method: str
    channel: str
    case_id: int | None
    attempts: int
    check_first: bool
    created_at: datetime
    message: dict[str, Any]
    thread: tuple[str, str] | None  # (channel id, ts) of the case's message


def _backoff(config: OutboxConfig, attempts: int) -> timedelta:
    return timedelta(seconds=min(config.max_backoff_seconds, 5.0 * 2 ** max(0, attempts - 1)))


def _due(now: datetime, busy: set[str]) -> Any:
    earlier = aliased(DeliveryRow)
    conditions = [
        col(DeliveryRow.status) == DeliveryStatus.PENDING.value,
        col(DeliveryRow.next_attempt_at) <= now,
        or_(col(DeliveryRow.claimed_until).is_(None), col(DeliveryRow.claimed_until) < now),
        # A case's deliveries go in order: its thread replies after its message.
        or_(
            col(DeliveryRow.case_id).is_(None),
            ~exists().where(
                and_(
                    col(earlier.case_id) == col(DeliveryRow.case_id),
                    col(earlier.status) == DeliveryStatus.PENDING.value,
                    col(earlier.id) < col(DeliveryRow.id),
                )
            ),
        ),
    ]
    if busy:
        conditions.append(col(DeliveryRow.channel).not_in(sorted(busy)))
    return and_(*conditions)


def _claim_next(
    engine: Engine, config: OutboxConfig, now: datetime, busy: set[str]
) -> _Claim | None:
    with Session(engine) as session, session.begin():
        query = select(DeliveryRow).where(_due(now, busy)).order_by(col(DeliveryRow.id)).limit(1)
        if engine.dialect.name == "postgresql":
            # Two instances drain one outbox: each takes rows the other has not locked.
            query = query.with_for_update(skip_locked=True)
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        alert = session.get_one(AlertRow, row.alert_id)
        thread = None
        if row.method in ("reply", "update"):
            case = session.get(CaseRow, row.case_id) if row.case_id else None
            if case is None or not case.slack_ts or not case.slack_channel:
                # The case's message is not out yet (it may ride in a group): wait.
                row.next_attempt_at = now + _WAIT_FOR_ROOT
                return _Claim(
                    row.id or 0,
                    row.alert_id,
                    alert.kind,
                    "wait",
                    row.channel,
                    row.case_id,
                    row.attempts,
                    False,
                    row.created_at,
                    {},
                    None,
                )
            thread = (case.slack_channel, case.slack_ts)
        message = dict(alert.payload)
        if alert.kind == AlertKind.GROUP:
            message = render_group(session, alert)
        elif row.method == "update" and row.case_id is not None:
            group = _group_of(session, row.case_id)
            if group is not None:  # the case lives in a group message: edit the whole group
                message = render_group(session, group)
        assert row.id is not None
        claim = _Claim(
            delivery_id=row.id,
            alert_id=row.alert_id,
            alert_kind=alert.kind,
            method=row.method,
            channel=row.channel,
            case_id=row.case_id,
            attempts=row.attempts + 1,
            check_first=row.maybe_sent and row.method in ("post", "reply"),
            created_at=row.created_at,
            message=message,
            thread=thread,
        )
        row.attempts += 1
        row.claimed_until = now + timedelta(seconds=config.lease_seconds)
        # Posts can be looked up by alert id after a lost answer; edits are idempotent.
        row.maybe_sent = row.method in ("post", "reply")
        return claim


def _group_of(session: Session, case_id: int) -> AlertRow | None:
    group_id = (
        session.execute(
            select(col(AlertRow.group_id)).where(
                col(AlertRow.case_id) == case_id, col(AlertRow.group_id).is_not(None)
            )
        )
        .scalars()
        .first()
    )
    return session.get(AlertRow, group_id) if group_id is not None else None


def _finish(engine: Engine, claim: _Claim, sent: Sent, now: datetime) -> None:
    with Session(engine) as session, session.begin():
        row = session.get_one(DeliveryRow, claim.delivery_id)
        row.status = DeliveryStatus.SENT.value
        row.slack_channel = sent.channel_id
        row.slack_ts = sent.ts
        row.sent_at = now
        row.claimed_until = None
        row.last_error = None
        if claim.method != "post":
            return
        # The case's message: later events go into its thread, edits change it.
        if claim.alert_kind == AlertKind.NEW_CASE and claim.case_id is not None:
            cases = [session.get_one(CaseRow, claim.case_id)]
        elif claim.alert_kind == AlertKind.GROUP:
            case_ids = (
                session.execute(
                    select(col(AlertRow.case_id)).where(col(AlertRow.group_id) == claim.alert_id)
                )
                .scalars()
                .all()
            )
            cases = [session.get_one(CaseRow, cid) for cid in case_ids if cid is not None]
        else:
            return
        for case in cases:
            if case.slack_ts is None:
                case.slack_channel_name = claim.channel
                case.slack_channel = sent.channel_id
                case.slack_ts = sent.ts


def _fail(
    engine: Engine, config: OutboxConfig, claim: _Claim, error: SinkError, now: datetime
) -> None:
    with Session(engine) as session, session.begin():
        row = session.get_one(DeliveryRow, claim.delivery_id)
        row.maybe_sent = not error.definite and claim.method in ("post", "reply")
        row.last_error = str(error)[:500]
        row.next_attempt_at = now + _backoff(config, claim.attempts)
        row.claimed_until = None


def _send(sink: Sink, claim: _Claim) -> tuple[Sent, bool]:
    """Deliver one claim; returns what Slack holds and whether it was there already."""
    if claim.method == "file":
        message = claim.message
        return sink.upload(claim.channel, Path(str(message["file"])), str(message["text"])), False
    if claim.method == "update":
        assert claim.thread is not None
        channel_id, ts = claim.thread
        sink.update(channel_id, ts, claim.message)
        return Sent(channel_id, ts), False
    channel, message = claim.channel, claim.message
    if claim.method == "reply":
        assert claim.thread is not None
        channel, message = claim.thread[0], {**message, "thread_ts": claim.thread[1]}
    if claim.check_first:
        found = sink.find(channel, claim.alert_id, claim.created_at)
        if found is not None:
            return found, True
    return sink.post(channel, message, claim.alert_id), False


def drain_outbox(
    engine: Engine,
    sink: Sink,
    config: OutboxConfig,
    clock: Clock,
    limit: int | None = None,
) -> DrainReport:
    """Deliver what is due in outbox order, pacing each channel; returns what happened."""
    report = DrainReport()
    budget = limit if limit is not None else config.batch_size
    interval = timedelta(seconds=1.0 / config.per_channel_per_second)
    next_slot: dict[str, datetime] = {}
    while budget > 0:
        now = clock.now()
        busy = {ch for ch, slot in next_slot.items() if slot > now}
        claim = _claim_next(engine, config, now, busy)
        if claim is None:
            if not busy or not _any_due(engine, now):
                break
            clock.sleep((min(next_slot[ch] for ch in busy) - now).total_seconds())
            continue
        if claim.method == "wait":
            continue
        budget -= 1
        try:
            sent, already = _send(sink, claim)
        except SinkError as exc:
            log.warning(
                "alert %d not delivered (attempt %d): %s", claim.alert_id, claim.attempts, exc
            )
            report.failed += 1
            _fail(engine, config, claim, exc, clock.now())
            continue
        finally:
            next_slot[claim.channel] = clock.now() + interval
        if already:
            log.info("alert %d was already in %s; not posting again", claim.alert_id, claim.channel)
            report.found_already_sent += 1
        else:
            report.sent += 1
        _finish(engine, claim, sent, clock.now())
    report.pending = pending_count(engine)
    return report


def _any_due(engine: Engine, now: datetime) -> bool:
    with Session(engine) as session:
        row = session.execute(select(col(DeliveryRow.id)).where(_due(now, set())).limit(1)).first()
        return row is not None


def pending_count(engine: Engine) -> int:
    with Session(engine) as session:
        rows = session.execute(
            select(col(DeliveryRow.id)).where(
                col(DeliveryRow.status) == DeliveryStatus.PENDING.value
            )
        ).all()
        return len(rows)
