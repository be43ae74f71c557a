"""Alerts for cases and digests, written to the outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from monitor.config import Settings
from monitor.domain import AlertKind, DeliveryStatus, Severity
from monitor.store.tables import AlertRow, DeliveryRow


def channel_for(settings: Settings, severity: Severity) -> tuple[str, str]:
    """(channel key, Slack channel) for a grade, from policy.yaml and koubei.yaml."""
    key = settings.policy.grade(severity).channel
    return key, settings.app.slack.channels[key]


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
) -> AlertRow | None:
    """Write the alert and its outbox row; None if an alert with this key exists already.

    `build(alert_id)` makes the message, so the id can travel in its metadata.
    """
    exists = session.execute(
        select(AlertRow.id).where(AlertRow.dedup_key == dedup_key)  # type: ignore[call-overload]
    ).first()
    if exists:
        return None
    key, channel = channel_for(settings, severity)
    alert = AlertRow(
        dedup_key=dedup_key,
        kind=kind.value,
        case_id=case_id,
        severity=severity.value,
        channel_key=key,
        created_at=now,
    )
    session.add(alert)
    session.flush()
    assert alert.id is not None
    alert.payload = build(alert.id)
    session.add(
        DeliveryRow(
            alert_id=alert.id,
            channel=channel,
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return alert
