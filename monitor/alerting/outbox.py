"""Draining the outbox: at-least-once delivery that, in practice, never posts twice.

Each delivery is claimed in its own committed transaction (attempts+1, a lease,
`maybe_sent` set) before anything is sent. If the process dies after Slack took
the message but before we recorded it, the row is still pending with
`maybe_sent`; the next attempt looks for the alert id first (in the channel, in
the case's thread for a reply, among the channel's files for a file).
A failed delivery stays pending with a backoff, unless Slack refused it for
good (invalid_blocks, channel_not_found, invalid_auth...): then it ends as
`failed` with its error, the ops channel is told once (in the same
transaction), and `koubei deliveries` shows it until it is queued again.

Order is kept per case (a case's thread reply waits for its message), and at
most `per_channel_per_second` messages go to one channel, as Slack asks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerting.blocks import plain_message
from monitor.alerting.groups import render_group
from monitor.alerting.mrkdwn import clip, escape_mrkdwn
from monitor.alerting.sinks import Sent, Sink, SinkError
from monitor.clock import Clock
from monitor.config import OutboxConfig, Settings
from monitor.domain import AlertKind, DeliveryStatus, Severity
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow

log = logging.getLogger(__name__)
_WAIT_FOR_ROOT = timedelta(seconds=15)
_MENTION = re.compile(r"<[!@][^>]*>")
OpsTarget = tuple[str, str]  # (channel key, Slack channel) where failed deliveries are told


def ops_target(settings: Settings) -> OpsTarget:
    key = settings.policy.watchdog.ops_channel
    return key, settings.app.slack.channels[key]


@dataclass
class DrainReport:
    sent: int = 0
    found_already_sent: int = 0
    failed: int = 0
    pending: int = 0
    given_up: int = 0  # refused by Slack for good this drain


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


def _waiting(row: DeliveryRow, kind: str) -> _Claim:
    """A claim that sends nothing: the row waits for its case's message (or failed with it)."""
    return _Claim(
        row.id or 0,
        row.alert_id,
        kind,
        "wait",
        row.channel,
        row.case_id,
        row.attempts,
        False,
        row.created_at,
        {},
        None,
    )


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
                root = _failed_root(session, row.case_id) if row.case_id else None
                if root is not None:
                    # The case's message was refused for good: its thread never will exist.
                    row.status = DeliveryStatus.FAILED.value
                    row.maybe_sent = False
                    row.last_error = f"the case's message (delivery {root}) failed; no thread"
                    return _waiting(row, alert.kind)
                # The case's message is not out yet (it may ride in a group): wait.
                row.next_attempt_at = now + _WAIT_FOR_ROOT
                return _waiting(row, alert.kind)
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
            check_first=row.maybe_sent and row.method in ("post", "reply", "file"),
            created_at=row.created_at,
            message=message,
            thread=thread,
        )
        row.attempts += 1
        row.claimed_until = now + timedelta(seconds=config.lease_seconds)
        # Posts and files can be looked up by alert id after a lost answer; edits are idempotent.
        row.maybe_sent = row.method in ("post", "reply", "file")
        return claim


def _failed_root(session: Session, case_id: int) -> int | None:
    """The failed delivery of the case's message (its own, or its group's), if it failed."""
    new_case = session.execute(
        select(col(AlertRow.id), col(AlertRow.group_id)).where(
            col(AlertRow.case_id) == case_id, col(AlertRow.kind) == AlertKind.NEW_CASE.value
        )
    ).first()
    if new_case is None:
        return None
    root_alert = new_case[1] if new_case[1] is not None else new_case[0]
    return session.execute(
        select(col(DeliveryRow.id)).where(
            col(DeliveryRow.alert_id) == root_alert,
            col(DeliveryRow.status) == DeliveryStatus.FAILED.value,
        )
    ).scalar_one_or_none()


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
    engine: Engine,
    config: OutboxConfig,
    claim: _Claim,
    error: SinkError,
    now: datetime,
    ops: OpsTarget | None,
) -> None:
    with Session(engine) as session, session.begin():
        row = session.get_one(DeliveryRow, claim.delivery_id)
        row.maybe_sent = not error.definite and claim.method in ("post", "reply", "file")
        row.last_error = str(error)[:500]
        row.next_attempt_at = now + _backoff(config, claim.attempts)
        row.claimed_until = None
        if not error.permanent:
            return
        row.status = DeliveryStatus.FAILED.value
        # A refused ops notice is not told again: that would loop.
        if ops is not None and claim.alert_kind != AlertKind.DELIVERY_FAILED:
            _tell_ops(session, ops, claim, str(error), now)


def _tell_ops(session: Session, ops: OpsTarget, claim: _Claim, error: str, now: datetime) -> None:
    """One notice per failed delivery, with what it said (mentions removed: no stray pings)."""
    said = _MENTION.sub("", str(claim.message.get("text") or "")).strip()
    text = (
        f"⚠️ 告警投递失败，已停止重试：{claim.alert_kind} 告警 #{claim.alert_id} → "
        f"{escape_mrkdwn(claim.channel)}（第 {claim.attempts} 次尝试）\n"
        f"错误：{escape_mrkdwn(error)}\n"
        f"原内容：{clip(said, 1500) or '—'}\n"
        f"查看 `koubei deliveries --failed`；修好后 `koubei deliveries --retry {claim.delivery_id}`"
    )
    dedup_key = f"delivery-failed:{claim.delivery_id}"
    told = select(col(AlertRow.id)).where(col(AlertRow.dedup_key) == dedup_key)
    if session.execute(told).first():
        return
    key, channel = ops
    alert = AlertRow(
        dedup_key=dedup_key,
        kind=AlertKind.DELIVERY_FAILED.value,
        severity=Severity.P2.value,
        channel_key=key,
        created_at=now,
    )
    session.add(alert)
    session.flush()
    assert alert.id is not None
    alert.payload = plain_message(alert.id, Severity.P2.value, text, "#455A64")
    session.add(
        DeliveryRow(
            alert_id=alert.id,
            channel=channel,
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _send(sink: Sink, claim: _Claim) -> tuple[Sent, bool]:
    """Deliver one claim; returns what Slack holds and whether it was there already."""
    if claim.method == "file":
        message = claim.message
        if claim.check_first:
            found = sink.find_file(claim.channel, claim.alert_id, claim.created_at)
            if found is not None:
                return found, True
        path = Path(str(message["file"]))
        return sink.upload(claim.channel, path, str(message["text"]), claim.alert_id), False
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
        thread_ts = claim.thread[1] if claim.method == "reply" and claim.thread else None
        found = sink.find(channel, claim.alert_id, claim.created_at, thread_ts)
        if found is not None:
            return found, True
    return sink.post(channel, message, claim.alert_id), False


def drain_outbox(
    engine: Engine,
    sink: Sink,
    config: OutboxConfig,
    clock: Clock,
    limit: int | None = None,
    ops: OpsTarget | None = None,
) -> DrainReport:
    """Deliver what is due in outbox order, pacing each channel; returns what happened.

    `ops` is where a delivery Slack refused for good is told (see `ops_target`).
    """
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
            if exc.permanent:
                log.error(
                    "alert %d refused for good (attempt %d), not retried: %s",
                    claim.alert_id,
                    claim.attempts,
                    exc,
                )
                report.given_up += 1
            else:
                log.warning(
                    "alert %d not delivered (attempt %d): %s", claim.alert_id, claim.attempts, exc
                )
            report.failed += 1
            _fail(engine, config, claim, exc, clock.now(), ops)
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


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    alert_id: int
    kind: str
    method: str
    channel: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


_STATUS_ORDER = {DeliveryStatus.FAILED.value: 0, DeliveryStatus.PENDING.value: 1}


def deliveries(engine: Engine, *, failed_only: bool = False, limit: int = 50) -> list[DeliveryInfo]:
    """Deliveries for `koubei deliveries`: failed first, then pending, then the latest sent."""
    with Session(engine) as session:
        query = select(DeliveryRow, col(AlertRow.kind)).join(
            AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id)
        )
        if failed_only:
            query = query.where(col(DeliveryRow.status) == DeliveryStatus.FAILED.value)
        rows: list[DeliveryInfo] = []
        for status in (DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.SENT):
            if len(rows) >= limit or (failed_only and status is not DeliveryStatus.FAILED):
                break
            found = session.execute(
                query.where(col(DeliveryRow.status) == status.value)
                .order_by(col(DeliveryRow.id).desc())
                .limit(limit - len(rows))
            ).all()
            rows += [
                DeliveryInfo(
                    id=d.id or 0,
                    alert_id=d.alert_id,
                    kind=kind,
                    method=d.method,
                    channel=d.channel,
                    status=d.status,
                    attempts=d.attempts,
                    created_at=d.created_at,
                    sent_at=d.sent_at,
                    last_error=d.last_error,
                )
                for d, kind in found
            ]
        return rows


def retry_failed(engine: Engine, ids: Sequence[int] | None) -> int:
    """Queue failed deliveries again (all of them, or those ids); returns how many."""
    with Session(engine) as session, session.begin():
        query = select(DeliveryRow).where(col(DeliveryRow.status) == DeliveryStatus.FAILED.value)
        if ids:
            query = query.where(col(DeliveryRow.id).in_(list(ids)))
        rows = session.execute(query).scalars().all()
        for row in rows:
            row.status = DeliveryStatus.PENDING.value
            row.next_attempt_at = row.created_at  # due at once, whatever the clock says
            row.claimed_until = None
        return len(rows)
