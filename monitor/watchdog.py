"""The watchdog: a heartbeat row each scheduler tick, /healthz, and the dead-man alert.

If the scheduler stops ticking, /healthz fails (so an orchestrator restarts
us, and an external heartbeat monitor stops hearing from us). When the service
comes back after a gap, it says so in the ops channel: alerts in the gap were late.
"""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.domain import AlertKind, Severity
from monitor.notices import message_notice
from monitor.store.notices import enqueue
from monitor.store.sql import dialect_insert
from monitor.store.tables import HeartbeatRow

log = logging.getLogger(__name__)
SCHEDULER = "scheduler"
INSTANCE = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Health:
    ok: bool
    last_beat: datetime | None
    age_seconds: float | None


def beat(engine: Engine, now: datetime, instance: str = INSTANCE) -> None:
    with Session(engine) as session, session.begin():
        table = HeartbeatRow.__table__  # type: ignore[attr-defined]
        stmt = dialect_insert(session)(table).values(
            name=SCHEDULER, instance=instance, started_at=now, beat_at=now
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"], set_={"beat_at": now, "instance": instance}
            )
        )


def health(engine: Engine, now: datetime, stale_after: timedelta) -> Health:
    with Session(engine) as session:
        row = session.get(HeartbeatRow, SCHEDULER)
    if row is None:
        return Health(False, None, None)
    age = (now - row.beat_at).total_seconds()
    return Health(age <= stale_after.total_seconds(), row.beat_at, age)


def check_deadman(engine: Engine, settings: Settings, now: datetime) -> bool:
    """At start: if the last heartbeat is stale, queue a dead-man alert; True when queued."""
    watchdog = settings.policy.watchdog
    state = health(engine, now, timedelta(seconds=watchdog.stale_after_seconds))
    if state.ok or state.last_beat is None:
        return False
    last = state.last_beat
    minutes = round((now - last).total_seconds() / 60)
    text = (
        f"💀 Koubei 的调度器停止了约 {minutes} 分钟（最后心跳 {last:%Y-%m-%d %H:%M} UTC，"
        f"恢复于 {now:%H:%M} UTC）。期间的告警可能延迟，采集缺口会在报告中注明。"
    )
    with Session(engine) as session, session.begin():
        notice = message_notice(
            kind=AlertKind.DEADMAN,
            dedup_key=f"deadman:{last.isoformat()}",
            route=watchdog.ops_channel,
            text=text,
            colour="#455A64",
        )
        alert = enqueue(session, settings, notice, now, severity=Severity.P1)
    return alert is not None


def ping_external(url: str | None, client: httpx.Client) -> None:
    """Tell an external dead-man monitor we are alive; its failure is logged, not fatal."""
    if not url:
        return
    try:
        client.get(url, timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("heartbeat ping to %s failed: %s", httpx.URL(url).host, type(exc).__name__)
