"""Building notices at the work floor: what a case, an event or an ops message says,
with no markup (DESIGN.md, floors).

Scraped and typed text is format-stripped and PII-masked here, never escaped: each
sink's renderer escapes for its own platform. Whom to mention is decided now (who is on
call now), as person keys and roles; renderers resolve them to platform ids. Inline
mentions, links and bold words are marks (`monitor.domain.mention_mark` and friends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from monitor.classify.pii import mask_pii
from monitor.config import Oncall, OncallPerson, Policy, QuietHours, Settings
from monitor.domain import (
    CASE_STATE_NAMES,
    AlertKind,
    Mention,
    Notice,
    NoticeLink,
    Severity,
    link_mark,
    mention_mark,
    strip_format,
)
from monitor.store.tables import CaseRow, PostRow

CATEGORY_LABELS = {
    "collection": "催收",
    "fees": "息费",
    "deduction": "扣款",
    "credit_report": "征信",
    "privacy": "隐私",
    "fraud": "诈骗/冒名",
    "service": "客服",
    "app": "App故障/体验",
    "approval": "审批/额度/放款",
    "other": "其他",
}
SIGNAL_LABELS = {
    "self_harm": "轻生",
    "threat": "威胁/恐吓",
    "third_party": "波及第三方",
    "regulator": "监管",
    "media": "媒体",
    "legal": "报警/诉讼",
    "collective": "集体维权",
}
STATE_ICONS = {"open": "🔴", "acknowledged": "🟡", "resolved": "✅", "reopened": "🔴"}
STATE_LABELS = {
    state: f"{STATE_ICONS.get(state, '⚪')} {name}" for state, name in CASE_STATE_NAMES.items()
}
ACTIVE = ("open", "acknowledged", "reopened")
OPS_KINDS = (AlertKind.SOURCE_HEALTH, AlertKind.DEADMAN, AlertKind.DELIVERY_FAILED)
CASE_LINK = "工单页面"  # the label of the link to the case's page on the board
POST_LINK = "查看原帖"


def plain(text: str) -> str:
    """Scraped or typed text for a notice: format characters dropped, PII masked."""
    return mask_pii(strip_format(text))


def stars(rating: int | None) -> str:
    return "—" if rating is None else "★" * rating + "☆" * (5 - rating)


def local(ts: datetime, tz: ZoneInfo) -> str:
    return ts.astimezone(tz).strftime("%m-%d %H:%M")


@dataclass
class Said:
    """A text being written, with the mentions and links its marks point at."""

    mentions: list[Mention] = field(default_factory=list)
    links: list[NoticeLink] = field(default_factory=list)

    def at(self, mention: Mention) -> str:
        self.mentions.append(mention)
        return mention_mark(len(self.mentions) - 1)

    def link(self, label: str, url: str) -> str:
        self.links.append(NoticeLink(label, strip_format(url)))
        return link_mark(len(self.links) - 1)


def oncall_at(oncall: Oncall, when: datetime, tz: ZoneInfo) -> OncallPerson:
    """The person on call at `when`: an override if one covers it, else the rotation."""
    for override in oncall.overrides:
        if override.start <= when < override.end:
            return override
    local_now = when.astimezone(tz)
    first = datetime.combine(oncall.first_shift, oncall.handover, tzinfo=tz)
    shifts = int((local_now - first) // timedelta(days=oncall.period_days))
    return oncall.rotation[shifts % len(oncall.rotation)]


def role_mention(policy: Policy, role: str, when: datetime, tz: ZoneInfo) -> Mention:
    """A role of policy.yaml ("oncall" is whoever is on call at `when`)."""
    if role == "oncall" and policy.oncall is not None:
        return Mention(person=oncall_at(policy.oncall, when, tz).slack)
    return Mention(role=role)


def role_name(policy: Policy, role: str, when: datetime, tz: ZoneInfo) -> str:
    if role == "oncall" and policy.oncall is not None:
        return f"值班 {oncall_at(policy.oncall, when, tz).name}"
    found = policy.roles.get(role)
    return found.name if found else role


def grade_mentions(
    policy: Policy, severity: Severity, when: datetime, tz: ZoneInfo, *, oncall: bool = True
) -> tuple[Mention, ...]:
    """Whom a grade's message notifies: the grade's mention and (P1-P3) the on-call person."""
    out: list[Mention] = []
    mention = policy.grade(severity).mention.strip() if severity is not Severity.NONE else ""
    if mention == "<!here>":
        out.append(Mention(everyone=True))
    elif mention:
        out.append(Mention(role=mention))
    if oncall and policy.oncall is not None and severity.opens_case:
        out.append(Mention(person=oncall_at(policy.oncall, when, tz).slack))
    return tuple(out)


def status_parts(case: CaseRow, tz: ZoneInfo) -> list[str]:
    """State and the next deadline (the owner is told apart, as a person)."""
    parts = [STATE_LABELS.get(case.state, case.state)]
    if case.state in ("open", "reopened") and case.ack_due:
        parts.append(f"确认时限 {local(case.ack_due, tz)}")
    elif case.state == "acknowledged" and case.first_response_at is None and case.response_due:
        parts.append(f"首次回应时限 {local(case.response_due, tz)}")
    elif case.state == "acknowledged" and case.resolve_due:
        parts.append(f"解决时限 {local(case.resolve_due, tz)}")
    if case.escalation_level:
        parts.append(f"已升级 L{case.escalation_level}")
    if case.state == "resolved" and case.resolved_at:
        parts.append(f"解决于 {local(case.resolved_at, tz)}")
    return parts


def status_text(parts: list[str], owner: str | None) -> str:
    """The state line in plain words: state, owner, next deadline."""
    who = f"负责人 {owner.removeprefix('web:')}" if owner else "负责人 —"
    return " · ".join([parts[0], who, *parts[1:]])


def allowed_actions(case: CaseRow) -> tuple[str, ...]:
    """The case actions left to take (buttons on Slack, the case page elsewhere)."""
    if case.state not in ACTIVE:
        return ()
    first = () if case.state == "acknowledged" else ("ack",)
    return (*first, "assign", "resolve", "false_positive", "escalate")


def case_link(settings: Settings, case_id: int) -> tuple[NoticeLink, ...]:
    base = settings.app.board_url
    return (NoticeLink(CASE_LINK, f"{base}/cases/{case_id}"),) if base else ()


def case_state(case: CaseRow, tz: ZoneInfo) -> dict[str, Any]:
    """The case's state as a notice carries it: renderers show it, groups re-read it."""
    parts = status_parts(case, tz)
    return {"status_parts": parts, "owner": case.owner, "state": case.state}


class Grading(Protocol):
    """What a case's message shows of a grade: a stored VerdictRow, or the Verdict a page
    just stored (it does not keep the rows it wrote)."""

    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def signals(self) -> Sequence[str]: ...
    @property
    def reasons(self) -> Sequence[str]: ...


def case_notice(
    settings: Settings,
    case: CaseRow,
    post: PostRow,
    verdict: Grading,
    *,
    kind: AlertKind,
    dedup_key: str,
    headline: str,
    now: datetime,
    mention_oncall: bool = True,
    route: str | None = None,
) -> Notice:
    """A case's message: its worst post, the grade's reasons, its state and actions."""
    assert case.id is not None
    tz = ZoneInfo(settings.app.timezone)
    severity = Severity(case.severity)
    grade = settings.policy.grade(severity)
    categories = "、".join(CATEGORY_LABELS.get(c, c) for c in verdict.categories) or "—"
    signals = "、".join(SIGNAL_LABELS.get(s, s) for s in verdict.signals) or "—"
    state = case_state(case, tz)
    return Notice(
        kind=kind,
        dedup_key=dedup_key,
        route=route or grade.channel,
        headline=headline,
        grade=severity,
        case_id=case.id,
        quote=plain(post.body),
        fields=(
            ("来源", post.source),
            ("评分", stars(post.rating)),
            ("版本", post.app_version or "—"),
            ("作者", plain(post.author)),
            ("分类", categories),
            ("信号", signals),
        ),
        reasons=tuple(strip_format(r) for r in verdict.reasons),
        links=(NoticeLink(POST_LINK, strip_format(post.url)), *case_link(settings, case.id)),
        mentions=grade_mentions(settings.policy, severity, now, tz, oncall=mention_oncall),
        actions=allowed_actions(case),
        status=status_text(state["status_parts"], case.owner),
        extra={
            **state,
            "title": plain(post.title),
            "rating": post.rating,
            "published": local(post.published_at, tz),
            "label": grade.label,
            "colour": grade.colour,
        },
    )


def event_notice(
    settings: Settings,
    case: CaseRow,
    *,
    kind: AlertKind,
    dedup_key: str,
    route: str,
    text: str,
    said: Said,
    broadcast: bool = False,
) -> Notice:
    """A line in the case's thread (events, reminders, escalations)."""
    assert case.id is not None
    severity = Severity(case.severity)
    return Notice(
        kind=kind,
        dedup_key=dedup_key,
        route=route,
        headline=text,
        grade=severity if severity is not Severity.NONE else None,
        case_id=case.id,
        links=(*said.links, *case_link(settings, case.id)),
        mentions=tuple(said.mentions),
        extra={"broadcast": broadcast} if broadcast else {},
    )


def message_notice(
    *,
    kind: AlertKind,
    dedup_key: str,
    route: str,
    text: str,
    colour: str,
    said: Said | None = None,
    grade: Severity | None = None,
) -> Notice:
    """A message that belongs to no case (surge, dead-man, source health)."""
    return Notice(
        kind=kind,
        dedup_key=dedup_key,
        route=route,
        headline=text,
        grade=grade,
        links=tuple(said.links) if said else (),
        mentions=tuple(said.mentions) if said else (),
        extra={"colour": colour},
    )


def quiet_until(
    quiet: QuietHours | None, severity: Severity, when: datetime, tz: ZoneInfo
) -> datetime | None:
    """End of the quiet hours `when` falls in, for grades that wait; None: send now."""
    if quiet is None or severity.value not in quiet.grades:
        return None
    local_now = when.astimezone(tz)
    t = local_now.timetz().replace(tzinfo=None)
    overnight = quiet.start > quiet.end
    inside = (t >= quiet.start or t < quiet.end) if overnight else (quiet.start <= t < quiet.end)
    if not inside:
        return None
    end = datetime.combine(local_now.date(), quiet.end, tzinfo=tz)
    if end <= local_now:
        end += timedelta(days=1)
    return end
