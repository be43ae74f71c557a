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

from sqlmodel import Session

from monitor.alerting.alerts import enqueue_alert
from monitor.alerting.blocks import escape_mrkdwn, thread_reply
from monitor.alerting.render import render_case
from monitor.cases import add_event, apply_deadlines
from monitor.config import Settings
from monitor.domain import AlertKind, CaseState, Severity, case_state_name
from monitor.store.tables import CaseEventRow, CaseRow

ACTIVE = (CaseState.OPEN.value, CaseState.ACKNOWLEDGED.value, CaseState.REOPENED.value)


class ActionRefused(Exception):
    """The action does not apply to the case as it is (already resolved, ...)."""


@dataclass(frozen=True)
class Actor:
    user_id: str  # Slack user id, or "koubei"
    name: str = ""

    @property
    def mention(self) -> str:
        if self.user_id == "koubei":
            return "Koubei"
        # A board account without a Slack id has no mention: its name is written instead.
        if self.user_id.startswith("web:"):
            return escape_mrkdwn(self.name or self.user_id[4:])
        return f"<@{self.user_id}>"


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
) -> None:
    """Tell the case's thread about an event and (unless `edit` is off) edit its message."""
    session.flush()
    assert case.id is not None and event.id is not None
    severity = Severity(case.severity)
    channel_key = case_channel_key(settings, case)
    enqueue_alert(
        session,
        settings,
        kind=kind,
        severity=severity,
        dedup_key=f"case:{case.id}:event:{event.id}",
        case_id=case.id,
        now=now,
        channel_key=channel_key,
        method="reply",
        build=lambda alert_id: thread_reply(alert_id, case, text, broadcast=broadcast),
    )
    if not edit:
        return
    tz = ZoneInfo(settings.app.timezone)
    enqueue_alert(
        session,
        settings,
        kind=AlertKind.UPDATE,
        severity=severity,
        dedup_key=f"case:{case.id}:update:{event.id}",
        case_id=case.id,
        now=now,
        channel_key=channel_key,
        method="update",
        build=lambda alert_id: render_case(
            session, settings.policy, case, alert_id=alert_id, headline="新投诉", tz=tz, now=now
        ),
    )


def case_channel_key(settings: Settings, case: CaseRow) -> str:
    """The channel holding the case's message (where it was first announced)."""
    if case.slack_channel_name:
        for key, channel in settings.app.slack.channels.items():
            if channel == case.slack_channel_name:
                return key
    return settings.policy.grade(Severity(case.severity)).channel


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
    text = f"✅ {actor.mention} 已确认（开单后 {_minutes(case.opened_at, now)} 分钟），停止升级"
    announce(session, settings, case, event, text, now)
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
    if new.user_id == actor.user_id:
        text = f"👤 {actor.mention} 负责此工单"
    else:
        text = f"👤 {actor.mention} 将工单指派给 {new.mention}"
    announce(session, settings, case, event, text, now)
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
    announce(
        session,
        settings,
        case,
        event,
        f"💬 {actor.mention} 已公开回复（开单后 {_minutes(case.opened_at, now)} 分钟）："
        f"{escape_mrkdwn(text.strip())} <{escape_mrkdwn(url)}|链接>",
        now,
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
    announce(
        session,
        settings,
        case,
        event,
        f"🔁 {actor.mention} 重开了工单：{escape_mrkdwn(reason.strip())}",
        now,
        broadcast=True,
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
    extra = f"，公开回复 <{escape_mrkdwn(public_reply_url)}|链接>" if public_reply_url else ""
    text = f"🎉 {actor.mention} 已解决：{escape_mrkdwn(case.resolution_note)}{extra}"
    announce(session, settings, case, event, text, now)
    return f"工单 #{case.id} 已解决"


def false_positive(
    session: Session, settings: Settings, case: CaseRow, actor: Actor, now: datetime
) -> str:
    _require(case, ACTIVE, "标记误报")
    case.state = CaseState.FALSE_POSITIVE.value
    case.resolved_at = now
    event = _event(session, case, "false_positive", actor, now)
    announce(session, settings, case, event, f"⚪ {actor.mention} 标记为误报", now)
    return f"工单 #{case.id} 已标记为误报"


def escalate_now(
    session: Session, settings: Settings, case: CaseRow, actor: Actor, now: datetime
) -> str:
    from monitor.alerting.sla import escalate

    _require(case, ACTIVE, "升级")
    steps = settings.policy.grade(Severity(case.severity)).escalation
    if case.escalation_level >= len(steps):
        raise ActionRefused(f"工单 #{case.id} 已在最高升级级别")
    escalate(session, settings, case, case.escalation_level + 1, now, actor=actor)
    return f"工单 #{case.id} 已升级到 L{case.escalation_level}"
