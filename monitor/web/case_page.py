"""The case page: its posts, grades and reasons, timeline, deadlines, and the actions.

An action here calls the same function as the Slack button (monitor.case_actions,
through Interactions.run: the row locked, one transaction), so it writes the
same case event and queues the same thread reply and message edit in the outbox;
the outbox is then drained at once, as after a click in Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session, col

from monitor import case_actions
from monitor.case_actions import Actor
from monitor.classify.pii import mask_pii
from monitor.config import Settings
from monitor.replies import record_reply
from monitor.store.tables import CaseEventRow, CaseRow, DeliveryRow, PostRow, UserRow, VerdictRow
from monitor.store.users import actor_id, at_least, names_by_actor
from monitor.web.auth import check_csrf, flash, role
from monitor.web.board import DEADLINES, next_deadline
from monitor.web.interactions import Action
from monitor.web.pages import board_of, render

router = APIRouter()

EVENT_NAMES = {
    "opened": "开单",
    "post_added": "新增帖子",
    "regraded": "升级分级",
    "acknowledged": "确认",
    "assigned": "指派",
    "first_response": "首次回应",
    "resolved": "解决",
    "reopened": "重开",
    "false_positive": "标记误报",
    "escalated": "升级",
    "platform_status": "平台状态变更",
    "note": "备注",
}
# Who may do what: agents act on cases; reassigning to someone else and reopening are a lead's.
ACTION_ROLES = {
    "ack": "agent",
    "take": "agent",
    "reassign": "lead",
    "first_response": "agent",
    "resolve": "agent",
    "reopen": "lead",
    "false_positive": "agent",
    "escalate": "agent",
}


@dataclass
class PostView:
    post: PostRow
    title: str
    body: str
    verdict: VerdictRow | None


def _posts(session: Session, case_id: int) -> list[PostView]:
    posts = session.execute(
        select(PostRow).where(col(PostRow.case_id) == case_id).order_by(col(PostRow.published_at))
    ).scalars()
    out = []
    for post in posts:
        verdict = session.execute(
            select(VerdictRow)
            .where(col(VerdictRow.post_id) == post.id)
            .order_by(col(VerdictRow.id).desc())
            .limit(1)
        ).scalar_one_or_none()
        out.append(PostView(post, mask_pii(post.title), mask_pii(post.body), verdict))
    return out


def _describe(event: CaseEventRow, names: dict[str, str]) -> str:
    """The event's details in words (masked: notes and replies are free text)."""
    d: dict[str, Any] = event.detail or {}
    parts = []
    if event.kind == "regraded":
        parts.append(f"{d.get('old')} → {d.get('new')}")
    if event.kind == "platform_status":
        parts.append(f"{d.get('old') or '—'} → {d.get('new')}")
    if event.kind == "assigned" and d.get("owner"):
        parts.append(f"负责人：{names.get(str(d['owner']), str(d['owner']))}")
    if event.kind == "escalated" and d.get("level"):
        parts.append(f"L{d.get('level')}")
    for key, label in (
        ("note", "说明"),
        ("root_cause", "根因"),
        ("text", "回复"),
        ("reason", "原因"),
        ("satisfaction", "满意度"),
    ):
        if d.get(key) not in (None, ""):
            parts.append(f"{label}：{mask_pii(str(d[key]))}")
    if d.get("source"):
        parts.append(f"来源：{d['source']}")
    if d.get("similarity"):
        parts.append(f"相似度 {d['similarity']}")
    return "；".join(parts)


SLACK_METHODS = {"post": "Slack 新消息", "reply": "Slack 线程回复", "update": "Slack 消息更新"}
SLACK_STATUS = {"sent": "已送达", "pending": "待发送", "failed": "发送失败"}


def _slack(delivery: DeliveryRow) -> str:
    text = f"{delivery.channel} · {SLACK_STATUS.get(delivery.status, delivery.status)}"
    if delivery.status != "sent" and delivery.last_error:
        text += f"（{delivery.last_error[:120]}）"
    return text


def _links(event: CaseEventRow) -> list[str]:
    d = event.detail or {}
    return [str(d[k]) for k in ("url", "public_reply_url") if d.get(k)]


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: int, user: Annotated[UserRow, role("viewer")]) -> Response:
    board = board_of(request)
    with Session(board.engine) as session:
        case = session.get(CaseRow, case_id)
        if case is None:
            raise HTTPException(404, f"没有工单 #{case_id}")
        posts = _posts(session, case_id)
        events = (
            session.execute(
                select(CaseEventRow)
                .where(col(CaseEventRow.case_id) == case_id)
                .order_by(col(CaseEventRow.at), col(CaseEventRow.id))
            )
            .scalars()
            .all()
        )
        slack = session.execute(
            select(col(DeliveryRow.status), func.count())
            .where(col(DeliveryRow.case_id) == case_id)
            .group_by(col(DeliveryRow.status))
        ).all()
        deliveries = (
            session.execute(
                select(DeliveryRow)
                .where(col(DeliveryRow.case_id) == case_id)
                .order_by(col(DeliveryRow.id))
            )
            .scalars()
            .all()
        )
        names = names_by_actor(session)
        people = (
            session.execute(select(UserRow).where(col(UserRow.active)).order_by(col(UserRow.name)))
            .scalars()
            .all()
        )
        session.expunge_all()
    nxt = next_deadline(case)
    deadlines = [
        (kind, getattr(case, due_col), getattr(case, done_col))
        for kind, due_col, done_col in DEADLINES
        if getattr(case, due_col) is not None
    ]
    timeline = [
        (
            e.at,
            EVENT_NAMES.get(e.kind, e.kind),
            names.get(e.actor, e.actor),
            _describe(e, names),
            _links(e),
        )
        for e in events
    ]
    # What went to the case's Slack message and thread, and whether it arrived.
    timeline += [
        (d.sent_at or d.created_at, SLACK_METHODS.get(d.method, d.method), "Slack", _slack(d), [])
        for d in deliveries
    ]
    timeline.sort(key=lambda item: item[0])
    allowed = {a for a, needed in ACTION_ROLES.items() if at_least(user.role, needed)}
    return render(
        request,
        "case.html",
        case=case,
        posts=posts,
        timeline=timeline,
        slack_status=SLACK_STATUS,
        deadlines=deadlines,
        next=nxt,
        owner_name=names.get(case.owner or "", case.owner or "无人负责"),
        people=[p for p in people if at_least(p.role, "agent")],
        allowed=allowed,
        slack=dict(slack),
    )


def _act(request: Request, case_id: int, user: UserRow, action: str, run: Action) -> Response:
    if not at_least(user.role, ACTION_ROLES[action]):
        flash(request, "你的角色不能执行此操作")
        return RedirectResponse(f"/cases/{case_id}", status_code=303)
    board = board_of(request)
    actor = Actor(actor_id(user), user.display_name or user.name)
    message = board.interactions.run(case_id, actor, run)
    if board.after_action is not None:
        board.after_action()  # the outbox: the thread reply and the message edit go out now
    flash(request, message)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


Text = Annotated[str, Form()]
CSRF = [Depends(check_csrf)]


@router.post("/cases/{case_id}/ack", dependencies=CSRF)
def ack(request: Request, case_id: int, user: Annotated[UserRow, role("agent")]) -> Response:
    return _act(request, case_id, user, "ack", case_actions.acknowledge)


@router.post("/cases/{case_id}/assign", dependencies=CSRF)
def assign(
    request: Request, case_id: int, user: Annotated[UserRow, role("agent")], owner: Text = ""
) -> Response:
    """Take the case (no owner, or oneself) or, for a lead, hand it to someone else."""
    board = board_of(request)
    target: UserRow | None = None
    if owner:
        with Session(board.engine) as session:
            target = session.execute(
                select(UserRow).where(col(UserRow.name) == owner, col(UserRow.active))
            ).scalar_one_or_none()
        if target is None:
            flash(request, f"没有账户 {owner}")
            return RedirectResponse(f"/cases/{case_id}", status_code=303)
    if target is None or target.id == user.id:
        return _act(request, case_id, user, "take", case_actions.assign)
    new = Actor(actor_id(target), target.display_name or target.name)

    def run(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return case_actions.assign(session, settings, case, who, now, owner=new)

    return _act(request, case_id, user, "reassign", run)


@router.post("/cases/{case_id}/first-response", dependencies=CSRF)
def first_response(
    request: Request,
    case_id: int,
    user: Annotated[UserRow, role("agent")],
    text: Text = "",
    url: Text = "",
) -> Response:
    def run(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return record_reply(session, settings, case, who, now, text=text, link=url.strip() or None)

    return _act(request, case_id, user, "first_response", run)


@router.post("/cases/{case_id}/resolve", dependencies=CSRF)
def resolve(
    request: Request,
    case_id: int,
    user: Annotated[UserRow, role("agent")],
    note: Text = "",
    root_cause: Text = "",
    satisfaction: Text = "",
    url: Text = "",
) -> Response:
    def run(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return case_actions.resolve(
            session,
            settings,
            case,
            who,
            now,
            note=note,
            root_cause=root_cause,
            public_reply_url=url.strip() or None,
            satisfaction=int(satisfaction) if satisfaction.isdigit() else None,
        )

    return _act(request, case_id, user, "resolve", run)


@router.post("/cases/{case_id}/reopen", dependencies=CSRF)
def reopen(
    request: Request, case_id: int, user: Annotated[UserRow, role("lead")], reason: Text = ""
) -> Response:
    def run(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return case_actions.reopen(session, settings, case, who, now, reason=reason)

    return _act(request, case_id, user, "reopen", run)


@router.post("/cases/{case_id}/false-positive", dependencies=CSRF)
def false_positive(
    request: Request, case_id: int, user: Annotated[UserRow, role("agent")]
) -> Response:
    return _act(request, case_id, user, "false_positive", case_actions.false_positive)


@router.post("/cases/{case_id}/escalate", dependencies=CSRF)
def escalate(request: Request, case_id: int, user: Annotated[UserRow, role("agent")]) -> Response:
    return _act(request, case_id, user, "escalate", case_actions.escalate_now)
