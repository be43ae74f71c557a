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

from monitor.case_actions import ACTIVE, Actor, case_channel_key, escalate
from monitor.cases import add_event, clock_start
from monitor.clock import Clock
from monitor.config import Settings
from monitor.domain import AlertKind, CaseState, Severity
from monitor.notices import Said, event_notice, role_mention
from monitor.store.notices import alert_exists, enqueue
from monitor.store.tables import CaseRow

__all__ = ["SweepReport", "escalate", "sweep", "sweep_case"]

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


def _notice(
    session: Session,
    settings: Settings,
    case: CaseRow,
    key: str,
    kind: AlertKind,
    text: str,
    said: Said,
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
    notice = event_notice(
        settings,
        case,
        kind=kind,
        dedup_key=dedup,
        route=case_channel_key(session, settings, case),
        text=text,
        said=said,
    )
    enqueue(session, settings, notice, now, method="reply")
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
        said = Said()
        owner = (
            Actor(case.owner).said(said)
            if case.owner
            else said.at(role_mention(settings.policy, "oncall", now, tz))
        )
        local_due = due.astimezone(tz).strftime("%H:%M")
        if now >= due:
            text = f"⛔ 已超过{label}时限（{local_due}）{owner}"
            report.breaches += _notice(
                session, settings, case, key, AlertKind.BREACH, text, said, now
            )
        elif now >= (start := clock_start(case, settings.policy)) + (due - start) * fraction:
            left = max(1, round((due - now).total_seconds() / 60))
            text = f"⏰ {label}时限 {local_due}，还剩 {left} 分钟 {owner}"
            report.reminders += _notice(
                session, settings, case, key, AlertKind.REMINDER, text, said, now
            )
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
