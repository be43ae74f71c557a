"""Draining the outbox: at-least-once delivery that, in practice, never posts twice.

Each delivery is claimed in its own committed transaction (attempts+1, a lease,
`maybe_sent` set) before anything is sent. If the process dies after Slack took
the message but before we recorded it, the row is still pending with
`maybe_sent`; the next attempt looks for the alert id in the channel first.
A failed delivery stays pending with a backoff: alerts are never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select
from sqlmodel import Session

from monitor.alerting.sinks import Sent, Sink, SinkError
from monitor.clock import Clock
from monitor.config import OutboxConfig
from monitor.domain import DeliveryStatus
from monitor.store.tables import AlertRow, DeliveryRow

log = logging.getLogger(__name__)


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
    channel: str
    attempts: int
    check_first: bool
    created_at: datetime
    message: dict[str, object]


def _backoff(config: OutboxConfig, attempts: int) -> timedelta:
    return timedelta(seconds=min(config.max_backoff_seconds, 5.0 * 2 ** max(0, attempts - 1)))


def _claim_next(engine: Engine, config: OutboxConfig, now: datetime) -> _Claim | None:
    with Session(engine) as session, session.begin():
        query = (
            select(DeliveryRow)
            .where(
                DeliveryRow.status == DeliveryStatus.PENDING.value,  # type: ignore[arg-type]
                DeliveryRow.next_attempt_at <= now,  # type: ignore[arg-type]
                or_(
                    DeliveryRow.claimed_until.is_(None),  # type: ignore[union-attr]
                    DeliveryRow.claimed_until < now,  # type: ignore[operator,arg-type]
                ),
            )
            .order_by(DeliveryRow.id)  # type: ignore[arg-type]
            .limit(1)
        )
        if engine.dialect.name == "postgresql":
            # Two instances drain one outbox: each takes rows the other has not locked.
            query = query.with_for_update(skip_locked=True)
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        alert = session.get(AlertRow, row.alert_id)
        assert row.id is not None and alert is not None
        claim = _Claim(
            delivery_id=row.id,
            alert_id=row.alert_id,
            channel=row.channel,
            attempts=row.attempts + 1,
            check_first=row.maybe_sent,
            created_at=row.created_at,
            message=dict(alert.payload),
        )
        row.attempts += 1
        row.claimed_until = now + timedelta(seconds=config.lease_seconds)
        row.maybe_sent = True
        return claim


def _finish(engine: Engine, claim: _Claim, sent: Sent, now: datetime) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(DeliveryRow, claim.delivery_id)
        assert row is not None
        row.status = DeliveryStatus.SENT.value
        row.slack_channel = sent.channel_id
        row.slack_ts = sent.ts
        row.sent_at = now
        row.claimed_until = None
        row.last_error = None


def _fail(
    engine: Engine, config: OutboxConfig, claim: _Claim, error: SinkError, now: datetime
) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(DeliveryRow, claim.delivery_id)
        assert row is not None
        row.maybe_sent = not error.definite
        row.last_error = str(error)[:500]
        row.next_attempt_at = now + _backoff(config, claim.attempts)
        row.claimed_until = None


def drain_outbox(
    engine: Engine, sink: Sink, config: OutboxConfig, clock: Clock, limit: int | None = None
) -> DrainReport:
    """Deliver what is due, one at a time in outbox order; returns what happened."""
    report = DrainReport()
    budget = limit if limit is not None else config.batch_size
    while budget > 0:
        claim = _claim_next(engine, config, clock.now())
        if claim is None:
            break
        budget -= 1
        try:
            found = (
                sink.find(claim.channel, claim.alert_id, claim.created_at)
                if claim.check_first
                else None
            )
            if found is not None:
                log.info(
                    "alert %d was already in %s; not posting again", claim.alert_id, claim.channel
                )
                report.found_already_sent += 1
                _finish(engine, claim, found, clock.now())
                continue
            sent = sink.post(claim.channel, claim.message, claim.alert_id)
        except SinkError as exc:
            log.warning(
                "alert %d not delivered (attempt %d): %s", claim.alert_id, claim.attempts, exc
            )
            report.failed += 1
            _fail(engine, config, claim, exc, clock.now())
            continue
        _finish(engine, claim, sent, clock.now())
        report.sent += 1
    report.pending = pending_count(engine)
    return report


def pending_count(engine: Engine) -> int:
    with Session(engine) as session:
        rows = session.execute(
            select(DeliveryRow.id).where(  # type: ignore[call-overload]
                DeliveryRow.status == DeliveryStatus.PENDING.value
            )
        ).all()
        return len(rows)
