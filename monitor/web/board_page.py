"""/cases (the board) and /cases.csv (what its filters show)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from monitor.domain import CATEGORIES
from monitor.store.tables import UserRow
from monitor.store.users import actor_id, names_by_actor
from monitor.web.auth import role
from monitor.web.board import (
    ALL_STATES,
    GRADES,
    Filters,
    load_board,
    owners_and_sources,
    parse_date,
)
from monitor.web.csv_export import cases_csv
from monitor.web.pages import board_of, render

router = APIRouter()
Q = Annotated[str, Query()]


def _filters(
    user: UserRow,
    grade: str,
    state: str,
    owner: str,
    source: str,
    category: str,
    since: str,
    until: str,
    mine: str,
) -> Filters:
    return Filters(
        grade=grade if grade in GRADES else "",
        state=state if state in (*ALL_STATES, "all") else "",
        owner=actor_id(user) if mine else owner,
        source=source,
        category=category if category in CATEGORIES else "",
        since=parse_date(since),
        until=parse_date(until),
    )


@router.get("/cases")
def board(
    request: Request,
    user: Annotated[UserRow, role("viewer")],
    grade: Q = "",
    state: Q = "",
    owner: Q = "",
    source: Q = "",
    category: Q = "",
    since: Q = "",
    until: Q = "",
    mine: Q = "",
) -> Response:
    b = board_of(request)
    filters = _filters(user, grade, state, owner, source, category, since, until, mine)
    with Session(b.engine) as session:
        view = load_board(session, filters, b.clock.now(), b.tz)
        names = names_by_actor(session)
        owners, sources = owners_and_sources(session)
        session.expunge_all()
    query = {k: v for k, v in request.query_params.items() if v}
    return render(
        request,
        "board.html",
        view=view,
        filters=filters,
        mine=bool(mine),
        names=names,
        owners=owners,
        sources=sources,
        categories=CATEGORIES,
        grades=GRADES,
        states=ALL_STATES,
        csv_url="/cases.csv" + (f"?{urlencode(query)}" if query else ""),
        since=since,
        until=until,
    )


@router.get("/cases.csv")
def export(
    request: Request,
    user: Annotated[UserRow, role("viewer")],
    grade: Q = "",
    state: Q = "",
    owner: Q = "",
    source: Q = "",
    category: Q = "",
    since: Q = "",
    until: Q = "",
    mine: Q = "",
) -> Response:
    b = board_of(request)
    filters = _filters(user, grade, state, owner, source, category, since, until, mine)
    with Session(b.engine) as session:
        view = load_board(session, filters, b.clock.now(), b.tz)
        names = names_by_actor(session)
        session.expunge_all()
    stamp = b.clock.now().astimezone(b.tz).strftime("%Y%m%d-%H%M")
    return Response(
        cases_csv(view.rows, names, b.tz),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="koubei-cases-{stamp}.csv"'},
    )
