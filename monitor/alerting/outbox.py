"""Draining the outbox: at-least-once delivery that, in practice, never posts twice.

A notice has one delivery per sink it goes to (koubei.yaml `sinks:`), each tracked,
retried and deduplicated on its own; each sink renders the notice at delivery time.
Each delivery is claimed in its own committed transaction (attempts+1, a lease,
`maybe_sent` set) before anything is sent. If the process dies after the sink took
the message but before we recorded it, the row is still pending with `maybe_sent`;
the next attempt asks a sink with `lookup` for the alert id first (Slack: in the
channel, in the case's thread for a reply, among the channel's files for a file). A
sink without `lookup` (the group robots) cannot be asked: its maybe-sent delivery is
not sent again but recorded as sent-unconfirmed (a duplicate is worse than a message
we cannot prove arrived; docs/notices.md), and the ops route is told once to look.

Each claim raises the row's `claim_token` and carries it, and its lease is renewed
while the send is in flight (`claim_lease`), so a slow send (a long Retry-After, a
large upload) keeps its row. A send that outlasts its lease all the same (the instance
could not reach the database, or was frozen, for a whole lease) may be claimed again
by another drain, which looks first where the sink can be asked; the slower claim's
outcome is then dropped (logged), never written over the newer one's.

The outbox adapts to each sink's capabilities: without threads a thread event is a
new message (its renderer names 工单 #id); without edits a state change is a new
message. A failed delivery stays pending with a backoff; a rate limit answer
(`retry_after`) waits that long without counting as a failure. A delivery refused for
good ends as `failed` with its error, the ops route is told once (in the same
transaction), and `koubei deliveries` shows it until it is queued again.

Order is kept per case and sink (a case's thread reply waits for its message; on a
sink without threads its event waits for the case's message or group), and
each sink's channel gets at most its `rate_per_minute` (and `per_channel_per_second`).

This module imports the store, the domain, the clock, errors and `claim_lease` only:
no sink, no renderer and no collector loads with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerting.claim_lease import kept
from monitor.clock import Clock
from monitor.config import OutboxConfig
from monitor.domain import (
    AlertKind,
    DeliveryStatus,
    InlineStyle,
    Mention,
    Notice,
    NoticeMethod,
    Outgoing,
    Severity,
    Sink,
    SinkRef,
    code,
    render_inline,
)
from monitor.errors import SinkError
from monitor.store.notices import OpsTarget, enqueue_to
from monitor.store.notices import ops_target as ops_target
from monitor.store.tables import AlertRow, DeliveryRow, SinkMessageRow

log = logging.getLogger(__name__)
_WAIT_FOR_ROOT = timedelta(seconds=15)
_CASE_MESSAGES = (AlertKind.NEW_CASE.value, AlertKind.REGRADED.value, AlertKind.UPDATE.value)
UNCONFIRMED = "sent-unconfirmed"
Sinks = Sink | Mapping[str, Sink]


@dataclass
class DrainReport:
    sent: int = 0
    found_already_sent: int = 0
    failed: int = 0
    pending: int = 0
    given_up: int = 0  # refused for good this drain
    unconfirmed: int = 0  # maybe sent by a sink that cannot be asked: not sent again
    rate_limited: int = 0  # the sink asked us to wait: waiting, not counted as failed
    superseded: int = 0  # outlasted its lease and was claimed again: its outcome not kept
    waits: dict[str, list[float]] = field(default_factory=dict)  # sink -> seconds asked


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    alert_id: int
    alert_kind: str
    method: str  # as sent: "wait" when nothing is sent
    sink: str
    channel: str
    case_id: int | None
    attempts: int
    check_first: bool
    out: Outgoing | None
    token: int = 0  # the row's claim_token as this claim set it: its fence


def _waiting(row: DeliveryRow, kind: str) -> _Claim:
    """A claim that sends nothing: the row waits for its case's message (or failed with it)."""
    return _Claim(
        row.id or 0,
        row.alert_id,
        kind,
        "wait",
        row.sink,
        row.channel,
        row.case_id,
        row.attempts,
        False,
        None,
        row.claim_token,
    )


def _backoff(config: OutboxConfig, attempts: int) -> timedelta:
    return timedelta(seconds=min(config.max_backoff_seconds, 5.0 * 2 ** max(0, attempts - 1)))


def _due(now: datetime, busy: set[tuple[str, str]], names: Sequence[str] | None) -> Any:
    earlier = aliased(DeliveryRow)
    conditions = [
        col(DeliveryRow.status) == DeliveryStatus.PENDING.value,
        col(DeliveryRow.next_attempt_at) <= now,
        or_(col(DeliveryRow.claimed_until).is_(None), col(DeliveryRow.claimed_until) < now),
        # A case's deliveries go in order on each sink: its thread replies after its message.
        or_(
            col(DeliveryRow.case_id).is_(None),
            ~exists().where(
                and_(
                    col(earlier.case_id) == col(DeliveryRow.case_id),
                    col(earlier.sink) == col(DeliveryRow.sink),
                    col(earlier.status) == DeliveryStatus.PENDING.value,
                    col(earlier.id) < col(DeliveryRow.id),
                )
            ),
        ),
    ]
    if names is not None:
        conditions.append(col(DeliveryRow.sink).in_(list(names)))
    for sink, channel in sorted(busy):
        conditions.append(~and_(col(DeliveryRow.sink) == sink, col(DeliveryRow.channel) == channel))
    return and_(*conditions)


def is_notice(payload: dict[str, Any]) -> bool:
    """Whether an alert's payload is a notice (or a message queued by an older version)."""
    return isinstance(payload.get("headline"), str) and "dedup_key" in payload


def _notice(alert: AlertRow) -> tuple[Notice, dict[str, Any] | None]:
    """The alert's notice, and the payload itself when an older version queued a message."""
    payload = dict(alert.payload or {})
    if is_notice(payload):
        return Notice.from_json(payload), None
    legacy = Notice(
        kind=AlertKind(alert.kind),
        dedup_key=alert.dedup_key,
        route=alert.channel_key,
        headline=str(payload.get("text") or payload.get("label") or ""),
        grade=Severity(alert.severity) if alert.severity != "none" else None,
        case_id=alert.case_id,
        file=payload.get("file"),
        # A group queued before notices: its mention text, for Slack as it was.
        mentions=(Mention(role=str(payload["notify"])),) if payload.get("notify") else (),
        extra={k: payload[k] for k in ("label", "colour") if k in payload},
    )
    is_group = alert.kind == AlertKind.GROUP.value
    return legacy, (None if is_group else payload)


def _members(session: Session, group_id: int) -> tuple[Notice, ...]:
    """The group's cases, each as its latest case notice (its state now)."""
    case_ids = (
        session.execute(
            select(col(AlertRow.case_id))
            .where(col(AlertRow.group_id) == group_id)
            .order_by(col(AlertRow.id))
        )
        .scalars()
        .all()
    )
    members = []
    for case_id in case_ids:
        if case_id is None:
            continue
        latest = (
            session.execute(
                select(AlertRow)
                .where(col(AlertRow.case_id) == case_id, col(AlertRow.kind).in_(_CASE_MESSAGES))
                .order_by(col(AlertRow.id).desc())
                .limit(1)
            )
            .scalars()
            .first()
        )
        if latest is not None and is_notice(latest.payload or {}):
            members.append(Notice.from_json(latest.payload))
    return tuple(members)


def _claim_next(
    engine: Engine,
    config: OutboxConfig,
    now: datetime,
    busy: set[tuple[str, str]],
    sinks: Mapping[str, Sink] | None,
    single: Sink | None,
) -> _Claim | None:
    names = list(sinks) if sinks is not None else None
    with Session(engine) as session, session.begin():
        query = (
            select(DeliveryRow).where(_due(now, busy, names)).order_by(col(DeliveryRow.id)).limit(1)
        )
        if engine.dialect.name == "postgresql":
            # Two instances drain one outbox: each takes rows the other has not locked.
            query = query.with_for_update(skip_locked=True)
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        sink = single if single is not None else (sinks or {})[row.sink]
        alert = session.get_one(AlertRow, row.alert_id)
        notice, raw = _notice(alert)
        method: NoticeMethod = _method(row.method)
        adapted: NoticeMethod | None = None
        if (
            (method == "reply" and not sink.threads)
            or (method == "update" and not sink.edits)
            or (method == "file" and not sink.files)
        ):
            adapted, method = method, "post"
        # No thread to wait on, but the message names 工单 #id: it must not come before the
        # message that shows the case here, which may be a group not out yet (a group's row
        # has no case, so the per-case order of `_due` does not hold it back).
        if (
            adapted in ("reply", "update")
            and row.case_id is not None
            and _root(session, row.case_id, row.sink, DeliveryStatus.PENDING) is not None
        ):
            row.next_attempt_at = now + _WAIT_FOR_ROOT
            return _waiting(row, alert.kind)
        thread = None
        if method in ("reply", "update"):
            posted = (
                session.execute(
                    select(SinkMessageRow).where(
                        col(SinkMessageRow.case_id) == row.case_id,
                        col(SinkMessageRow.sink) == row.sink,
                    )
                )
                .scalars()
                .first()
                if row.case_id is not None
                else None
            )
            if posted is None:
                root = (
                    _root(session, row.case_id, row.sink, DeliveryStatus.FAILED)
                    if row.case_id
                    else None
                )
                if root is not None:
                    # The case's message was refused for good: its thread never will exist.
                    row.status = DeliveryStatus.FAILED.value
                    row.maybe_sent = False
                    row.last_error = f"the case's message (delivery {root}) failed; no thread"
                    return _waiting(row, alert.kind)
                if row.case_id is None or _carrying(session, row.case_id, row.sink):
                    # The case's message is not out yet (it may ride in a group): wait.
                    row.next_attempt_at = now + _WAIT_FOR_ROOT
                    return _waiting(row, alert.kind)
                # This sink never carried the case (added or renamed since it was announced).
                if method == "update":
                    # The card goes out once as the case's message there, so later events
                    # thread under it; without mentions: it is no new case to page about.
                    notice = replace(notice, mentions=())
                    method = "post"
                else:  # no thread yet: the event is a message of its own naming the case
                    adapted, method = method, "post"
            else:
                thread = SinkRef(posted.channel, posted.ref)
        group: tuple[Notice, ...] = ()
        if alert.kind == AlertKind.GROUP:
            group = _members(session, alert.id or 0)
        elif method == "update" and row.case_id is not None:
            group_alert = _group_of(session, row.case_id)
            if group_alert is not None:  # the case lives in a group message: edit the group
                notice, raw = _notice(group_alert)
                group = _members(session, group_alert.id or 0)
        assert row.id is not None
        # Posts and files can be looked up by alert id after a lost answer; edits are idempotent.
        can_repeat = method == "update"
        out = Outgoing(
            delivery_id=row.id,
            alert_id=row.alert_id,
            method=method,
            channel=row.channel,
            notice=notice,
            created_at=row.created_at,
            thread=thread,
            group=group,
            adapted_from=adapted,
            raw=raw,
        )
        claim = _Claim(
            delivery_id=row.id,
            alert_id=row.alert_id,
            alert_kind=alert.kind,
            method=method,
            sink=row.sink,
            channel=row.channel,
            case_id=row.case_id,
            attempts=row.attempts + 1,
            check_first=row.maybe_sent and not can_repeat,
            out=out,
            token=row.claim_token + 1,
        )
        row.attempts += 1
        row.claim_token += 1
        row.claimed_until = now + timedelta(seconds=config.lease_seconds)
        row.maybe_sent = not can_repeat
        return claim


def _method(value: str) -> NoticeMethod:
    if value in ("post", "reply", "update", "file"):
        return value  # type: ignore[return-value]
    raise ValueError(f"unknown delivery method {value!r}")


def _carrying(session: Session, case_id: int, sink: str) -> bool:
    """Whether a message that carries the case (its own, its group's, or a regrade's
    card, the first this sink got) is queued or out on this sink."""
    if _root(session, case_id, sink) is not None:
        return True
    regrade = session.execute(
        select(col(DeliveryRow.id))
        .join(AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
        .where(
            col(AlertRow.case_id) == case_id,
            col(AlertRow.kind) == AlertKind.REGRADED.value,
            col(DeliveryRow.sink) == sink,
            col(DeliveryRow.status) == DeliveryStatus.PENDING.value,
        )
        .limit(1)
    ).first()
    return regrade is not None


def _root(
    session: Session, case_id: int, sink: str, status: DeliveryStatus | None = None
) -> int | None:
    """The delivery of the case's message on this sink (its own, or its group's), if it
    has this status (any status: None)."""
    new_case = session.execute(
        select(col(AlertRow.id), col(AlertRow.group_id)).where(
            col(AlertRow.case_id) == case_id, col(AlertRow.kind) == AlertKind.NEW_CASE.value
        )
    ).first()
    if new_case is None:
        return None
    root_alert = new_case[1] if new_case[1] is not None else new_case[0]
    query = select(col(DeliveryRow.id)).where(
        col(DeliveryRow.alert_id) == root_alert, col(DeliveryRow.sink) == sink
    )
    if status is not None:
        query = query.where(col(DeliveryRow.status) == status.value)
    return session.execute(query.limit(1)).scalar_one_or_none()


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


def _held(session: Session, claim: _Claim, outcome: str) -> DeliveryRow | None:
    """The claim's row, locked, while the claim is still its latest; else None (logged).

    A send that outlasts its lease lets another drain claim the row again; the slower
    one's outcome then must not overwrite what the newer claim does or did.
    """
    query = select(DeliveryRow).where(col(DeliveryRow.id) == claim.delivery_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row: DeliveryRow = session.execute(query).scalar_one()
    if row.claim_token == claim.token:
        return row
    log.warning(
        "alert %d on %s: attempt %d was superseded (claimed again after its lease ran out, "
        "claim %d now, this was %d); its outcome (%s) is not recorded",
        claim.alert_id,
        claim.sink,
        claim.attempts,
        row.claim_token,
        claim.token,
        outcome[:200],
    )
    return None


def _finish(
    engine: Engine,
    claim: _Claim,
    sent: SinkRef,
    now: datetime,
    error: str | None = None,
    *,
    unconfirmed_to: OpsTarget | None = None,
) -> bool:
    """Record the claim as sent; False when a newer claim superseded it (nothing changed).

    With `unconfirmed_to`, the delivery may never have arrived: ops are told to look."""
    with Session(engine) as session, session.begin():
        row = _held(session, claim, error or "sent")
        if row is None:
            return False
        earlier_error = row.last_error
        if unconfirmed_to is not None and claim.alert_kind != AlertKind.DELIVERY_FAILED:
            _tell_ops_unconfirmed(session, unconfirmed_to, claim, earlier_error, now)
        row.status = DeliveryStatus.SENT.value
        row.sent_channel = sent.channel[:128]
        row.ref = sent.ref[:128]
        row.sent_at = now
        row.claimed_until = None
        row.maybe_sent = False
        row.last_error = error
        if claim.method != "post" or (claim.out is not None and claim.out.adapted_from):
            return True
        # The case's message: later events go into its thread, edits change it. A regrade's
        # or an edit's card is one only on a sink that had none for the case (`known`).
        if claim.alert_kind in _CASE_MESSAGES and claim.case_id is not None:
            case_ids: Sequence[int | None] = [claim.case_id]
        elif claim.alert_kind == AlertKind.GROUP:
            case_ids = (
                session.execute(
                    select(col(AlertRow.case_id)).where(col(AlertRow.group_id) == claim.alert_id)
                )
                .scalars()
                .all()
            )
        else:
            return True
        route = claim.out.notice.route if claim.out is not None else ""
        for case_id in case_ids:
            if case_id is None:
                continue
            known = session.execute(
                select(col(SinkMessageRow.id)).where(
                    col(SinkMessageRow.case_id) == case_id,
                    col(SinkMessageRow.sink) == claim.sink,
                )
            ).first()
            if known is None:
                session.add(
                    SinkMessageRow(
                        case_id=case_id,
                        sink=claim.sink,
                        channel=sent.channel[:128],
                        channel_key=route,
                        ref=sent.ref[:128],
                        alert_id=claim.alert_id,
                        created_at=now,
                    )
                )
        return True


def _fail(
    engine: Engine,
    config: OutboxConfig,
    claim: _Claim,
    error: SinkError,
    now: datetime,
    ops: OpsTarget | None,
) -> bool:
    """Record a failed attempt; False when a newer claim superseded it (nothing changed)."""
    with Session(engine) as session, session.begin():
        row = _held(session, claim, str(error))
        if row is None:
            return False
        row.claimed_until = None
        if error.retry_after is not None and not error.permanent:
            # The sink asked us to wait: the attempt does not count, the row never gives up.
            row.attempts = max(0, row.attempts - 1)
            row.maybe_sent = False
            row.next_attempt_at = now + timedelta(seconds=max(0.0, error.retry_after))
            row.last_error = f"rate limited, waiting {error.retry_after:g}s: {error}"[:500]
            return True
        row.maybe_sent = not error.definite and claim.method in ("post", "reply", "file")
        row.last_error = str(error)[:500]
        row.next_attempt_at = now + _backoff(config, claim.attempts)
        if not error.permanent:
            return True
        row.status = DeliveryStatus.FAILED.value
        # A refused ops notice is not told again: that would loop.
        if ops is not None and claim.alert_kind != AlertKind.DELIVERY_FAILED:
            _tell_ops(session, ops, claim, str(error), now)
        return True


def said(notice: Notice) -> str:
    """What a notice said, in plain words and without mentions (no stray pings)."""
    style = InlineStyle(escape=lambda s: s, mention=lambda _m: "", link=lambda x: x.label)
    head = render_inline(notice.headline, notice, style).strip()
    parts = [f"工单 #{notice.case_id}"] if notice.case_id is not None else []
    parts.append(head)
    detail = str(notice.extra.get("title") or "") or notice.quote
    if detail:
        parts.append(detail[:80])
    return " ".join(p for p in parts if p)


def _tell_ops(session: Session, ops: OpsTarget, claim: _Claim, error: str, now: datetime) -> None:
    """One notice per failed delivery, with what it said."""
    dedup_key = f"delivery-failed:{claim.delivery_id}"
    notice = claim.out.notice if claim.out is not None else None
    told = said(notice) if notice is not None else ""
    text = (
        f"⚠️ 告警投递失败，已停止重试：{claim.alert_kind} 告警 #{claim.alert_id} → "
        f"{claim.sink}:{claim.channel}（第 {claim.attempts} 次尝试）\n"
        f"错误：{error}\n"
        f"原内容：{told[:1500] or '—'}\n"
        f"查看 {code('koubei deliveries --failed')}；"
        f"修好后 {code(f'koubei deliveries --retry {claim.delivery_id}')}"
    )
    enqueue_to(
        session,
        Notice(
            kind=AlertKind.DELIVERY_FAILED,
            dedup_key=dedup_key,
            route=ops.route,
            headline=text,
            extra={"colour": "#455A64"},
        ),
        now,
        ops.targets,
        severity=Severity.P2,
    )


def _tell_ops_unconfirmed(
    session: Session, ops: OpsTarget, claim: _Claim, why: str | None, now: datetime
) -> None:
    """One notice per delivery that may be missing from a group robot's group (keyed by
    the claim, so a resend someone asked for that again goes unanswered is told too)."""
    notice = claim.out.notice if claim.out is not None else None
    told = said(notice) if notice is not None else ""
    text = (
        f"⚠️ 告警可能未送达，无法确认：{claim.alert_kind} 告警 #{claim.alert_id} → "
        f"{claim.sink}:{claim.channel}（投递 #{claim.delivery_id}）\n"
        f"发出后没有得到答复（答复丢失或进程中断）；最近记录的错误：{(why or '无')[:300]}\n"
        f"{claim.sink} 无法查询是否收到，为免重复不再发送。\n"
        f"原内容：{told[:1500] or '—'}\n"
        f"请到 {claim.sink} 的群里确认是否收到；若没有，"
        f"{code(f'koubei deliveries --retry {claim.delivery_id}')} 重发一次"
        "（工单在看板上照常处理）"
    )
    enqueue_to(
        session,
        Notice(
            kind=AlertKind.DELIVERY_FAILED,
            dedup_key=f"delivery-unconfirmed:{claim.delivery_id}:{claim.token}",
            route=ops.route,
            headline=text,
            extra={"colour": "#455A64"},
        ),
        now,
        ops.targets,
        severity=Severity.P2,
    )


def _send(sink: Sink, claim: _Claim) -> tuple[SinkRef, str]:
    """Deliver one claim; returns where it is and how: "sent", "found" or UNCONFIRMED."""
    assert claim.out is not None
    if claim.check_first:
        if not sink.lookup:
            # Nothing to ask: sending again could post it twice. It stays as it may be.
            return SinkRef(claim.channel, ""), UNCONFIRMED
        found = sink.find(claim.out)
        if found is not None:
            return found, "found"
    return sink.send(claim.out), "sent"


def _interval(config: OutboxConfig, sink: Sink) -> timedelta:
    per_minute = max(1, int(sink.rate_per_minute))
    return timedelta(seconds=max(1.0 / config.per_channel_per_second, 60.0 / per_minute))


def drain_outbox(
    engine: Engine,
    sinks: Sinks,
    config: OutboxConfig,
    clock: Clock,
    limit: int | None = None,
    ops: OpsTarget | None = None,
) -> DrainReport:
    """Deliver what is due in outbox order, pacing each sink's channels; returns what happened.

    `sinks` maps sink names (koubei.yaml `sinks:`) to sinks; rows for a sink not in it
    wait. One sink alone takes every row (the tests and the demo). `ops` is where a
    delivery refused for good is told (see `ops_target`).
    """
    report = DrainReport()
    single = None if isinstance(sinks, Mapping) else sinks
    named = sinks if isinstance(sinks, Mapping) else None
    budget = limit if limit is not None else config.batch_size
    next_slot: dict[tuple[str, str], datetime] = {}
    while budget > 0:
        now = clock.now()
        busy = {key for key, slot in next_slot.items() if slot > now}
        claim = _claim_next(engine, config, now, busy, named, single)
        if claim is None:
            if not busy or not _any_due(engine, now, named):
                break
            clock.sleep((min(next_slot[key] for key in busy) - now).total_seconds())
            continue
        if claim.method == "wait":
            continue
        budget -= 1
        sink = single if single is not None else (named or {})[claim.sink]
        try:
            what = f"alert {claim.alert_id} on {claim.sink} (attempt {claim.attempts})"
            with kept(engine, claim.delivery_id, claim.token, clock, config.lease_seconds, what):
                sent, how = _send(sink, claim)
        except SinkError as exc:
            if exc.permanent:
                log.error(
                    "alert %d refused for good by %s (attempt %d), not retried: %s",
                    claim.alert_id,
                    claim.sink,
                    claim.attempts,
                    exc,
                )
                report.given_up += 1
            elif exc.retry_after is not None:
                log.warning(
                    "alert %d: %s asks to wait %gs; waiting",
                    claim.alert_id,
                    claim.sink,
                    exc.retry_after,
                )
                report.rate_limited += 1
                report.waits.setdefault(claim.sink, []).append(exc.retry_after)
            else:
                log.warning(
                    "alert %d not delivered by %s (attempt %d): %s",
                    claim.alert_id,
                    claim.sink,
                    claim.attempts,
                    exc,
                )
            if exc.retry_after is None or exc.permanent:
                report.failed += 1
            if not _fail(engine, config, claim, exc, clock.now(), ops):
                report.superseded += 1
            continue
        finally:
            next_slot[(claim.sink, claim.channel)] = clock.now() + _interval(config, sink)
        error = None
        unconfirmed_to = None
        if how == "found":
            log.info("alert %d was already in %s; not posting again", claim.alert_id, claim.channel)
            report.found_already_sent += 1
        elif how == UNCONFIRMED:
            error = (
                f"{UNCONFIRMED}: an attempt went unanswered and {claim.sink} cannot be asked "
                "whether it arrived; not sent again, to post no duplicate"
            )
            log.warning("alert %d on %s: %s", claim.alert_id, claim.sink, error)
            report.unconfirmed += 1
            unconfirmed_to = ops
        else:
            report.sent += 1
        if not _finish(engine, claim, sent, clock.now(), error, unconfirmed_to=unconfirmed_to):
            report.superseded += 1
    report.pending = pending_count(engine)
    return report


def _any_due(engine: Engine, now: datetime, sinks: Mapping[str, Sink] | None) -> bool:
    names = list(sinks) if sinks is not None else None
    with Session(engine) as session:
        row = session.execute(
            select(col(DeliveryRow.id)).where(_due(now, set(), names)).limit(1)
        ).first()
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
    sink: str
    channel: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


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
                    sink=d.sink,
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
    """Queue failed deliveries again (all of them, or those ids); returns how many.

    A sent-unconfirmed delivery named by id is sent again too: someone looked in the
    robot's group and did not find it. `--retry-all` never does that (a blanket resend
    would post twice whatever did arrive).
    """
    with Session(engine) as session, session.begin():
        failed = col(DeliveryRow.status) == DeliveryStatus.FAILED.value
        if ids:
            missing = and_(
                col(DeliveryRow.status) == DeliveryStatus.SENT.value,
                col(DeliveryRow.last_error).startswith(UNCONFIRMED),
            )
            query = select(DeliveryRow).where(
                or_(failed, missing), col(DeliveryRow.id).in_(list(ids))
            )
        else:
            query = select(DeliveryRow).where(failed)
        rows = session.execute(query).scalars().all()
        for row in rows:
            if row.status == DeliveryStatus.SENT.value:
                row.maybe_sent = False  # it was looked for and is not there
                row.sent_at = None
            row.status = DeliveryStatus.PENDING.value
            row.next_attempt_at = row.created_at  # due at once, whatever the clock says
            row.claimed_until = None
        return len(rows)
