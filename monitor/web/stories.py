"""/stories: positive posts ranked for PR, and the shortlist with its notes.

The rank favours what makes a story worth telling: detailed, specific praise
(length of the text), a high rating, votes, recency and the grader's confidence.
Nothing here publishes anything: a shortlisted post is a note for PR, who ask
the customer's consent before telling the story.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from monitor.classify.pii import mask_pii
from monitor.store.tables import PostRow, StoryPickRow, UserRow, VerdictRow
from monitor.store.users import actor_id, at_least, names_by_actor
from monitor.web.auth import check_csrf, flash, role
from monitor.web.pages import board_of, render

router = APIRouter()
WINDOW_DAYS = 90
TOP = 50


@dataclass
class Story:
    post: PostRow
    title: str
    body: str
    score: float
    why: list[str]
    pick: StoryPickRow | None


def rank(post: PostRow, confidence: float, now: datetime) -> tuple[float, list[str]]:
    """A story's score (higher first) and the reasons, in words PR reads."""
    length = len(post.body)
    age_days = max(0.0, (now - post.published_at).total_seconds() / 86400)
    parts = {
        f"详细（{length} 字）": 2 * min(length, 300) / 300,
        f"{post.rating} 星": (post.rating - 3) / 2 if post.rating and post.rating > 3 else 0.0,
        f"{post.votes} 赞": min(1.0, math.log1p(post.votes) / math.log1p(100)),
        f"{int(age_days)} 天前": math.exp(-age_days / 30),
        f"正面把握 {confidence:.0%}": confidence,
    }
    why = [label for label, value in parts.items() if value >= 0.2]
    return round(sum(parts.values()), 2), why


def load_stories(session: Session, now: datetime) -> list[Story]:
    latest = (
        select(col(VerdictRow.post_id), func.max(col(VerdictRow.id)).label("vid"))
        .group_by(col(VerdictRow.post_id))
        .subquery()
    )
    rows = session.execute(
        select(PostRow, VerdictRow, StoryPickRow)
        .join(latest, latest.c.post_id == col(PostRow.id))
        .join(VerdictRow, col(VerdictRow.id) == latest.c.vid)
        .outerjoin(StoryPickRow, col(StoryPickRow.post_id) == col(PostRow.id))
        .where(
            col(VerdictRow.sentiment) == "positive",
            col(PostRow.published_at) >= now - timedelta(days=WINDOW_DAYS),
        )
    ).all()
    stories = []
    for post, verdict, pick in rows:
        score, why = rank(post, verdict.sentiment_score, now)
        stories.append(Story(post, mask_pii(post.title), mask_pii(post.body), score, why, pick))
    stories.sort(key=lambda s: (s.pick is None, -s.score))  # the shortlist first
    return stories[:TOP]


@router.get("/stories")
def stories_page(request: Request, user: Annotated[UserRow, role("viewer")]) -> Response:
    board = board_of(request)
    with Session(board.engine) as session:
        stories = load_stories(session, board.clock.now())
        names = names_by_actor(session)
        session.expunge_all()
    return render(
        request,
        "stories.html",
        stories=stories,
        names=names,
        can_pick=at_least(user.role, "agent"),
        window=WINDOW_DAYS,
    )


@router.post("/stories/{post_id}/shortlist", dependencies=[Depends(check_csrf)])
def shortlist(
    request: Request,
    post_id: int,
    user: Annotated[UserRow, role("agent")],
    note: Annotated[str, Form()] = "",
) -> Response:
    board = board_of(request)
    with Session(board.engine) as session, session.begin():
        if session.get(PostRow, post_id) is None:
            flash(request, f"没有帖子 #{post_id}")
            return RedirectResponse("/stories", status_code=303)
        pick = session.execute(
            select(StoryPickRow).where(col(StoryPickRow.post_id) == post_id)
        ).scalar_one_or_none()
        if pick is None:
            pick = StoryPickRow(
                post_id=post_id, picked_by=actor_id(user), picked_at=board.clock.now()
            )
            session.add(pick)
        pick.note = note.strip()[:1000]
    flash(request, f"已加入候选：帖子 #{post_id}")
    return RedirectResponse("/stories", status_code=303)


@router.post("/stories/{post_id}/remove", dependencies=[Depends(check_csrf)])
def remove(request: Request, post_id: int, user: Annotated[UserRow, role("agent")]) -> Response:
    with Session(board_of(request).engine) as session, session.begin():
        session.execute(delete(StoryPickRow).where(col(StoryPickRow.post_id) == post_id))
    flash(request, f"已移出候选：帖子 #{post_id}")
    return RedirectResponse("/stories", status_code=303)
