"""The P4 digest: mild complaints wait and go out together, once a day.

A busy day takes as many messages as it needs: each post is shown once, on a
whole line, and marked digested by the message that shows it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.alerts import enqueue_alert
from monitor.alerting.blocks import digest_line, digest_message, digest_parts
from monitor.domain import AlertKind, Severity
from monitor.pipeline import Services
from monitor.store.sql import latest_verdict_only
from monitor.store.tables import PostRow, VerdictRow


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

        def _message(
            alert_id: int, *, lines: list[str], total: int, part: int, parts: int
        ) -> dict[str, Any]:
            return digest_message(
                alert_id=alert_id,
                lines=lines,
                total=total,
                part=part,
                parts=parts,
                grade=grade,
                period=period,
            )

        lines = [digest_line(p, v) for p, v in items]
        parts = digest_parts(lines)
        shown = 0
        for number, part in enumerate(parts, start=1):
            chunk = items[shown : shown + len(part)]
            shown += len(part)
            alert = enqueue_alert(
                session,
                svc.settings,
                kind=AlertKind.DIGEST,
                severity=Severity.P4,
                dedup_key=f"digest:{period}:{first}-{last}:{number}/{len(parts)}",
                case_id=None,
                now=now,
                build=partial(
                    _message, lines=part, total=len(items), part=number, parts=len(parts)
                ),
            )
            if alert is None:
                return 0
            for _, verdict in chunk:
                verdict.digest_alert_id = alert.id
        return len(items)
