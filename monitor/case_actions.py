"""What people do to a case: acknowledge, assign, first response, resolve, reopen,
mark false positive, escalate.

Shared by Slack buttons, the slash command, the modal, the case board and the tests. Each
action checks the case's state, records a CaseEvent (who, when, what), tells
the case's thread and edits its message, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.cases import add_event, apply_deadlines
from monitor.config import Settings
from monitor.domain import AlertKind, CaseState, Mention, Notice, Severity, case_state_name
from monitor.notices import Said, case_notice, event_notice, plain, role_mention, role_name
from monitor.store.notices import can_wait, case_route, enqueue
from monitor.store.rows import is_later, write_later
from monitor.store.sql import latest_verdict_only
from monitor.store.tables import CaseEventRow, CaseRow, PostRow, VerdictRow

ACTIVE = (CaseState.OPEN.value, CaseState.ACKNOWLEDGED.value, CaseState.REOPENED.value)


class ActionRefused(Exception):
    """The action does not apply to the case as it is (already resolved, ...)."""


@dataclass(frozen=True)
class Actor:
    user_id: str  # Slack user id, or "koubei"
    name: str = ""

    def said(self, said: Said) -> str:
        """The actor in a notice's text: a mention of a Slack user, else a name."""
        if self.user_id == "koubei":
            return "Koubei"
        # A board account without a Slack id has no mention: its name is written instead.
        if self.user_id.startswith("web:"):
            return plain(self.name or self.user_id[4:])
        return said.at(Mention(person=self.user_id))


def _minutes(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() / 60))


def announce(
    session: Session,
    settings: Settings,
    case: CaseRow,
    event: CaseEventRow,
    text: str,
    now: datetime,
    *,
    broadcast: bool = False,
    kind: AlertKind = AlertKind.EVENT,
    edit: bool = True,
    said: Said | None = None,
) -> None:
    """Tell the case's thread about an event and (unless `edit` is off) edit its message.

    `text` is a notice's text: plain words with the marks of `said` (mentions, links).
    An event written later (a page's, `rows.insert_later`) is told by an alert written after
    it, named once it has its id.
    """
    told_later = event.id is None and not edit and can_wait(session) and is_later(session, event)
    if event.id is None and not told_later:
        # An event made by hand, not by add_event, or one waiting whose message is edited:
        # its id names the notices.
        write_later(session)
        session.flush()
    assert case.id is not None
    route = case_channel_key(session, settings, case)
    case_id = case.id

    def key() -> str:
        return f"case:{case_id}:event:{event.id}"

    notice = event_notice(
        settings,
        case,
        kind=kind,
        dedup_key=key(),
        route=route,
        text=text,
        said=said or Said(),
        broadcast=broadcast,
    )
    if told_later and event.id is None:  # still waiting: the reply follows it
        enqueue(session, settings, notice, now, method="reply", later=True, dedup_key=key)
        return
    assert event.id is not None
    enqueue(session, settings, notice, now, method="reply")
    if not edit:
        return
    enqueue(
        session,
        settings,
        case_update(session, settings, case, event, now, route),
        now,
        method="update",
    )


def case_rows(session: Session, case: CaseRow) -> tuple[PostRow, VerdictRow]:
    """The case's most severe post (its first on a tie) and that post's latest verdict."""
    rows = session.execute(
        select(PostRow, VerdictRow)
        .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
        .where(col(PostRow.case_id) == case.id, latest_verdict_only())
        .order_by(col(PostRow.id))
    ).all()
    if not rows:
        raise LookupError(f"case {case.id} has no graded post")
    # max() keeps the first of equals: the earliest post on a tie.
    post, verdict = max(rows, key=lambda pv: Severity(pv[1].severity).rank)
    return post, verdict


def case_update(
    session: Session,
    settings: Settings,
    case: CaseRow,
    event: CaseEventRow,
    now: datetime,
    route: str,
) -> Notice:
    """The case's message as it is now, to edit it in place."""
    post, verdict = case_rows(session, case)
    return case_notice(
        settings,
        case,
        post,
        verdict,
        kind=AlertKind.UPDATE,
        dedup_key=f"case:{case.id}:update:{event.id}",
        headline="新投诉",
        now=now,
        mention_oncall=case.state == "open",
        route=route,
    )


def case_channel_key(session: Session, settings: Settings, case: CaseRow) -> str:
    """The route of the case's message (where it was first announced)."""
    assert case.id is not None
    return case_route(session, case.id) or settings.policy.grade(Severity(case.severity)).channel


def _event(
    session: Session, case: CaseRow, kind: str, actor: Actor, now: datetime, **detail: object
) -> CaseEventRow:
    assert case.id is not None
    event = add_event(session, case.id, kind, now, actor=actor.user_id, **detail)
    case.updated_at = now
    return event


def _require(case: CaseRow, states: tuple[str, ...], action: str) -> None:
    if case.state not in states:
        raise ActionRefused(
            f"工单 #{case.id} 当前状态为{case_state_name(case.state)}，不能{action}"
        )


def acknowledge(
    session: Session, settings: Settings, case: CaseRow, actor: Actor, now: datetime
) -> str:
    _require(case, (CaseState.OPEN.value, CaseState.REOPENED.value), "确认")
    case.state = CaseState.ACKNOWLEDGED.value
    case.acknowledged_at = case.acknowledged_at or now
    case.owner = case.owner or actor.user_id
    event = _event(session, case, "acknowledged", actor, now)
    said = Said()
    text = f"✅ {actor.said(said)} 已确认（开单后 {_minutes(case.opened_at, now)} 分钟），停止升级"
    announce(session, settings, case, event, text, now, said=said)
    return f"已确认工单 #{case.id}"


def assign(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    owner: Actor | None = None,
) -> str:
    """The actor takes the case, or (a lead reassigning) hands it to `owner`."""
    _require(case, ACTIVE, "指派")
    previous = case.owner
    new = owner or actor
    case.owner = new.user_id
    event = _event(session, case, "assigned", actor, now, previous=previous, owner=new.user_id)
    said = Said()
    if new.user_id == actor.user_id:
        text = f"👤 {actor.said(said)} 负责此工单"
    else:
        text = f"👤 {actor.said(said)} 将工单指派给 {new.said(said)}"
    announce(session, settings, case, event, text, now, said=said)
    if new.user_id == actor.user_id:
        return f"工单 #{case.id} 由你负责"
    return f"工单 #{case.id} 已指派给 {new.name or new.user_id}"


def first_response(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    text: str,
    url: str,
) -> str:
    """The public reply went out: the first-response clock stops, the case stays open."""
    _require(case, ACTIVE, "记录首次回应")
    if not url.startswith(("https://", "http://")):
        raise ActionRefused("请填写公开回复的链接（http:// 或 https:// 开头）")
    if not text.strip():
        raise ActionRefused("请填写公开回复的内容")
    case.first_response_at = case.first_response_at or now
    case.public_reply_url = url
    case.acknowledged_at = case.acknowledged_at or now
    if case.state != CaseState.ACKNOWLEDGED.value:
        case.state = CaseState.ACKNOWLEDGED.value
    case.owner = case.owner or actor.user_id
    event = _event(session, case, "first_response", actor, now, text=text.strip(), url=url)
    said = Said()
    announce(
        session,
        settings,
        case,
        event,
        f"💬 {actor.said(said)} 已公开回复（开单后 {_minutes(case.opened_at, now)} 分钟）："
        f"{plain(text.strip())} {said.link('链接', url)}",
        now,
        said=said,
    )
    return f"已记录工单 #{case.id} 的首次回应"


def reopen(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    reason: str,
) -> str:
    """A resolved (or wrongly dismissed) case comes back as new: its clocks start again
    from now and it climbs the escalation ladder until someone acknowledges it."""
    _require(case, (CaseState.RESOLVED.value, CaseState.FALSE_POSITIVE.value), "重开")
    if not reason.strip():
        raise ActionRefused("请填写重开原因")
    previous = case.state
    case.state = CaseState.REOPENED.value
    case.resolved_at = None
    case.escalation_level = 0
    apply_deadlines(case, settings.policy, start=now)
    event = _event(session, case, "reopened", actor, now, reason=reason.strip(), previous=previous)
    said = Said()
    announce(
        session,
        settings,
        case,
        event,
        f"🔁 {actor.said(said)} 重开了工单：{plain(reason.strip())}",
        now,
        broadcast=True,
        said=said,
    )
    return f"工单 #{case.id} 已重开"


def resolve(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    note: str,
    public_reply_url: str | None = None,
    satisfaction: int | None = None,
    root_cause: str | None = None,
) -> str:
    _require(case, ACTIVE, "解决")
    if not note.strip():
        raise ActionRefused("请填写处理说明")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ActionRefused("满意度应为 1-5")
    case.state = CaseState.RESOLVED.value
    case.resolved_at = now
    case.acknowledged_at = case.acknowledged_at or now
    case.owner = case.owner or actor.user_id
    case.resolution_note = note.strip()
    if root_cause and root_cause.strip():
        case.resolution_note += f"（根因：{root_cause.strip()}）"
    if public_reply_url:
        case.public_reply_url = public_reply_url
        case.first_response_at = case.first_response_at or now
    if satisfaction is not None:
        case.satisfaction = satisfaction
    event = _event(
        session,
        case,
        "resolved",
        actor,
        now,
        note=case.resolution_note,
        public_reply_url=public_reply_url,
        satisfaction=satisfaction,
        root_cause=(root_cause or "").strip() or None,
    )
    said = Said()
    who = actor.said(said)
    extra = f"，公开回复 {said.link('链接', public_reply_url)}" if public_reply_url else ""
    text = f"🎉 {who} 已解决：{plain(case.resolution_note)}{extra}"
    announce(session, settings, case, event, text, now, said=said)
    return f"工单 #{case.id} 已解决"


def false_positive(
    session: Session, settings: Settings, case: CaseRow, actor: Actor, now: datetime
) -> str:
    _require(case, ACTIVE, "标记误报")
    case.state = CaseState.FALSE_POSITIVE.value
    case.resolved_at = now
    event = _event(session, case, "false_positive", actor, now)
    said = Said()
    text = f"⚪ {actor.said(said)} 标记为误报"
    announce(session, settings, case, event, text, now, said=said)
    return f"工单 #{case.id} 已标记为误报"


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
    said = Said()
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
        why = f"{actor.said(said)} 手动升级"
    else:
        why = f"开单 {step.after_minutes:g} 分钟仍未确认"
    who = " ".join(said.at(role_mention(settings.policy, r, now, tz)) for r in step.notify)
    text = f"🚨 升级 L{level}：{why}，通知 {names} {who}"
    announce(
        session,
        settings,
        case,
        event,
        text,
        now,
        broadcast=True,
        kind=AlertKind.ESCALATION,
        said=said,
    )


def escalate_now(
    session: Session, settings: Settings, case: CaseRow, actor: Actor, now: datetime
) -> str:
    _require(case, ACTIVE, "升级")
    steps = settings.policy.grade(Severity(case.severity)).escalation
    if case.escalation_level >= len(steps):
        raise ActionRefused(f"工单 #{case.id} 已在最高升级级别")
    escalate(session, settings, case, case.escalation_level + 1, now, actor=actor)
    return f"工单 #{case.id} 已升级到 L{case.escalation_level}"
