"""Noise control for bursts: many P3 cases in a short window share one message.

The group notifies whom a single P3 would (the grade's mention and the person on call
when the burst began). Its members are the cases' own notices; the sink renders them
together, from each case's latest notice, so an edit shows their current state.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.config import Settings
from monitor.domain import AlertKind, DeliveryStatus, Notice, Severity
from monitor.notices import grade_mentions
from monitor.store.notices import enqueue, memo_of, write_outbox
from monitor.store.tables import AlertRow, DeliveryRow

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
    memo = memo_of(session)
    if memo is not None and memo.p3_since.get(channel_key) == since:
        recent = memo.p3_recent[channel_key]
    else:
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
        if memo is not None:
            memo.p3_since[channel_key], memo.p3_recent[channel_key] = since, recent
    if recent + 1 < grouping.at_least:
        return None
    # A group this transaction made is not yet tried (nobody else sees it): while it has
    # room it is the one the query below would find, as the groups before it were full,
    # tried or gone when it was made, and a group never opens again. So is the group the
    # query found before in this transaction, counted since with the members it queued.
    made = memo.groups.get(channel_key) if memo is not None else None
    if made is not None and made[1] < grouping.max_per_message:
        return made[0]
    child = aliased(AlertRow)
    children = (
        select(func.count())
        .select_from(child)
        .where(col(child.group_id) == col(AlertRow.id))
        .correlate(AlertRow)
        .scalar_subquery()
    )
    tried = aliased(DeliveryRow)
    write_outbox(session)  # the outbox rows this transaction queued, as this query reads them
    found = session.execute(
        select(col(AlertRow.id), children)
        .join(DeliveryRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
        .where(
            col(AlertRow.kind) == AlertKind.GROUP.value,
            col(AlertRow.channel_key) == channel_key,
            col(DeliveryRow.status) == DeliveryStatus.PENDING.value,
            # Not yet tried on any sink: a member joining now is shown everywhere.
            ~exists().where(col(tried.alert_id) == col(AlertRow.id), col(tried.attempts) > 0),
            children < grouping.max_per_message,
        )
        .order_by(col(AlertRow.id))
        .limit(1)
    ).first()
    if found is not None:
        open_group, members = int(found[0]), int(found[1])
        if memo is not None:
            memo.groups[channel_key] = (open_group, members)
        return open_group
    grade = settings.policy.grade(Severity.P3)
    notice = Notice(
        kind=AlertKind.GROUP,
        dedup_key=f"group:{channel_key}:{uuid.uuid4().hex}",  # made once, in this transaction
        route=channel_key,
        headline="个投诉集中出现，合并为一条消息",
        grade=Severity.P3,
        mentions=grade_mentions(settings.policy, Severity.P3, now, ZoneInfo(settings.app.timezone)),
        extra={"label": grade.label, "colour": grade.colour},
    )
    group = enqueue(session, settings, notice, now, not_before=max(now + HOLD, not_before or now))
    assert group is not None and group.id is not None
    return group.id
