"""Surge alerts: a category's complaints far above its recent baseline.

count(last window) >= minimum and >= multiple x baseline, where the baseline is
the average count per window over the previous `baseline_days` (the current
window excluded). One alert per category per window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerting.alerts import enqueue_notice
from monitor.alerting.blocks import CATEGORY_LABELS
from monitor.config import Settings
from monitor.domain import AlertKind, Sentiment, Severity
from monitor.store.tables import VerdictRow


def category_counts(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Negative posts per category first graded in (start, end]."""
    earlier = aliased(VerdictRow)  # its own FROM: no correlation with the outer query
    first = select(func.min(earlier.id)).group_by(col(earlier.post_id)).scalar_subquery()
    rows = (
        session.execute(
            select(col(VerdictRow.categories)).where(
                col(VerdictRow.id).in_(first),
                col(VerdictRow.sentiment) == Sentiment.NEGATIVE.value,
                col(VerdictRow.created_at) > start,
                col(VerdictRow.created_at) <= end,
            )
        )
        .scalars()
        .all()
    )
    counts: dict[str, int] = {}
    for categories in rows:
        for category in categories:
            counts[category] = counts.get(category, 0) + 1
    return counts


def check_surge(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """Queue surge alerts; returns the categories that surged."""
    surge = settings.policy.surge
    window = timedelta(hours=surge.window_hours)
    bucket = int(now.timestamp() // window.total_seconds())
    surged = []
    with Session(engine) as session, session.begin():
        current = category_counts(session, now - window, now)
        history = category_counts(
            session, now - window - timedelta(days=surge.baseline_days), now - window
        )
        windows = timedelta(days=surge.baseline_days) / window
        for category, count in sorted(current.items()):
            baseline = history.get(category, 0) / windows
            if count < surge.minimum or count < surge.multiple * max(baseline, 1 / windows):
                continue
            label = CATEGORY_LABELS.get(category, category)
            text = (
                f"📈 *{label}* 类投诉激增：最近 {surge.window_hours:g} 小时 {count} 条，"
                f"过去 {surge.baseline_days} 天平均每 {surge.window_hours:g} 小时 {baseline:.1f} 条"
            )
            alert = enqueue_notice(
                session,
                settings,
                kind=AlertKind.SURGE,
                severity=Severity.P2,
                dedup_key=f"surge:{category}:{bucket}",
                channel_key=surge.channel,
                text=text,
                colour="#7B1FA2",
                now=now,
            )
            if alert is not None:
                surged.append(category)
    return surged
