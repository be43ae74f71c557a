"""/trends: the report's figures over the last 12 months and 12 weeks, with 环比 and 同比,
daily volume by grade and category, and the days the surge rule fired.

Each period's figures are the report's own (monitor.reports.figures.compute),
so the trend and the monthly report never disagree; 同比 compares a month with
the same month a year before and a week with the same ISO week number a year
before, and like 环比 only where that period was monitored. Closed periods are
computed once per data version (monitor.web.trend_cache). Charts are Apache
ECharts, served from the package.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from monitor.config import Settings
from monitor.domain import AlertKind
from monitor.reports.figures import compute
from monitor.reports.period import SHANGHAI, Period, iso_week, month
from monitor.store.tables import AlertRow, PostRow, UserRow, VerdictRow
from monitor.web.auth import role
from monitor.web.board import GRADES
from monitor.web.pages import board_of, render

router = APIRouter()
Lookup = Callable[[Period, datetime, Callable[[], dict[str, Any]]], dict[str, Any]]
FIGURES = {
    "cases": "投诉量",
    "response_rate": "响应率",
    "handling_rate": "办结率",
    "on_time_rate": "按时办结率",
    "fifteen_day_rate": "15日办结率",
    "satisfaction_rate": "满意度",
}
DAYS = 90


def periods(kind: str, now: datetime, count: int) -> list[Period]:
    """The last `count` periods, oldest first, ending with the running one."""
    local = now.astimezone(SHANGHAI)
    if kind == "month":
        current = month(f"{local.year}-{local.month:02d}")
    else:
        year, week, _ = local.date().isocalendar()
        current = iso_week(f"{year}-W{week:02d}")
    out = [current]
    while len(out) < count:
        out.append(out[-1].previous())
    return out[::-1]


def _change(now: float | int | None, before: float | int | None) -> float | None:
    """Relative change (0.25 = +25%); None without a base to compare with."""
    if now is None or before is None or before == 0:
        return None
    return round((now - before) / before, 4)


def year_before(period: Period) -> Period | None:
    """The same month, or the same ISO week number, a year before (W53 may have none)."""
    year = int(period.key[:4]) - 1
    if period.kind == "month":
        return month(f"{year}{period.key[4:]}")
    try:
        return iso_week(f"{year}{period.key[4:]}")
    except ValueError:  # 2026-W53: 2025 has 52 weeks
        return None


def series(
    engine: Engine, settings: Settings, kind: str, now: datetime, lookup: Lookup
) -> list[dict[str, Any]]:
    """The last 12 periods with 环比 (the period before) and 同比 (a year before)."""
    shown = periods(kind, now, 12)
    wanted = {p.key: p for p in [shown[0].previous(), *shown]}
    for period in shown:
        if (back := year_before(period)) is not None:
            wanted.setdefault(back.key, back)
    figures: dict[str, dict[str, Any]] = {}
    for key, period in wanted.items():
        result = lookup(period, now, partial(compute, engine, settings, period, now))
        figures[key] = {
            "monitored": result["monitoring"]["monitored"],
            "partial": result["period"]["partial"],
            **{k: result["summary"][k] for k in FIGURES},
        }
    out = []
    for period in shown:
        row: dict[str, Any] = {"key": period.key, "label": period.label, **figures[period.key]}
        before = figures[period.previous().key]
        year_ago_period = year_before(period)
        year_ago = figures[year_ago_period.key] if year_ago_period else None
        for key in FIGURES:
            # No comparison against a period before monitoring began: it would read as growth.
            row[f"{key}_mom"] = _change(row[key], before[key]) if before["monitored"] else None
            row[f"{key}_yoy"] = (
                _change(row[key], year_ago[key]) if year_ago and year_ago["monitored"] else None
            )
        out.append(row)
    return out


def daily(engine: Engine, now: datetime) -> dict[str, Any]:
    """Negative posts per day by grade and by category, and the surge alerts per day."""
    start = (now.astimezone(SHANGHAI) - timedelta(days=DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    latest = (
        select(col(VerdictRow.post_id), func.max(col(VerdictRow.id)).label("vid"))
        .group_by(col(VerdictRow.post_id))
        .subquery()
    )
    with Session(engine) as session:
        rows = session.execute(
            select(col(PostRow.published_at), col(VerdictRow.severity), col(VerdictRow.categories))
            .join(latest, latest.c.post_id == col(PostRow.id))
            .join(VerdictRow, col(VerdictRow.id) == latest.c.vid)
            .where(col(PostRow.published_at) >= start, col(VerdictRow.sentiment) == "negative")
        ).all()
        surges = session.execute(
            select(col(AlertRow.created_at), col(AlertRow.dedup_key)).where(
                col(AlertRow.kind) == AlertKind.SURGE.value, col(AlertRow.created_at) >= start
            )
        ).all()
    known = set(days)
    by_grade: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(days, 0))
    by_category: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(days, 0))
    for published, severity, categories in rows:
        day = published.astimezone(SHANGHAI).date().isoformat()
        if day not in known:
            continue
        if severity in GRADES:
            by_grade[severity][day] += 1
        for category in categories or []:
            by_category[category][day] += 1
    anomalies: dict[str, list[str]] = defaultdict(list)
    for created, key in surges:
        anomalies[created.astimezone(SHANGHAI).date().isoformat()].append(key.split(":")[1])
    return {
        "days": days,
        "by_grade": {g: list(by_grade[g].values()) for g in GRADES},
        "by_category": {c: list(v.values()) for c, v in sorted(by_category.items())},
        "anomalies": [
            {"day": d, "categories": sorted(set(c))} for d, c in sorted(anomalies.items())
        ],
    }


@router.get("/trends")
def trends_page(request: Request, user: Annotated[UserRow, role("viewer")]) -> Response:
    board = board_of(request)
    now = board.clock.now()
    lookup = board.trends.view(board.engine)
    data = {
        "figures": FIGURES,
        "months": series(board.engine, board.settings, "month", now, lookup),
        "weeks": series(board.engine, board.settings, "week", now, lookup),
        "daily": daily(board.engine, now),
    }
    # Read by the page's script; escaped so scraped text could never close the tag.
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return render(request, "trends.html", data=data, payload=payload, figures=FIGURES)
