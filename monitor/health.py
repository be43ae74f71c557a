"""Source health: notice when a source goes blind, say so once, and say when it heals.

A source is blind when it fails `failures_in_a_row` runs in a row, hits a
login wall or captcha (SourceBlocked), or returns nothing where its recent
good runs returned something. Health alerts go to the ops channel, never to
the complaint channels, once per episode, with a recovery notice at the end.
Items a run had to quarantine are counted here and told to the ops channel
once, when they first arrive.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.config import Settings
from monitor.domain import AlertKind, Severity, code, strong
from monitor.notices import message_notice
from monitor.redact import redact
from monitor.store.notices import enqueue
from monitor.store.quarantine import counts
from monitor.store.tables import SourceRunRow, SourceStateRow


@dataclass(frozen=True)
class Health:
    source: str
    kind: str
    last_success_at: datetime | None
    consecutive_failures: int
    last_items: int | None
    baseline: float | None
    blind: bool
    reason: str | None
    last_error: str | None
    quarantined: int = 0  # items kept in quarantine: read, but not stored as posts


def baseline(
    session: Session, source: str, runs: int, before_id: int | None = None
) -> float | None:
    """Mean items of the source's last good runs (before `before_id`), or None without history."""
    query = select(col(SourceRunRow.fetched)).where(
        col(SourceRunRow.source) == source, col(SourceRunRow.status) == "ok"
    )
    if before_id is not None:
        query = query.where(col(SourceRunRow.id) < before_id)
    items = session.execute(query.order_by(col(SourceRunRow.id).desc()).limit(runs)).scalars().all()
    return statistics.fmean(items) if items else None


def evaluate(
    session: Session,
    settings: Settings,
    state: SourceStateRow,
    run: SourceRunRow,
    *,
    blocked: bool,
    now: datetime,
    quarantined: int = 0,
) -> str | None:
    """Update the source's health after a run; returns the alert text queued, if any.

    `quarantined`: items this run put in quarantine for the first time.
    """
    if quarantined:
        text = (
            f"🧪 来源 {strong(state.source)}：{quarantined} 条内容无法保存，已隔离"
            f"（{code('koubei quarantine')} 查看原文与原因），其余已正常入库"
        )
        _alert(session, settings, f"health:{state.source}:quarantine:{run.id}", text, now)
    policy = settings.policy.source_health
    usual = baseline(session, state.source, policy.baseline_runs, before_id=run.id)
    problem = None
    error = redact(run.error or "")  # the ops alert never quotes a credential
    if blocked:
        problem = f"被登录墙、验证码或风控拦截：{error}"
    elif state.consecutive_failures >= policy.failures_in_a_row:
        problem = f"连续 {state.consecutive_failures} 次采集失败，最近一次：{error}"
    elif run.status == "ok" and run.fetched == 0 and usual is not None and usual >= 1:
        problem = f"本次采集到 0 条，近期每次平均 {usual:.0f} 条：可能被屏蔽或页面已改版"
    if problem and not state.blind:
        state.blind, state.blind_reason, state.blind_since = True, problem, now
        text = f"🙈 来源 {strong(state.source)} 失明：{problem}"
        _alert(session, settings, f"health:{state.source}:down:{run.id}", text, now)
        return text
    if not problem and run.status == "ok" and state.blind:
        since = state.blind_since
        tz = ZoneInfo(settings.app.timezone)
        text = (
            f"✅ 来源 {strong(state.source)} 已恢复（问题始于 "
            f"{since.astimezone(tz):%m-%d %H:%M}），本次 {run.fetched} 条"
            if since
            else f"✅ 来源 {strong(state.source)} 已恢复"
        )
        state.blind, state.blind_reason, state.blind_since = False, None, None
        _alert(session, settings, f"health:{state.source}:up:{run.id}", text, now)
        return text
    return None


def _alert(session: Session, settings: Settings, key: str, text: str, now: datetime) -> None:
    notice = message_notice(
        kind=AlertKind.SOURCE_HEALTH,
        dedup_key=key,
        route=settings.policy.watchdog.ops_channel,
        text=text,
        colour="#455A64",
    )
    enqueue(session, settings, notice, now, severity=Severity.P2)


def table(engine: Engine, settings: Settings) -> list[Health]:
    """Every configured source's health, for `koubei sources`."""
    rows = []
    with Session(engine) as session:
        held = counts(session)
        for source in settings.app.sources:
            state = session.get(SourceStateRow, source.name)
            last = (
                session.execute(
                    select(SourceRunRow)
                    .where(col(SourceRunRow.source) == source.name)
                    .order_by(col(SourceRunRow.id).desc())
                    .limit(1)
                )
                .scalars()
                .first()
            )
            rows.append(
                Health(
                    source=source.name,
                    kind=source.kind,
                    last_success_at=state.last_success_at if state else None,
                    consecutive_failures=state.consecutive_failures if state else 0,
                    last_items=last.fetched if last else None,
                    baseline=baseline(
                        session, source.name, settings.policy.source_health.baseline_runs
                    ),
                    blind=bool(state and state.blind),
                    # Rows written before errors were redacted on the way in.
                    reason=redact(state.blind_reason) if state and state.blind_reason else None,
                    last_error=redact(state.last_error) if state and state.last_error else None,
                    quarantined=held.get(source.name, 0),
                )
            )
    return rows
