"""Report periods: calendar months and ISO weeks, in Asia/Shanghai."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.errors import KoubeiError

SHANGHAI = ZoneInfo("Asia/Shanghai")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")


class FuturePeriod(KoubeiError):
    """A report was asked for a period that has not begun: it would show only zeros."""


@dataclass(frozen=True)
class Period:
    """[start, end) in Shanghai local time; `key` names it (2026-11, 2026-W48)."""

    key: str
    kind: str  # "month" | "week"
    start_local: datetime
    end_local: datetime

    @property
    def start(self) -> datetime:
        return self.start_local.astimezone(UTC)

    @property
    def end(self) -> datetime:
        return self.end_local.astimezone(UTC)

    @property
    def days(self) -> list[date]:
        n = (self.end_local.date() - self.start_local.date()).days
        return [self.start_local.date() + timedelta(days=i) for i in range(n)]

    @property
    def label(self) -> str:
        if self.kind == "month":
            return f"{self.start_local.year}年{self.start_local.month}月"
        last = self.end_local.date() - timedelta(days=1)
        return f"{self.key}（{self.start_local:%m-%d} 至 {last:%m-%d}）"

    def previous(self) -> Period:
        if self.kind == "month":
            prev_end = self.start_local.date()
            prev = (prev_end - timedelta(days=1)).replace(day=1)
            return month(f"{prev.year}-{prev.month:02d}")
        start = self.start_local.date() - timedelta(days=7)
        year, week, _ = start.isocalendar()
        return iso_week(f"{year}-W{week:02d}")


def month(key: str) -> Period:
    m = _MONTH.match(key)
    if not m:
        raise ValueError(f"month {key!r} should look like 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=SHANGHAI)
    end = datetime(year + (mon == 12), 1 if mon == 12 else mon + 1, 1, tzinfo=SHANGHAI)
    return Period(key, "month", start, end)


def iso_week(key: str) -> Period:
    m = _WEEK.match(key)
    if not m:
        raise ValueError(f"week {key!r} should look like 2026-W48")
    monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=SHANGHAI)
    return Period(key, "week", start, start + timedelta(days=7))


def last_complete(kind: str, now: datetime) -> Period:
    """The month or week that ended most recently before `now` (for the scheduled runs)."""
    local = now.astimezone(SHANGHAI)
    if kind == "month":
        first = local.date().replace(day=1) - timedelta(days=1)
        return month(f"{first.year}-{first.month:02d}")
    year, week, _ = (local.date() - timedelta(days=7)).isocalendar()
    return iso_week(f"{year}-W{week:02d}")


def refuse_future(period: Period, now: datetime) -> None:
    """A period that has not begun has no figures; a zero report would read as a calm month."""
    if period.start >= now:
        raise FuturePeriod(
            f"period {period.key} starts {period.start_local:%Y-%m-%d %H:%M} (Asia/Shanghai), "
            f"after now ({now.astimezone(SHANGHAI):%Y-%m-%d %H:%M}): nothing to report yet; "
            "ask for a period that has begun (a running one is reported as partial)"
        )
