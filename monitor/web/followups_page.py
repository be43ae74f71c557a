"""/followups: the 回访 list (due and overdue first) and recording a call, as `koubei followup`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from monitor.case_actions import Actor
from monitor.classify.pii import mask_pii
from monitor.config import Settings
from monitor.followups import followups_due, record_followup
from monitor.store.tables import CaseRow, UserRow
from monitor.store.users import actor_id, at_least, names_by_actor
from monitor.web.auth import check_csrf, flash, role
from monitor.web.pages import board_of, render

router = APIRouter()


@router.get("/followups")
def followups_page(request: Request, user: Annotated[UserRow, role("viewer")]) -> Response:
    board = board_of(request)
    now = board.clock.now()
    with Session(board.engine) as session:
        due = followups_due(session, board.interactions.settings, now, upcoming=True)
        names = names_by_actor(session)
    rows = [
        {
            "f": f,
            "title": mask_pii(f.title),
            "state": "已逾期" if f.overdue else ("待回访" if f.due_at <= now else "未到期"),
        }
        for f in sorted(due, key=lambda f: (not f.overdue, f.due_at > now, f.due_at))
    ]
    return render(
        request,
        "followups.html",
        rows=rows,
        names=names,
        can_record=at_least(user.role, "agent"),
    )


@router.post("/followups/{case_id}", dependencies=[Depends(check_csrf)])
def record(
    request: Request,
    case_id: int,
    user: Annotated[UserRow, role("agent")],
    reached: Annotated[str, Form()] = "yes",
    satisfaction: Annotated[str, Form()] = "",
    settled: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    board = board_of(request)
    stars = int(satisfaction) if satisfaction.isdigit() else None
    agrees = {"yes": True, "no": False}.get(settled)

    def run(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return record_followup(
            session,
            settings,
            case,
            who,
            now,
            reached=reached == "yes",
            satisfaction=stars,
            settled=agrees,
            note=note,
        )

    actor = Actor(actor_id(user), user.display_name or user.name)
    flash(request, board.interactions.run(case_id, actor, run))
    if board.after_action is not None:
        board.after_action()  # the thread hears of the call at once, as after a click
    return RedirectResponse("/followups", status_code=303)
