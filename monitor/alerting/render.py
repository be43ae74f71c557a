"""Messages that are rendered from the current state of a case (edits, group messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.blocks import case_message
from monitor.alerting.routing import mention
from monitor.config import Policy
from monitor.domain import Severity
from monitor.store.sql import latest_verdict_only
from monitor.store.tables import CaseRow, PostRow, VerdictRow


def case_rows(session: Session, case: CaseRow) -> tuple[PostRow, VerdictRow]:
    """The case's most severe post (its first on a tie) and that post's latest verdict."""
    rows = session.execute(
        select(PostRow, VerdictRow)
        .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
        .where(col(PostRow.case_id) == case.id, latest_verdict_only())
        .order_by(col(PostRow.id))
    ).all()
    if not rows:
        raise LookupError(f"case {case.id} has no graded post")
    # max() keeps the first of equals: the earliest post on a tie.
    post, verdict = max(rows, key=lambda pv: Severity(pv[1].severity).rank)
    return post, verdict


def oncall_notify(policy: Policy, severity: Severity, when: datetime, tz: ZoneInfo) -> str:
    """The on-call person's mention for a grade that pages people now (P1-P3)."""
    if policy.oncall is None or not severity.opens_case:
        return ""
    return mention(policy, "oncall", when, tz)


def render_case(
    session: Session,
    policy: Policy,
    case: CaseRow,
    *,
    alert_id: int,
    headline: str,
    tz: ZoneInfo,
    now: datetime,
) -> dict[str, Any]:
    post, verdict = case_rows(session, case)
    severity = Severity(case.severity)
    return case_message(
        alert_id=alert_id,
        case=case,
        post=post,
        verdict=verdict,
        grade=policy.grade(severity),
        headline=headline,
        tz=tz,
        notify=oncall_notify(policy, severity, now, tz) if case.state == "open" else "",
    )
