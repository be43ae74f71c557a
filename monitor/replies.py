"""A case's public reply (公开回复): the company answering the customer where they wrote.

App Store reviews read through App Store Connect are answered through Apple's API: the
reply is queued in the outbox (so a lost answer never posts it twice) and the review is
read again until Apple publishes it. Platforms without a reply API (黑猫, 聚投诉, the
Android stores) are answered by hand there; Koubei records the text and the link. Either
way the reply is the case's first response, and it is checked before it goes anywhere: no
personal data (it is public), and within the platform's length.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from monitor.case_actions import ACTIVE, ActionRefused, Actor, announce, first_response
from monitor.cases import add_event
from monitor.classify.pii import mask_pii
from monitor.config import Settings
from monitor.domain import AlertKind, CaseState, Notice, Severity, case_state_name
from monitor.notices import Said
from monitor.store.notices import enqueue
from monitor.store.tables import CaseRow, PostRow

REPLY_API_KINDS = ("appstoreconnect",)
REPLY_PREFIX = "appstoreconnect:"
MAX_REPLY_CHARS = 5970  # Apple's limit on a developer response
PENDING = "回复待发布"
REPLY_SINK = "appstore-replies"  # the sink, beside the chat sinks, that posts to Apple


def reply_channel(source: str, review_id: str) -> str:
    """The outbox channel of a reply to one review through one App Store Connect source."""
    return f"{REPLY_PREFIX}{source}:{review_id}"


def check_reply(text: str, limit: int | None) -> str:
    """The reply as it will be sent, or ActionRefused saying what to change."""
    text = text.strip()
    if not text:
        raise ActionRefused("请填写回复内容")
    if mask_pii(text) != text:
        raise ActionRefused(
            "回复是公开的，其中不能有个人信息（手机号、身份证号、银行卡号、邮箱等）：请删除后再发"
        )
    if limit is not None and len(text) > limit:
        raise ActionRefused(f"回复过长：{len(text)} 字，App Store 最多 {limit} 字")
    return text


def record_reply(
    session: Session,
    settings: Settings,
    case: CaseRow,
    actor: Actor,
    now: datetime,
    *,
    text: str,
    link: str | None = None,
) -> str:
    """Reply publicly on the case's platform (or record a reply made there by hand).

    One path for the case page, `/koubei reply` and `koubei reply`: App Store Connect
    reviews are answered through Apple's API; other platforms go to
    `case_actions.first_response` with the link of the reply made there.
    """
    if case.id is None or case.state not in ACTIVE:
        raise ActionRefused(f"工单 #{case.id} 当前状态为 {case_state_name(case.state)}，不能回复")
    posts = list(
        session.execute(
            select(PostRow).where(col(PostRow.case_id) == case.id).order_by(col(PostRow.id))
        ).scalars()
    )
    reviews = [p for p in posts if p.kind in REPLY_API_KINDS]
    text = check_reply(text, MAX_REPLY_CHARS if reviews else None)
    if not reviews:
        if not link:
            raise ActionRefused("该平台没有回复接口：请在平台上回复后，附上回复的链接")
        return first_response(session, settings, case, actor, now, text=text, url=link)
    first = case.first_response_at is None
    case.first_response_at = case.first_response_at or now
    case.acknowledged_at = case.acknowledged_at or now
    if case.state != CaseState.ACKNOWLEDGED.value:
        case.state = CaseState.ACKNOWLEDGED.value
    case.owner = case.owner or actor.user_id
    case.updated_at = now
    event = add_event(
        session,
        case.id,
        "first_response",
        now,
        actor=actor.user_id,
        text=text,
        via="appstoreconnect",
        reviews=[p.external_id for p in reviews],
    )
    session.flush()  # the event's id names the reply's outbox rows
    for post in reviews:
        assert post.id is not None
        severity = Severity(case.severity) if case.severity != "none" else Severity.P4
        notice = Notice(
            kind=AlertKind.REVIEW_REPLY,
            dedup_key=f"case:{case.id}:reply:{event.id}:{post.id}",
            route="review-reply",
            headline=text,
            grade=severity,
            case_id=case.id,
            extra={"review_id": post.external_id, "source": post.source, "text": text},
        )
        enqueue(
            session,
            settings,
            notice,
            now,
            to=(REPLY_SINK, reply_channel(post.source, post.external_id)),
        )
        # Read the review again on later runs until Apple publishes the response.
        post.platform_status = PENDING
        post.extra = {**(post.extra or {}), "platform": {"final": False, "status": PENDING}}
    marks = Said()
    said = f"💬 {actor.said(marks)} 已在 App Store 公开回复（待 Apple 发布）" + (
        "，计为首次回应" if first else ""
    )
    announce(session, settings, case, event, f"{said}：{text[:300]}", now, said=marks)
    return f"工单 #{case.id} 的回复已排队发送到 App Store，Apple 发布前显示为“{PENDING}”"
