"""/cases (the board) and /cases.csv (what its filters show)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
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


@dataclass(frozen=True)
class BoardQuery:
    """The board's filters as asked for (the page shows the dates as typed)."""

    filters: Filters
    mine: bool
    since: str
    until: str


def board_query(
    user: Annotated[UserRow, role("viewer")],
    grade: Q = "",
    state: Q = "",
    owner: Q = "",
    source: Q = "",
    category: Q = "",
    since: Q = "",
    until: Q = "",
    mine: Q = "",
) -> BoardQuery:
    """One reading of the filters for the board and its CSV, so the two always agree."""
    filters = Filters(
        grade=grade if grade in GRADES else "",
        state=state if state in (*ALL_STATES, "all") else "",
        owner=actor_id(user) if mine else owner,
        source=source,
        category=category if category in CATEGORIES else "",
        since=parse_date(since),
        until=parse_date(until),
    )
    return BoardQuery(filters, bool(mine), since, until)


Asked = Annotated[BoardQuery, Depends(board_query)]


@router.get("/cases")
def board(request: Request, asked: Asked) -> Response:
    b = board_of(request)
    filters = asked.filters
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
        mine=asked.mine,
        names=names,
        owners=owners,
        sources=sources,
        categories=CATEGORIES,
        grades=GRADES,
        states=ALL_STATES,
        csv_url="/cases.csv" + (f"?{urlencode(query)}" if query else ""),
        since=asked.since,
        until=asked.until,
    )


@router.get("/cases.csv")
def export(request: Request, asked: Asked) -> Response:
    b = board_of(request)
    with Session(b.engine) as session:
        view = load_board(session, asked.filters, b.clock.now(), b.tz)
        names = names_by_actor(session)
        session.expunge_all()
    stamp = b.clock.now().astimezone(b.tz).strftime("%Y%m%d-%H%M")
    return Response(
        cases_csv(view.rows, names, b.tz),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="koubei-cases-{stamp}.csv"'},
    )
