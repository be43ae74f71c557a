"""APScheduler wiring only: one job per source, the outbox, the daily digest.

All state lives in the database, never in the job store: every job is
idempotent and safe to run twice or after a restart.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import drain_outbox, ops_target
from monitor.alerting.sinks import Sink
from monitor.alerting.sla import sweep
from monitor.alerting.surge import check_surge
from monitor.config import SourceConfig
from monitor.errors import describe
from monitor.pipeline import Services, run_source
from monitor.reports.period import last_complete
from monitor.reports.run import make_report, queue_report_post
from monitor.watchdog import beat, check_deadman, ping_external

log = logging.getLogger(__name__)


def _source_job(svc: Services, source: SourceConfig) -> None:
    try:
        result = run_source(svc, source)
    except Exception as exc:  # run_source records its own failures; this is the database
        log.error("%s: the run could not be recorded: %s", source.name, describe(exc))
        return
    log.info(
        "%s: fetched %d, new %d, edited %d, cases %d, alerts %d%s%s",
        source.name,
        result.fetched,
        result.new,
        result.edited,
        result.cases_opened,
        result.alerts,
        f", quarantined {result.quarantined}" if result.quarantined else "",
        f", error: {result.error}" if result.error else "",
    )


def _outbox_job(svc: Services, sink: Sink) -> None:
    report = drain_outbox(
        svc.engine, sink, svc.settings.app.outbox, svc.clock, ops=ops_target(svc.settings)
    )
    if report.sent or report.failed:
        log.info(
            "outbox: sent %d, failed %d, pending %d", report.sent, report.failed, report.pending
        )


def _sweep_job(svc: Services) -> None:
    report = sweep(svc.engine, svc.settings, svc.clock)
    surged = check_surge(svc.engine, svc.settings, svc.clock.now())
    if report.escalations or report.reminders or report.breaches or surged:
        log.info(
            "sla: %d escalations, %d reminders, %d breaches; surges: %s",
            report.escalations,
            report.reminders,
            report.breaches,
            surged or "none",
        )


def _heartbeat_job(svc: Services) -> None:
    beat(svc.engine, svc.clock.now())
    ping_external(svc.settings.policy.watchdog.external_url, svc.http.raw)


def _report_job(svc: Services, kind: str) -> None:
    period = last_complete(kind, svc.clock.now())
    result = make_report(svc.engine, svc.settings, period, svc.clock.now())
    queued = queue_report_post(svc.engine, svc.settings, result, svc.clock.now())
    log.info(
        "report %s written to %s%s",
        period.key,
        result.written.html.parent,
        "; posting to Slack" if queued else "",
    )


def _digest_job(svc: Services) -> None:
    count = enqueue_digest(svc)
    log.info("digest: %d P4 posts queued", count)


def build_scheduler(svc: Services, sink: Sink) -> BlockingScheduler:
    """The jobs; first, a dead-man alert if the last run stopped ticking long ago."""
    if check_deadman(svc.engine, svc.settings, svc.clock.now()):
        log.warning("the scheduler was not running for a while: dead-man alert queued")
    app = svc.settings.app
    scheduler = BlockingScheduler(timezone=app.timezone)
    now = datetime.now(scheduler.timezone)
    common = {"coalesce": True, "max_instances": 1}
    for source in app.sources:
        if not source.enabled:
            continue
        interval = timedelta(minutes=source.interval_minutes)
        scheduler.add_job(
            _source_job,
            IntervalTrigger(minutes=source.interval_minutes, timezone=app.timezone),
            args=[svc, source],
            id=f"source:{source.name}",
            next_run_time=now,  # collect at start, then on the interval
            # A run that starts late by up to half its interval is still worth it.
            misfire_grace_time=max(60, int(interval.total_seconds() / 2)),
            **common,
        )
    scheduler.add_job(
        _outbox_job,
        IntervalTrigger(seconds=app.outbox.interval_seconds, timezone=app.timezone),
        args=[svc, sink],
        id="outbox",
        next_run_time=now,
        misfire_grace_time=30,
        **common,
    )
    scheduler.add_job(
        _sweep_job,
        IntervalTrigger(seconds=30, timezone=app.timezone),
        args=[svc],
        id="sla",
        next_run_time=now,
        misfire_grace_time=60,
        **common,
    )
    heartbeat = svc.settings.policy.watchdog.heartbeat_seconds
    scheduler.add_job(
        _heartbeat_job,
        IntervalTrigger(seconds=heartbeat, timezone=app.timezone),
        args=[svc],
        id="heartbeat",
        next_run_time=now,
        misfire_grace_time=int(heartbeat),
        **common,
    )
    scheduler.add_job(
        _digest_job,
        CronTrigger(hour=app.digest.hour, minute=app.digest.minute, timezone=app.timezone),
        args=[svc],
        id="digest",
        misfire_grace_time=3600,
        **common,
    )
    hour = app.reports.hour
    for kind, trigger in (
        ("month", CronTrigger(day=1, hour=hour, timezone=app.timezone)),
        ("week", CronTrigger(day_of_week="mon", hour=hour, timezone=app.timezone)),
    ):
        scheduler.add_job(
            _report_job,
            trigger,
            args=[svc, kind],
            id=f"report:{kind}",
            misfire_grace_time=6 * 3600,
            **common,
        )
    return scheduler
