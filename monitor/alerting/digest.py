"""The P4 digest: mild complaints wait and go out together, once a day.

A busy day takes as many messages as it needs: each post is shown once, on a
whole line, and marked digested by the message that shows it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.domain import AlertKind, Notice, NoticeItem, Severity
from monitor.notices import CATEGORY_LABELS, plain
from monitor.pipeline import Services
from monitor.store.notices import enqueue
from monitor.store.sql import latest_verdict_only
from monitor.store.tables import PostRow, VerdictRow

ITEMS_PER_MESSAGE = 40


def enqueue_digest(svc: Services) -> int:
    """Queue one digest of the P4 posts not yet in a digest; returns how many it holds."""
    now = svc.clock.now()
    with Session(svc.engine) as session, session.begin():
        rows = session.execute(
            select(PostRow, VerdictRow)
            .join(VerdictRow, col(VerdictRow.post_id) == PostRow.id)
            .where(
                latest_verdict_only(),
                col(VerdictRow.severity) == Severity.P4.value,
                col(VerdictRow.digest_alert_id).is_(None),
            )
            .order_by(col(PostRow.published_at).desc())
        ).all()
        items = [(p, v) for p, v in rows]
        if not items:
            return 0
        period = now.astimezone(svc.tz).strftime("%Y-%m-%d")
        first, last = min(v.id or 0 for _, v in items), max(v.id or 0 for _, v in items)
        grade = svc.settings.policy.grade(Severity.P4)
        step = ITEMS_PER_MESSAGE
        parts = [items[i : i + step] for i in range(0, len(items), step)]
        for number, chunk in enumerate(parts, start=1):
            notice = Notice(
                kind=AlertKind.DIGEST,
                dedup_key=f"digest:{period}:{first}-{last}:{number}/{len(parts)}",
                route=grade.channel,
                headline=f"每日摘要 {period}",
                grade=Severity.P4,
                items=tuple(_item(p, v) for p, v in chunk),
                extra={
                    "label": grade.label,
                    "colour": grade.colour,
                    "period": period,
                    "total": len(items),
                    "part": number,
                    "parts": len(parts),
                },
            )
            alert = enqueue(session, svc.settings, notice, now)
            if alert is None:
                return 0
            for _, verdict in chunk:
                verdict.digest_alert_id = alert.id
        return len(items)


def _item(post: PostRow, verdict: VerdictRow) -> NoticeItem:
    """One P4 post: its text, stars, source and categories, and its link."""
    cats = "、".join(CATEGORY_LABELS.get(c, c) for c in verdict.categories)
    return NoticeItem(
        text=plain(post.title or post.body),
        url=post.url,
        grade=Severity.P4,
        rating=post.rating,
        meta=(post.source, cats),
    )
