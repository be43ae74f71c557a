"""Follow-up calls (回访): after a case is resolved, customer service asks the customer.

A resolved case's follow-up is due `followup_days` after its resolution (policy.yaml, per
grade) and overdue `followup_overdue_days` later. Each attempt is a `followup` case event:
reached or not, the customer's satisfaction (1-5), a note, and whether they agree the
matter is settled. A reached customer who says it is not settled reopens the case.

The customer's own answer on a follow-up is the first source of a case's satisfaction;
the platform's rating (黑猫 已完成) comes next, then what the agent entered on resolving.
Each is kept in its own event, so the report counts them separately.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from monitor.case_actions import ActionRefused, Actor, announce, reopen
from monitor.cases import add_event
from monitor.config import Settings
from monitor.domain import CaseState, Severity
from monitor.notices import Said, plain
from monitor.store.tables import CaseEventRow, CaseRow

FOLLOWUP = "followup"
# Where a satisfaction figure came from, in the order one outranks the next.
CHANNELS = ("followup", "platform", "resolve")
CHANNEL_LABELS = {"followup": "回访", "platform": "平台评价", "resolve": "办结时登记"}


@dataclass(frozen=True)
class FollowupDue:
    case_id: int
    grade: str
    title: str
    owner: str | None
    resolved_at: datetime
    due_at: datetime
    overdue: bool
    attempts: int  # calls that did not reach the customer


def due_at(settings: Settings, case: CaseRow) -> datetime | None:
    """When the case's follow-up falls due; None where the grade has no follow-up."""
    if case.resolved_at is None or case.severity not in ("P1", "P2", "P3", "P4"):
        return None
    days = settings.policy.grade(Severity(case.severity)).followup_days
    return None if days is None else case.resolved_at + timedelta(days=days)


def _attempts(session: Session, case_ids: list[int]) -> dict[int, list[CaseEventRow]]:
    rows = session.execute(
        select(CaseEventRow)
        .where(col(CaseEventRow.case_id).in_(case_ids), col(CaseEventRow.kind) == FOLLOWUP)
        .order_by(col(CaseEventRow.at), col(CaseEventRow.id))
    ).scalars()
    out: dict[int, list[CaseEventRow]] = defaultdict(list)
    for event in rows:
        out[event.case_id].append(event)
    return out


def followups_due(
    session: Session, settings: Settings, now: datetime, *, upcoming: bool = False
) -> list[FollowupDue]:
    """Resolved cases whose customer has not been reached since the resolution, due first.

    `upcoming` also lists follow-ups not due yet.
    """
    cases = (
        session.execute(select(CaseRow).where(col(CaseRow.state) == CaseState.RESOLVED.value))
        .scalars()
        .all()
    )
    attempts = _attempts(session, [c.id for c in cases if c.id is not None])
    grace = timedelta(days=settings.policy.followup_overdue_days)
    out = []
    for case in cases:
        due = due_at(settings, case)
        if due is None or case.id is None or case.resolved_at is None:
            continue
        since = [e for e in attempts.get(case.id, []) if e.at >= case.resolved_at]
        if any(e.detail.get("reached") for e in since):
            continue
        if due > now and not upcoming:
            continue
        out.append(
            FollowupDue(
                case_id=case.id,
                grade=case.severity,
                title=case.title,
                owner=case.owner,
                resolved_at=case.resolved_at,
                due_at=due,
                overdue=now > due + grace,
                attempts=len(since),
            )
        )
    return sorted(out, key=lambda f: (f.due_at, f.case_id))


def record_followup(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    reached: bool,
    satisfaction: int | None = None,
    settled: bool | None = None,
    note: str = "",
) -> str:
    """One follow-up call, in the caller's transaction; returns what to tell the agent."""
    if case.state != CaseState.RESOLVED.value or case.id is None:
        raise ActionRefused(f"工单 #{case.id} 尚未解决，不能登记回访")
    if not reached and (satisfaction is not None or settled is not None):
        raise ActionRefused("未联系上客户时不能登记满意度或是否认可处理结果")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ActionRefused("满意度应为 1-5")
    event = add_event(
        session,
        case.id,
        FOLLOWUP,
        now,
        actor=actor.user_id,
        reached=reached,
        satisfaction=satisfaction,
        settled=settled,
        note=note.strip(),
    )
    case.updated_at = now
    if satisfaction is not None:
        case.satisfaction = satisfaction
    said = Said()
    who = actor.said(said)
    if not reached:
        text = f"📞 {who} 回访未联系上客户" + (f"：{plain(note.strip())}" if note.strip() else "")
        announce(session, settings, case, event, text, now, edit=False, said=said)
        return f"工单 #{case.id} 回访未联系上，已记录，稍后再试"
    stars = f"，满意度 {satisfaction} 星" if satisfaction is not None else ""
    if settled is False:
        text = f"📞 {who} 回访：客户不认可处理结果{stars}，工单重开"
        announce(session, settings, case, event, text, now, edit=False, said=said)
        reopen(session, settings, case, actor, now, reason="回访客户不认可处理结果")
        return f"工单 #{case.id} 回访已记录，客户不认可，工单已重开"
    agreed = "，客户认可处理结果" if settled else ""
    text = f"📞 {who} 回访完成{stars}{agreed}"
    announce(session, settings, case, event, text, now, said=said)
    return f"工单 #{case.id} 回访已记录"


def satisfaction_by_channel(
    session: Session, case_ids: list[int], end: datetime
) -> dict[int, dict[str, int]]:
    """Each case's latest satisfaction per channel, from events before `end`."""
    rows = session.execute(
        select(CaseEventRow)
        .where(
            col(CaseEventRow.case_id).in_(case_ids),
            col(CaseEventRow.kind).in_([FOLLOWUP, "resolved"]),
            col(CaseEventRow.at) < end,
        )
        .order_by(col(CaseEventRow.at), col(CaseEventRow.id))
    ).scalars()
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for event in rows:
        score = event.detail.get("satisfaction")
        if not isinstance(score, int):
            continue
        if event.kind == FOLLOWUP:
            channel = "followup"
        else:  # a platform's completion names the post it read it from
            channel = "platform" if event.detail.get("post_id") else "resolve"
        out[event.case_id][channel] = score
    return dict(out)


def reached_by(session: Session, case_ids: list[int], end: datetime) -> dict[int, datetime]:
    """When each case's customer was first reached on a follow-up, before `end`."""
    out: dict[int, datetime] = {}
    for case_id, events in _attempts(session, case_ids).items():
        for e in events:
            if e.at < end and e.detail.get("reached"):
                out.setdefault(case_id, e.at)
    return out
