"""Noise control for bursts: many P3 cases in a short window share one Slack message.

The group mentions whom a single P3 would (the grade's mention and the person
on call when the burst began), in its top-level text too, so it notifies.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerting.blocks import (
    case_actions,
    coloured,
    escape_mrkdwn,
    message_metadata,
    safe,
    status_line,
    with_mentions,
)
from monitor.alerting.render import oncall_notify
from monitor.config import Settings
from monitor.domain import AlertKind, DeliveryStatus, Severity
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow

HOLD = timedelta(seconds=60)  # gather the burst for a minute before posting the group


def group_for(
    session: Session,
    settings: Settings,
    channel_key: str,
    now: datetime,
    not_before: datetime | None = None,
) -> int | None:
    """The group alert a new P3 case alert should join, created when a burst starts; or None."""
    grouping = settings.policy.grouping
    since = now - timedelta(minutes=grouping.window_minutes)
    recent = session.execute(
        select(func.count())
        .select_from(AlertRow)
        .where(
            col(AlertRow.kind) == AlertKind.NEW_CASE.value,
            col(AlertRow.severity) == Severity.P3.value,
            col(AlertRow.channel_key) == channel_key,
            col(AlertRow.created_at) >= since,
        )
    ).scalar_one()
    if recent + 1 < grouping.at_least:
        return None
    child = aliased(AlertRow)
    children = (
        select(func.count())
        .select_from(child)
        .where(col(child.group_id) == col(DeliveryRow.alert_id))
        .correlate(DeliveryRow)
        .scalar_subquery()
    )
    open_group = session.execute(
        select(col(DeliveryRow.alert_id))
        .join(AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
        .where(
            col(AlertRow.kind) == AlertKind.GROUP.value,
            col(AlertRow.channel_key) == channel_key,
            col(DeliveryRow.status) == DeliveryStatus.PENDING.value,
            col(DeliveryRow.attempts) == 0,
            children < grouping.max_per_message,
        )
        .order_by(col(DeliveryRow.id))
        .limit(1)
    ).scalar_one_or_none()
    if open_group is not None:
        return int(open_group)
    group = AlertRow(
        dedup_key=f"group:{channel_key}:{uuid.uuid4().hex}",  # made once, in this transaction
        kind=AlertKind.GROUP.value,
        severity=Severity.P3.value,
        channel_key=channel_key,
        created_at=now,
        payload={
            "label": settings.policy.grade(Severity.P3).label,
            "colour": settings.policy.grade(Severity.P3).colour,
            "timezone": settings.app.timezone,
            "notify": _mentions(settings, now),
        },
    )
    session.add(group)
    session.flush()
    assert group.id is not None
    session.add(
        DeliveryRow(
            alert_id=group.id,
            channel=settings.app.slack.channels[channel_key],
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=max(now + HOLD, not_before or now),
            created_at=now,
        )
    )
    return group.id


def _mentions(settings: Settings, now: datetime) -> str:
    grade = settings.policy.grade(Severity.P3)
    tz = ZoneInfo(settings.app.timezone)
    notify = oncall_notify(settings.policy, Severity.P3, now, tz)
    return " ".join(m for m in (grade.mention, notify) if m)


def child_summary(
    post_title: str, post_body: str, source: str, rating: int | None
) -> dict[str, Any]:
    """What a group message shows of one case, masked at enqueue time."""
    return {
        "text": safe(post_title or post_body, 90),
        "source": escape_mrkdwn(source),
        "rating": rating,
    }


def render_group(session: Session, group: AlertRow) -> dict[str, Any]:
    """The group message from its cases' current state (also used to edit it)."""
    tz = ZoneInfo(group.payload.get("timezone", "Asia/Shanghai"))
    children = (
        session.execute(
            select(AlertRow).where(col(AlertRow.group_id) == group.id).order_by(col(AlertRow.id))
        )
        .scalars()
        .all()
    )
    label = group.payload.get("label", "P3 黄色预警 · 服务受阻")
    colour = group.payload.get("colour", "#FBC02D")
    mentions = str(group.payload.get("notify") or "")
    header = f"{mentions} *{escape_mrkdwn(label)}* · {len(children)} 个投诉集中出现，合并为一条消息"
    header = header.strip()
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    for child in children:
        case = session.get(CaseRow, child.case_id) if child.case_id else None
        if case is None:
            continue
        summary = child.payload.get("summary", {})
        stars = "★" * int(summary.get("rating") or 0)
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*工单 #{case.id}* {stars} {summary.get('text', '')}\n"
                    f"_{summary.get('source', '')}_ · {status_line(case, tz)}",
                },
            }
        )
        actions = case_actions(case)
        if actions:
            blocks.append(actions)
    fallback = f"[{label}] {len(children)} 个投诉"
    return coloured(
        with_mentions(mentions, fallback),
        colour,
        blocks,
        message_metadata(group.id or 0, None, "P3"),
        fallback=fallback,
    )
