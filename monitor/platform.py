"""Complaint-platform progress moves cases: status changes, company replies, completion.

黑猫 and 聚投诉 track each complaint to the end. Each status change becomes a
CaseEvent; the company's first reply is the case's first response; 已完成
resolves the case with the user's evaluation as its satisfaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from monitor.case_actions import ACTIVE, announce
from monitor.cases import add_event
from monitor.config import Settings
from monitor.domain import CaseState, PlatformState
from monitor.store.notices import case_told
from monitor.store.tables import CaseRow, PostRow


def apply_platform(
    session: Session,
    settings: Settings,
    post: PostRow,
    platform: PlatformState,
    previous: str | None,
    now: datetime,
    *,
    settled_on_arrival: bool = False,
) -> None:
    if post.case_id is None:
        return
    case = session.get(CaseRow, post.case_id, with_for_update=True)
    if case is None or case.id is None:
        return
    told = case_told(session, case.id)
    if previous is not None and previous != platform.status:
        event = add_event(
            session,
            case.id,
            "platform_status",
            now,
            actor=post.kind,
            post_id=post.id,
            old=previous,
            new=platform.status,
        )
        if told and not platform.resolved:
            announce(
                session,
                settings,
                case,
                event,
                f"📮 {post.kind} 投诉状态：{previous} → {platform.status}",
                now,
            )
    if platform.replied_at is not None and (
        case.first_response_at is None or platform.replied_at < case.first_response_at
    ):
        case.first_response_at = platform.replied_at
        add_event(
            session,
            case.id,
            "first_response",
            platform.replied_at,
            actor=post.kind,
            post_id=post.id,
        )
    # First seen already closed on its platform: nobody was paged, nobody should be.
    closes = platform.resolved or (settled_on_arrival and platform.final)
    if closes and case.state in ACTIVE:
        at = platform.completed_at or now
        case.state = CaseState.RESOLVED.value
        case.resolved_at = at
        case.acknowledged_at = case.acknowledged_at or at
        case.satisfaction = platform.satisfaction
        case.resolution_note = case.resolution_note or (
            f"{post.kind} 平台显示投诉已完成"
            if platform.resolved
            else f"{post.kind} 平台首次发现时状态为{platform.status}"
        )
        case.updated_at = now
        event = add_event(
            session,
            case.id,
            "resolved",
            at,
            actor=post.kind,
            post_id=post.id,
            satisfaction=platform.satisfaction,
        )
        if told:
            stars = f"，用户评价 {platform.satisfaction} 星" if platform.satisfaction else ""
            announce(session, settings, case, event, f"🎉 {post.kind} 显示投诉已完成{stars}", now)
