"""/posts: full-text search over stored posts, with filters; results masked.

The words are looked up in the search index (monitor.store.search): FTS5
with the trigram tokenizer on SQLite, a pg_trgm index on PostgreSQL, so
Chinese text with no spaces is found by any substring. Every word must appear,
in the title or the body. A word of one or two characters (扣款) cannot use a
trigram index and is matched as a plain substring instead; the page says so.
Results are ranked by relevance when a word was indexed (SQLite's bm25, a
title match weighing three times a body match; on PostgreSQL the same weights
over the number of times each word occurs), newest first otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, Float, Integer, func, literal_column, or_, select, text
from sqlmodel import Session, col

from monitor.classify.pii import mask_pii
from monitor.domain import CATEGORIES
from monitor.store.search import FTS_TABLE, Terms, fts_query, like_pattern, split_terms
from monitor.store.tables import PostRow, UserRow, VerdictRow
from monitor.web.auth import role
from monitor.web.board import GRADES, parse_date
from monitor.web.pages import board_of, render

router = APIRouter()
Q = Annotated[str, Query()]
LIMIT = 100
SENTIMENTS = {"negative": "负面", "neutral": "中性", "positive": "正面"}
TITLE_WEIGHT = 3.0


@dataclass
class Hit:
    post: PostRow
    title: str
    body: str
    verdict: VerdictRow | None


@dataclass(frozen=True)
class PostFilters:
    """What /posts was asked for, checked: unknown values are no filter."""

    q: str = ""
    source: str = ""
    grade: str = ""
    sentiment: str = ""
    category: str = ""
    rating: int | None = None
    since: str = ""
    until: str = ""

    @property
    def terms(self) -> Terms:
        return split_terms(self.q)


def post_filters(
    q: Q = "",
    source: Q = "",
    grade: Q = "",
    sentiment: Q = "",
    category: Q = "",
    rating: Q = "",
    since: Q = "",
    until: Q = "",
) -> PostFilters:
    return PostFilters(
        q=q.strip()[:200],
        source=source,
        grade=grade if grade in (*GRADES, "none") else "",
        sentiment=sentiment if sentiment in SENTIMENTS else "",
        category=category if category in CATEGORIES else "",
        rating=int(rating) if rating in ("1", "2", "3", "4", "5") else None,
        since=since,
        until=until,
    )


def _substring(term: str) -> ColumnElement[bool]:
    pattern = like_pattern(term)
    return or_(
        func.lower(col(PostRow.title)).like(pattern, escape="\\"),
        func.lower(col(PostRow.body)).like(pattern, escape="\\"),
    )


def _occurrences(column: Any, term: str) -> ColumnElement[Any]:
    lowered = func.lower(column)
    needle = term.lower()
    return (func.length(lowered) - func.length(func.replace(lowered, needle, ""))) / len(needle)


def _match(query: Any, dialect: str, terms: Terms) -> tuple[Any, list[ColumnElement[Any]]]:
    """The query narrowed to posts holding every term, and its relevance ordering."""
    if terms.empty:
        return query, []
    if dialect == "sqlite":
        for term in terms.short:
            query = query.where(_substring(term))
        if not terms.indexed:
            return query, []
        fts = (
            text(
                f"SELECT rowid AS post_id, bm25({FTS_TABLE}, {TITLE_WEIGHT}, 1.0) AS score "
                f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match"
            )
            .bindparams(match=fts_query(terms.indexed))
            .columns(post_id=Integer, score=Float)
            .subquery("fts")
        )
        query = query.join(fts, fts.c.post_id == col(PostRow.id))
        return query, [fts.c.score.asc()]  # bm25: lower is better
    # PostgreSQL: the same expression as the GIN trigram index, so ILIKE can use it.
    document = col(PostRow.title).op("||")(literal_column("' '")).op("||")(col(PostRow.body))
    score: ColumnElement[Any] | None = None
    for term in [*terms.indexed, *terms.short]:
        query = query.where(document.ilike(like_pattern(term), escape="\\"))
        weight = TITLE_WEIGHT * _occurrences(col(PostRow.title), term) + _occurrences(
            col(PostRow.body), term
        )
        score = weight if score is None else score + weight
    return query, ([score.desc()] if terms.indexed and score is not None else [])


def search_posts(session: Session, tz: ZoneInfo, filters: PostFilters) -> tuple[list[Hit], int]:
    """Matching posts, best first (at most LIMIT), and how many match in all."""
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
    query, relevance = _match(query, session.get_bind().dialect.name, filters.terms)
    if filters.source:
        query = query.where(col(PostRow.source) == filters.source)
    if filters.grade:
        query = query.where(col(VerdictRow.severity) == filters.grade)
    if filters.sentiment:
        query = query.where(col(VerdictRow.sentiment) == filters.sentiment)
    if filters.rating is not None:
        query = query.where(col(PostRow.rating) == filters.rating)
    start, end = parse_date(filters.since), parse_date(filters.until)
    if start is not None:
        query = query.where(col(PostRow.published_at) >= datetime.combine(start, time(), tz))
    if end is not None:
        limit_at = datetime.combine(end + timedelta(days=1), time(), tz)
        query = query.where(col(PostRow.published_at) < limit_at)
    order = [*relevance, col(PostRow.published_at).desc(), col(PostRow.id).desc()]
    rows = session.execute(query.order_by(*order)).all()
    # Categories are a JSON list: filtered here, the same on both databases.
    category = filters.category
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
    filters: Annotated[PostFilters, Depends(post_filters)],
) -> Response:
    board = board_of(request)
    with Session(board.engine) as session:
        hits, total = search_posts(session, board.tz, filters)
        sources = sorted(session.execute(select(col(PostRow.source)).distinct()).scalars())
        session.expunge_all()
    terms = filters.terms
    return render(
        request,
        "posts.html",
        hits=hits,
        total=total,
        limit=LIMIT,
        q=filters.q,
        short_terms=terms.short,
        ranked=bool(terms.indexed),
        form=dict(request.query_params),
        sources=sources,
        grades=GRADES,
        sentiments=SENTIMENTS,
        categories=CATEGORIES,
    )
