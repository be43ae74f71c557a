"""What every board page shares: the app's context, templates, times shown in local time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from monitor.classify.pii import mask_pii
from monitor.clock import Clock
from monitor.config import Settings
from monitor.store.users import ROLE_NAMES
from monitor.web.interactions import Interactions
from monitor.web.trend_cache import TrendCache

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["mask"] = mask_pii

GRADE_NAMES = {"P1": "P1 红", "P2": "P2 橙", "P3": "P3 黄", "P4": "P4 蓝"}
# The words of the Slack message's state line, so the two faces read alike.
STATE_NAMES = {
    "open": "待确认",
    "acknowledged": "处理中",
    "reopened": "重新打开",
    "resolved": "已解决",
    "false_positive": "误报",
}
DEADLINE_NAMES = {"ack": "确认", "response": "首次回应", "resolve": "解决"}


@dataclass
class Board:
    """The case board's view of the running service (kept on app.state.board)."""

    interactions: Interactions
    after_action: Callable[[], object] | None = None
    oidc_label: str | None = None  # set when OpenID sign-in is configured
    trends: TrendCache = field(default_factory=TrendCache)

    @property
    def engine(self) -> Engine:
        return self.interactions.engine

    @property
    def settings(self) -> Settings:
        return self.interactions.settings

    @property
    def clock(self) -> Clock:
        return self.interactions.clock

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.app.timezone)


def board_of(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


def local(value: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(tz).strftime(fmt) if value is not None else "—"


def countdown(due: datetime, now: datetime) -> str:
    """'还剩 3小时12分' or '超时 5分' (the page's script keeps it ticking)."""
    seconds = int((due - now).total_seconds())
    left = abs(seconds)
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = (f"{days}天" if days else "") + (f"{hours}小时" if hours or days else "")
    text += f"{minutes}分"
    return f"还剩 {text}" if seconds >= 0 else f"超时 {text}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from monitor.web.auth import csrf_token, current_user, pop_flash

    board = board_of(request)
    base = {
        "user": current_user(request),
        "csrf": csrf_token(request),
        "flash": pop_flash(request),
        "now": board.clock.now(),
        "tz": board.tz,
        "local": local,
        "countdown": countdown,
        "grade_names": GRADE_NAMES,
        "state_names": STATE_NAMES,
        "deadline_names": DEADLINE_NAMES,
        "role_names": ROLE_NAMES,
        "oidc": board.oidc_label,
    }
    return TEMPLATES.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
