"""Slack messages queued as they are: the way alerts were queued before notices.

Koubei itself queues notices (`monitor.store.notices.enqueue`), rendered per sink at
delivery time. A payload queued here (or by an older version, before the upgrade) is a
Slack message; the outbox hands it to Slack unchanged, and other sinks get its text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from monitor.config import Settings
from monitor.domain import AlertKind, DeliveryStatus, Severity
from monitor.store.notices import alert_exists as _exists
from monitor.store.tables import AlertRow, DeliveryRow

Method = str  # "post" | "reply" | "update"


def channel_for(settings: Settings, severity: Severity) -> tuple[str, str]:
    """(channel key, Slack channel) for a grade, from policy.yaml and koubei.yaml."""
    key = settings.policy.grade(severity).channel
    return key, settings.app.slack.channels[key]


def alert_exists(session: Session, dedup_key: str) -> bool:
    return _exists(session, dedup_key)


def enqueue_alert(
    session: Session,
    settings: Settings,
    *,
    kind: AlertKind,
    severity: Severity,
    dedup_key: str,
    case_id: int | None,
    now: datetime,
    build: Callable[[int], dict[str, Any]],
    channel_key: str | None = None,
    channel: str | None = None,
    method: Method = "post",
    not_before: datetime | None = None,
    group_id: int | None = None,
) -> AlertRow | None:
    """Write the alert and (unless it rides in a group) its outbox row.

    Returns None when an alert with this key exists already. `build(alert_id)`
    makes the message, so the id can travel in its metadata.
    """
    if alert_exists(session, dedup_key):
        return None
    if channel_key is None:
        channel_key, channel = channel_for(settings, severity)
    elif channel is None:  # a channel given outright is not Slack's (a review reply)
        channel = settings.app.slack.channels[channel_key]
    alert = AlertRow(
        dedup_key=dedup_key,
        kind=kind.value,
        case_id=case_id,
        severity=severity.value,
        channel_key=channel_key,
        created_at=now,
        group_id=group_id,
    )
    session.add(alert)
    session.flush()
    assert alert.id is not None
    alert.payload = build(alert.id)
    if group_id is None:
        session.add(
            DeliveryRow(
                alert_id=alert.id,
                channel=channel,
                method=method,
                case_id=case_id,
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=max(now, not_before) if not_before else now,
                created_at=now,
            )
        )
    return alert


def enqueue_notice(
    session: Session,
    settings: Settings,
    *,
    kind: AlertKind,
    severity: Severity,
    dedup_key: str,
    channel_key: str,
    text: str,
    colour: str,
    now: datetime,
) -> AlertRow | None:
    """A message that belongs to no case (surge, dead-man, source health), once per key."""
    from monitor.alerting.blocks import plain_message

    return enqueue_alert(
        session,
        settings,
        kind=kind,
        severity=severity,
        dedup_key=dedup_key,
        case_id=None,
        now=now,
        channel_key=channel_key,
        build=lambda alert_id: plain_message(alert_id, severity.value, text, colour),
    )
