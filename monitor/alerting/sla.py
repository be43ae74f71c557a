"""The SLA sweeper: reminders before deadlines, escalation when nobody acknowledges, breaches.

Everything is derived from the case row and the clock: escalation steps are
"opened_at + after_minutes", so a restart in the middle of a timer still
escalates on time, and dedup keys make a second sweep (or instance) a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.alerting.alerts import alert_exists
from monitor.alerting.routing import mention, role_name
from monitor.case_actions import ACTIVE, Actor, announce, case_channel_key
from monitor.cases import add_event, clock_start
from monitor.clock import Clock
from monitor.config import Settings
from monitor.domain import AlertKind, CaseState, Severity
from monitor.store.tables import CaseRow

_DEADLINES = (
    ("ack", "ack_due", "acknowledged_at", "确认"),
    ("response", "response_due", "first_response_at", "首次回应"),
    ("resolve", "resolve_due", "resolved_at", "解决"),
)


@dataclass
class SweepReport:
    escalations: int = 0
    reminders: int = 0
    breaches: int = 0


def escalate(
    session: Session,
    settings: Settings,
    case: CaseRow,
    level: int,
    now: datetime,
    actor: Actor | None = None,
) -> None:
    """Climb to `level` (1-based step of the grade's ladder) and notify its people."""
    tz = ZoneInfo(settings.app.timezone)
    steps = settings.policy.grade(Severity(case.severity)).escalation
    step = steps[level - 1]
    case.escalation_level = level
    case.updated_at = now
    who = " ".join(mention(settings.policy, r, now, tz) for r in step.notify)
    names = "、".join(role_name(settings.policy, r, now, tz) for r in step.notify)
    assert case.id is not None
    event = add_event(
        session,
        case.id,
        "escalated",
        now,
        actor=(actor.user_id if actor else "koubei"),
        level=level,
        notify=list(step.notify),
    )
    if actor is not None:
        why = f"{actor.mention} 手动升级"
    else:
        why = f"开单 {step.after_minutes:g} 分钟仍未确认"
    text = f"🚨 升级 L{level}：{why}，通知 {names} {who}"
    announce(session, settings, case, event, text, now, broadcast=True, kind=AlertKind.ESCALATION)


def _notice(
    session: Session,
    settings: Settings,
    case: CaseRow,
    key: str,
    kind: AlertKind,
    text: str,
    now: datetime,
) -> bool:
    """A reminder or breach line in the thread, once per case and deadline."""
    assert case.id is not None
    dedup = f"case:{case.id}:{kind.value}:{key}"
    if alert_exists(session, dedup):
        return False
    event = add_event(session, case.id, kind.value, now, deadline=key)
    session.flush()
    # The event's own dedup key would differ each sweep; pin it to the deadline.
    from monitor.alerting.alerts import enqueue_alert
    from monitor.alerting.blocks import thread_reply

    enqueue_alert(
        session,
        settings,
        kind=kind,
        severity=Severity(case.severity),
        dedup_key=dedup,
        case_id=case.id,
        now=now,
        channel_key=case_channel_key(settings, case),
        method="reply",
        build=lambda alert_id: thread_reply(alert_id, case, text),
    )
    assert event.id is not None
    return True


def sweep_case(session: Session, settings: Settings, case: CaseRow, now: datetime) -> SweepReport:
    report = SweepReport()
    grade = settings.policy.grade(Severity(case.severity))
    tz = ZoneInfo(settings.app.timezone)
    if case.state in (CaseState.OPEN.value, CaseState.REOPENED.value):
        for level, step in enumerate(grade.escalation, start=1):
            step_at = clock_start(case, settings.policy).timestamp() + step.after_minutes * 60
            if case.escalation_level < level and now.timestamp() >= step_at:
                escalate(session, settings, case, level, now)
                report.escalations += 1
    fraction = settings.policy.reminder_at_fraction
    for key, due_attr, done_attr, label in _DEADLINES:
        due: datetime | None = getattr(case, due_attr)
        if due is None or getattr(case, done_attr) is not None:
            continue
        if key == "ack" and case.state == CaseState.ACKNOWLEDGED.value:
            continue
        owner = (
            Actor(case.owner).mention if case.owner else mention(settings.policy, "oncall", now, tz)
        )
        local_due = due.astimezone(tz).strftime("%H:%M")
        if now >= due:
            text = f"⛔ 已超过{label}时限（{local_due}）{owner}"
            report.breaches += _notice(session, settings, case, key, AlertKind.BREACH, text, now)
        elif now >= (start := clock_start(case, settings.policy)) + (due - start) * fraction:
            left = max(1, round((due - now).total_seconds() / 60))
            text = f"⏰ {label}时限 {local_due}，还剩 {left} 分钟 {owner}"
            report.reminders += _notice(session, settings, case, key, AlertKind.REMINDER, text, now)
    return report


def sweep(engine: Engine, settings: Settings, clock: Clock) -> SweepReport:
    """One pass over every active case; each case in its own transaction."""
    total = SweepReport()
    with Session(engine) as session:
        ids = (
            session.execute(select(col(CaseRow.id)).where(col(CaseRow.state).in_(ACTIVE)))
            .scalars()
            .all()
        )
    for case_id in ids:
        with Session(engine) as session, session.begin():
            case = session.get(CaseRow, case_id, with_for_update=True)
            if case is None or case.state not in ACTIVE:
                continue
            r = sweep_case(session, settings, case, clock.now())
        total.escalations += r.escalations
        total.reminders += r.reminders
        total.breaches += r.breaches
    return total
