"""The board's query: cases with their sources, categories and next deadline, filtered.

Filters are applied once here for both the page and the CSV export, so the
export is exactly what the board shows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from monitor.case_actions import ACTIVE
from monitor.domain import CaseState
from monitor.store.tables import CaseRow, PostRow, VerdictRow

ALL_STATES = (*ACTIVE, CaseState.RESOLVED.value, CaseState.FALSE_POSITIVE.value)
GRADES = ("P1", "P2", "P3", "P4")
# (kind, due column, done column): the clocks a case runs against, in order.
DEADLINES = (
    ("ack", "ack_due", "acknowledged_at"),
    ("response", "response_due", "first_response_at"),
    ("resolve", "resolve_due", "resolved_at"),
)


@dataclass(frozen=True)
class Filters:
    grade: str = ""
    state: str = ""  # "" the open ones, "all", or one state
    owner: str = ""  # an actor id, or "none" for cases nobody owns
    source: str = ""
    category: str = ""
    since: date | None = None  # opened on or after (local date)
    until: date | None = None  # opened on or before (local date)

    def states(self) -> tuple[str, ...]:
        if self.state == "all":
            return ALL_STATES
        return (self.state,) if self.state in ALL_STATES else ACTIVE


@dataclass
class BoardRow:
    case: CaseRow
    sources: list[str]
    categories: list[str]
    next_kind: str | None
    next_due: datetime | None
    overdue: bool


@dataclass
class BoardView:
    rows: list[BoardRow]
    by_grade: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    overdue: int = 0


def next_deadline(case: CaseRow) -> tuple[str, datetime] | None:
    """The earliest clock still running on an open case (acknowledge, first response, resolve)."""
    if case.state not in ACTIVE:
        return None
    waiting_ack = case.state != CaseState.ACKNOWLEDGED.value  # a reopened case needs a new one
    pending = [
        (kind, due)
        for kind, due_col, done_col in DEADLINES
        if (due := getattr(case, due_col)) is not None
        and (getattr(case, done_col) is None or (kind == "ack" and waiting_ack))
    ]
    return min(pending, key=lambda p: p[1]) if pending else None


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _posts_of(session: Session, case_ids: list[int]) -> dict[int, tuple[set[str], set[str]]]:
    """Case id -> (sources, categories of each post's latest verdict)."""
    out: dict[int, tuple[set[str], set[str]]] = {cid: (set(), set()) for cid in case_ids}
    if not case_ids:
        return out
    latest = (
        select(col(VerdictRow.post_id), func.max(col(VerdictRow.id)).label("vid"))
        .group_by(col(VerdictRow.post_id))
        .subquery()
    )
    rows = session.execute(
        select(col(PostRow.case_id), col(PostRow.source), col(VerdictRow.categories))
        .outerjoin(latest, latest.c.post_id == col(PostRow.id))
        .outerjoin(VerdictRow, col(VerdictRow.id) == latest.c.vid)
        .where(col(PostRow.case_id).in_(case_ids))
    ).all()
    for case_id, source, categories in rows:
        sources, cats = out[case_id]
        sources.add(source)
        cats.update(categories or [])
    return out


def load_board(
    session: Session, filters: Filters, now: datetime, tz: ZoneInfo, limit: int = 5000
) -> BoardView:
    query = select(CaseRow).where(col(CaseRow.state).in_(set(filters.states()) | set(ACTIVE)))
    if filters.since is not None:
        start = datetime.combine(filters.since, time(), tz)
        query = query.where(col(CaseRow.opened_at) >= start)
    if filters.until is not None:
        end = datetime.combine(filters.until + timedelta(days=1), time(), tz)
        query = query.where(col(CaseRow.opened_at) < end)
    query = query.order_by(col(CaseRow.opened_at).desc()).limit(limit)
    cases = list(session.execute(query).scalars().all())
    extra = _posts_of(session, [c.id for c in cases if c.id is not None])
    scope: list[BoardRow] = []
    for case in cases:
        assert case.id is not None
        sources, cats = extra[case.id]
        sources.add(case.source)
        if filters.owner == "none" and case.owner:
            continue
        if filters.owner not in ("", "none") and case.owner != filters.owner:
            continue
        if filters.source and filters.source not in sources:
            continue
        if filters.category and filters.category not in cats:
            continue
        nxt = next_deadline(case)
        scope.append(
            BoardRow(
                case=case,
                sources=sorted(sources),
                categories=sorted(cats),
                next_kind=nxt[0] if nxt else None,
                next_due=nxt[1] if nxt else None,
                overdue=nxt is not None and nxt[1] < now,
            )
        )
    active = [r for r in scope if r.case.state in ACTIVE]
    view = BoardView(
        rows=[
            r
            for r in scope
            if r.case.state in filters.states()
            and (not filters.grade or r.case.severity == filters.grade)
        ],
        by_grade=dict(Counter(r.case.severity for r in active)),
        by_state=dict(Counter(r.case.state for r in active)),
        overdue=sum(r.overdue for r in active),
    )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    view.rows.sort(key=lambda r: (r.next_due or far, -r.case.opened_at.timestamp()))
    return view


def owners_and_sources(session: Session) -> tuple[list[str], list[str]]:
    """Values to offer in the owner and source filters."""
    owners = session.execute(
        select(col(CaseRow.owner)).where(col(CaseRow.owner).is_not(None)).distinct()
    ).scalars()
    sources = session.execute(select(col(PostRow.source)).distinct()).scalars()
    return sorted(o for o in owners if o), sorted(sources)
