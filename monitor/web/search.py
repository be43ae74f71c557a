"""/posts: search stored posts by words and filters; results masked.

Matching is a substring match (LIKE, case-insensitive), which suits Chinese
text with no word boundaries and works alike on SQLite and PostgreSQL; at one
company's volume (tens of thousands of posts) it answers in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from monitor.classify.pii import mask_pii
from monitor.domain import CATEGORIES
from monitor.store.tables import PostRow, UserRow, VerdictRow
from monitor.web.auth import role
from monitor.web.board import GRADES, parse_date
from monitor.web.pages import board_of, render

router = APIRouter()
Q = Annotated[str, Query()]
LIMIT = 100
SENTIMENTS = {"negative": "负面", "neutral": "中性", "positive": "正面"}


@dataclass
class Hit:
    post: PostRow
    title: str
    body: str
    verdict: VerdictRow | None


def _like(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def search_posts(
    session: Session,
    tz: ZoneInfo,
    *,
    q: str = "",
    source: str = "",
    grade: str = "",
    sentiment: str = "",
    category: str = "",
    rating: int | None = None,
    since: str = "",
    until: str = "",
) -> tuple[list[Hit], int]:
    """Matching posts, newest first (at most LIMIT), and how many match in all."""
    latest = (
        select(col(VerdictRow.post_id), func.max(col(VerdictRow.id)).label("vid"))
        .group_by(col(VerdictRow.post_id))
        .subquery()
    )
    query = (
        select(PostRow, VerdictRow)
        .outerjoin(latest, latest.c.post_id == col(PostRow.id))
        .outerjoin(VerdictRow, col(VerdictRow.id) == latest.c.vid)
    )
    for word in q.split()[:8]:  # every word must appear, in the title or the body
        pattern = _like(word)
        query = query.where(
            or_(
                func.lower(col(PostRow.title)).like(pattern, escape="\\"),
                func.lower(col(PostRow.body)).like(pattern, escape="\\"),
            )
        )
    if source:
        query = query.where(col(PostRow.source) == source)
    if grade:
        query = query.where(col(VerdictRow.severity) == grade)
    if sentiment:
        query = query.where(col(VerdictRow.sentiment) == sentiment)
    if rating is not None:
        query = query.where(col(PostRow.rating) == rating)
    start, end = parse_date(since), parse_date(until)
    if start is not None:
        query = query.where(col(PostRow.published_at) >= datetime.combine(start, time(), tz))
    if end is not None:
        limit_at = datetime.combine(end + timedelta(days=1), time(), tz)
        query = query.where(col(PostRow.published_at) < limit_at)
    rows = session.execute(query.order_by(col(PostRow.published_at).desc())).all()
    # Categories are a JSON list: filtered here, the same on both databases.
    hits = [
        Hit(post, mask_pii(post.title), mask_pii(post.body), verdict)
        for post, verdict in rows
        if not category or (verdict is not None and category in verdict.categories)
    ]
    return hits[:LIMIT], len(hits)


@router.get("/posts")
def posts_page(
    request: Request,
    user: Annotated[UserRow, role("viewer")],
    q: Q = "",
    source: Q = "",
    grade: Q = "",
    sentiment: Q = "",
    category: Q = "",
    rating: Q = "",
    since: Q = "",
    until: Q = "",
) -> Response:
    board = board_of(request)
    with Session(board.engine) as session:
        hits, total = search_posts(
            session,
            board.tz,
            q=q.strip()[:200],
            source=source,
            grade=grade if grade in (*GRADES, "none") else "",
            sentiment=sentiment if sentiment in SENTIMENTS else "",
            category=category if category in CATEGORIES else "",
            rating=int(rating) if rating in ("1", "2", "3", "4", "5") else None,
            since=since,
            until=until,
        )
        sources = sorted(session.execute(select(col(PostRow.source)).distinct()).scalars())
        session.expunge_all()
    return render(
        request,
        "posts.html",
        hits=hits,
        total=total,
        limit=LIMIT,
        q=q,
        form=dict(request.query_params),
        sources=sources,
        grades=GRADES,
        sentiments=SENTIMENTS,
        categories=CATEGORIES,
    )
