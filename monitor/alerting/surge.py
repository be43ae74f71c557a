"""Surge alerts: a category's complaints far above its recent baseline.

Measured on publish time: a category surges at time t when the negative posts
published in the window before t number at least `minimum` and at least
`multiple` x the baseline, the average per window of the same category before
the window (up to `baseline_days` back).

A baseline must be real. A source counts only once it has been collecting for
`history_days` before the window (since its first stored post), and its
baseline covers only the time it was collecting: on a cold start, or when a new
source backfills months of posts at once, nothing can surge, because a feed
read for the first time is not a week of normal volume.

One alert per burst. Whether a category was surging is also evaluated on a
grid (every quarter window) back from now; a burst starts after the last grid
point where it was not, and a category already alerted since that point is the
same burst, however many clock hours it spans. The dedup key names the burst's
start, so two schedulers checking at once still alert once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.config import Settings, Surge
from monitor.domain import AlertKind, Sentiment, Severity, strong
from monitor.notices import CATEGORY_LABELS, message_notice
from monitor.store.notices import enqueue
from monitor.store.tables import AlertRow, PostRow, VerdictRow

GRID_PER_WINDOW = 4
LOOKBACK = timedelta(days=1)  # how far back a burst's start is looked for


@dataclass
class History:
    """Publish times (epoch seconds, sorted) per source and category, and when each source began."""

    began: dict[str, float]
    times: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def count(self, source: str, category: str, start: float, end: float) -> int:
        """Posts published in (start, end]."""
        times = self.times.get((source, category), [])
        return bisect.bisect_right(times, end) - bisect.bisect_right(times, start)


def load_history(session: Session, since: datetime, until: datetime) -> History:
    """Negative posts per source and category published in (since, until], by first grading."""
    began = {
        source: _epoch(first)
        for source, first in session.execute(
            select(col(PostRow.source), func.min(PostRow.fetched_at)).group_by(col(PostRow.source))
        ).all()
    }
    earlier = aliased(VerdictRow)  # its own FROM: no correlation with the outer query
    first = select(func.min(earlier.id)).group_by(col(earlier.post_id)).scalar_subquery()
    rows = session.execute(
        select(col(PostRow.source), col(PostRow.published_at), col(VerdictRow.categories))
        .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
        .where(
            col(VerdictRow.id).in_(first),
            col(VerdictRow.sentiment) == Sentiment.NEGATIVE.value,
            col(PostRow.published_at) > since,
            col(PostRow.published_at) <= until,
        )
    ).all()
    history = History(began=began)
    for source, published, categories in rows:
        for category in categories:
            history.times[(source, category)].append(_epoch(published))
    for times in history.times.values():
        times.sort()
    return history


@dataclass(frozen=True)
class Reading:
    count: int
    baseline: float  # posts per window before it


def read(history: History, surge: Surge, at: float) -> dict[str, Reading]:
    """Each category's count in the window ending `at` and its baseline (sources with history)."""
    window = surge.window_hours * 3600
    start = at - window
    counts: dict[str, int] = defaultdict(int)
    rates: dict[str, float] = defaultdict(float)
    for (source, category), _times in history.times.items():
        began = history.began.get(source)
        if began is None or began > start - surge.history_days * 86400:
            continue  # not collecting long enough before the window: no real baseline
        base_from = max(start - surge.baseline_days * 86400, began)
        counts[category] += history.count(source, category, start, at)
        rates[category] += history.count(source, category, base_from, start) / (
            (start - base_from) / window
        )
    return {c: Reading(counts[c], rates[c]) for c in counts}


def surging(reading: Reading | None, surge: Surge) -> bool:
    if reading is None or reading.count < surge.minimum:
        return False
    floor = surge.window_hours / (surge.baseline_days * 24)  # one post in the whole baseline
    return reading.count >= surge.multiple * max(reading.baseline, floor)


def burst_start(history: History, surge: Surge, category: str, now: float) -> tuple[float, float]:
    """(the last grid point at which `category` was not surging, the grid point after it)."""
    step = surge.window_hours * 3600 / GRID_PER_WINDOW
    point = now // step * step
    oldest = now - LOOKBACK.total_seconds()
    while point > oldest:
        if not surging(read(history, surge, point).get(category), surge):
            return point, point + step
        point -= step
    return point, point + step


def check_surge(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """Queue surge alerts; returns the categories whose burst was alerted now."""
    surge = settings.policy.surge
    window = timedelta(hours=surge.window_hours)
    surged = []
    with Session(engine) as session, session.begin():
        since = now - LOOKBACK - window - timedelta(days=surge.baseline_days)
        history = load_history(session, since, now)
        current = read(history, surge, _epoch(now))
        for category in sorted(current):
            reading = current[category]
            if not surging(reading, surge):
                continue
            quiet, start = burst_start(history, surge, category, _epoch(now))
            if _alerted_since(session, category, _datetime(quiet)):
                continue  # the burst already alerted continues
            label = CATEGORY_LABELS.get(category, category)
            text = (
                f"📈 {strong(label)} 类投诉激增：最近 {surge.window_hours:g} 小时"
                f"发布 {reading.count} 条，"
                f"此前平均每 {surge.window_hours:g} 小时 {reading.baseline:.1f} 条"
            )
            notice = message_notice(
                kind=AlertKind.SURGE,
                dedup_key=f"surge:{category}:{_datetime(start):%Y%m%dT%H%MZ}",
                route=surge.channel,
                text=text,
                colour="#7B1FA2",
                grade=Severity.P2,
            )
            alert = enqueue(session, settings, notice, now)
            if alert is not None:
                surged.append(category)
    return surged


def _alerted_since(session: Session, category: str, since: datetime) -> bool:
    found = session.execute(
        select(col(AlertRow.id)).where(
            col(AlertRow.kind) == AlertKind.SURGE.value,
            col(AlertRow.dedup_key).startswith(f"surge:{category}:", autoescape=True),
            col(AlertRow.created_at) > since,
        )
    ).first()
    return found is not None


def _epoch(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
