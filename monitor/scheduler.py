"""APScheduler wiring: every job runs on one instance at a time, through a lease.

Each instance looks at every job every `tick` seconds (a quarter of
scheduler.failover_seconds): it takes or renews the job's lease in the
database and runs the job if the database says it is due (an interval since
its last start, or a cron time passed since then). A separate renewal keeps
held leases alive while long jobs run; the leases of a dead instance run out
(three quarters of failover_seconds) and the next look by another instance
takes them, so a job is taken over within failover_seconds. All state lives
in the database, never in the job store: every job is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import Sinks as Sink
from monitor.alerting.outbox import drain_outbox, ops_target
from monitor.alerting.sla import sweep
from monitor.alerting.surge import check_surge
from monitor.config import SourceConfig
from monitor.counters import (
    DELIVERY_SECONDS,
    JOB_RUNS,
    JOB_SECONDS,
    LEASE_TAKEOVERS,
    SCHEDULER_BEAT,
    count_rate_limits,
)
from monitor.domain import DeliveryStatus, Severity
from monitor.errors import describe
from monitor.pipeline import Services, run_source
from monitor.reports.period import last_complete
from monitor.reports.run import make_report, queue_report_post
from monitor.store.leases import Lease, Leases
from monitor.store.notices import enqueue
from monitor.store.tables import DeliveryRow
from monitor.stories_digest import stories_notice, weekly_stories
from monitor.watchdog import beat, check_deadman, ping_external

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A scheduled job: an interval since its last start, or a cron time."""

    name: str
    run: Callable[[], None]
    every: timedelta | None = None
    cron: CronTrigger | None = None
    grace: timedelta = timedelta(hours=1)  # how late a cron run is still worth making

    def due(self, lease: Lease, now: datetime, tick: timedelta) -> bool:
        last = lease.last_started_at
        if self.every is not None:
            # Looks come every tick: half a tick early is on time, not a second run.
            return last is None or now - last >= self.every - min(tick, self.every) / 2
        assert self.cron is not None
        since = max(last or lease.created_at, now - self.grace)
        fire = self.cron.get_next_fire_time(None, since + timedelta(microseconds=1))
        return fire is not None and fire <= now


class JobRunner:
    """One instance's side of the leases: look at a job, run it if ours and due."""

    def __init__(self, svc: Services, leases: Leases | None = None) -> None:
        failover = svc.settings.app.scheduler.failover_seconds
        self.svc = svc
        self.tick = timedelta(seconds=failover / 4)
        self.leases = leases or Leases(svc.engine, ttl=failover * 3 / 4)
        self.held: dict[str, int] = {}  # job -> token
        self.running: set[str] = set()
        self.stopping = False
        self.last_beat: float | None = None  # monotonic time of the last good renewal
        self._lock = threading.Lock()

    @property
    def instance(self) -> str:
        return self.leases.holder

    def look(self, job: Job) -> str:
        """Take or renew the job's lease and run it if due; returns what happened."""
        if self.stopping:
            return "stopping"
        now = self.svc.clock.now()
        lease = self.leases.acquire(job.name, now)
        if lease is None:
            self._lost(job.name)
            return "held elsewhere"
        self._took(lease)
        if not job.due(lease, now, self.tick):
            return "not due"
        if not self.leases.start(lease, now):
            return "held elsewhere"
        with self._lock:
            self.running.add(job.name)
        outcome = "ok"
        started = time.monotonic()
        try:
            job.run()
        except Exception:
            outcome = "error"
            log.exception("job %s failed; it runs again when next due", job.name)
        finally:
            JOB_SECONDS.labels(job.name).observe(time.monotonic() - started)
            JOB_RUNS.labels(job.name, outcome).inc()
            with self._lock:
                self.running.discard(job.name)
            if not self.leases.finish(lease, self.svc.clock.now(), outcome):
                log.warning("job %s finished after its lease passed to another instance", job.name)
            elif self.stopping:
                self.leases.release(job.name, self.svc.clock.now())
        return outcome

    def renew(self) -> None:
        """Keep held leases alive, long jobs included; notice the ones lost."""
        try:
            still = self.leases.renew_all(self.svc.clock.now())
        except Exception as exc:
            log.warning("cannot renew job leases: %s", type(exc).__name__)
            return
        self.last_beat = time.monotonic()
        SCHEDULER_BEAT.set_to_current_time()
        for job in list(self.held):
            if job not in still:
                self._lost(job)

    def stop(self) -> None:
        """Give back the leases of jobs not running, so another instance takes them at once."""
        self.stopping = True
        now = self.svc.clock.now()
        with self._lock:
            idle = [job for job in self.held if job not in self.running]
        for job in idle:
            self.leases.release(job, now)
            self.held.pop(job, None)

    def _took(self, lease: Lease) -> None:
        previous = self.held.get(lease.job)
        if previous != lease.token:
            self.held[lease.job] = lease.token
            if lease.token > 1 and previous is None:
                log.info("took over job %s (lease token %d)", lease.job, lease.token)
                LEASE_TAKEOVERS.labels(lease.job, "taken").inc()

    def _lost(self, job: str) -> None:
        if self.held.pop(job, None) is not None:
            log.warning("job %s is now held by another instance", job)
            LEASE_TAKEOVERS.labels(job, "lost").inc()


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
    started = svc.clock.now()
    report = drain_outbox(
        svc.engine, sink, svc.settings.app.outbox, svc.clock, ops=ops_target(svc.settings)
    )
    if report.sent or report.failed:
        log.info(
            "outbox: sent %d, failed %d, pending %d", report.sent, report.failed, report.pending
        )
    count_rate_limits(report.waits)
    if report.sent:
        _observe_latency(svc, started)


def _observe_latency(svc: Services, since: datetime) -> None:
    with Session(svc.engine) as session:
        rows = session.execute(
            select(
                col(DeliveryRow.sink), col(DeliveryRow.created_at), col(DeliveryRow.sent_at)
            ).where(
                col(DeliveryRow.status) == DeliveryStatus.SENT.value,
                col(DeliveryRow.sent_at) >= since,
            )
        ).all()
    for sink, created, sent in rows:
        DELIVERY_SECONDS.labels(sink).observe(max(0.0, (sent - created).total_seconds()))


def _sla_job(svc: Services) -> None:
    report = sweep(svc.engine, svc.settings, svc.clock)
    if report.escalations or report.reminders or report.breaches:
        log.info(
            "sla: %d escalations, %d reminders, %d breaches",
            report.escalations,
            report.reminders,
            report.breaches,
        )


def _surge_job(svc: Services) -> None:
    surged = check_surge(svc.engine, svc.settings, svc.clock.now())
    if surged:
        log.info("surges: %s", surged)


def _heartbeat_job(svc: Services, instance: str) -> None:
    beat(svc.engine, svc.clock.now(), instance)
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


def _stories_job(svc: Services) -> None:
    """Last week's shortlisted stories to the PR team, once per ISO week; nothing published."""
    week = last_complete("week", svc.clock.now())
    with Session(svc.engine) as session, session.begin():
        stories = weekly_stories(session, week.start, week.end)
        queued = None
        if stories:  # a week without a shortlist sends nothing
            route = svc.settings.app.reports.stories_channel
            notice = stories_notice(week.key, week.label, stories, route)
            queued = enqueue(session, svc.settings, notice, svc.clock.now(), severity=Severity.P4)
    sent = ", queued" if queued is not None else ""
    log.info("stories %s: %d shortlisted%s", week.key, len(stories), sent)


def _digest_job(svc: Services) -> None:
    count = enqueue_digest(svc)
    log.info("digest: %d P4 posts queued", count)


def jobs(svc: Services, sink: Sink, instance: str) -> list[Job]:
    """Every scheduled job, named as its lease is."""
    app = svc.settings.app
    tz = app.timezone
    out = [
        Job(
            f"source:{s.name}",
            lambda s=s: _source_job(svc, s),  # type: ignore[misc]
            every=timedelta(minutes=s.interval_minutes),
        )
        for s in app.sources
        if s.enabled
    ]
    sweep_every = timedelta(seconds=app.scheduler.sweep_seconds)
    heartbeat = timedelta(seconds=svc.settings.policy.watchdog.heartbeat_seconds)
    out += [
        Job(
            "outbox",
            lambda: _outbox_job(svc, sink),
            every=timedelta(seconds=app.outbox.interval_seconds),
        ),
        Job("sla", lambda: _sla_job(svc), every=sweep_every),
        Job("surge", lambda: _surge_job(svc), every=sweep_every),
        Job("watchdog", lambda: _heartbeat_job(svc, instance), every=heartbeat),
        Job(
            "digest",
            lambda: _digest_job(svc),
            cron=CronTrigger(hour=app.digest.hour, minute=app.digest.minute, timezone=tz),
        ),
    ]
    hour = app.reports.hour
    for kind, trigger in (
        ("month", CronTrigger(day=1, hour=hour, timezone=tz)),
        ("week", CronTrigger(day_of_week="mon", hour=hour, timezone=tz)),
    ):
        out.append(
            Job(
                f"report:{kind}",
                lambda kind=kind: _report_job(svc, kind),  # type: ignore[misc]
                cron=trigger,
                grace=timedelta(hours=6),
            )
        )
    monday = CronTrigger(day_of_week="mon", hour=hour, timezone=tz)
    out.append(
        Job("stories:week", lambda: _stories_job(svc), cron=monday, grace=timedelta(hours=6))
    )
    return out


def build_scheduler(
    svc: Services, sink: Sink, runner: JobRunner | None = None
) -> BlockingScheduler:
    """The jobs; first, a dead-man alert if the last run stopped ticking long ago."""
    if check_deadman(svc.engine, svc.settings, svc.clock.now()):
        log.warning("the scheduler was not running for a while: dead-man alert queued")
    runner = runner or JobRunner(svc)
    app = svc.settings.app
    all_jobs = jobs(svc, sink, runner.instance)
    scheduler = BlockingScheduler(
        timezone=app.timezone,
        executors={"default": ThreadPoolExecutor(max_workers=len(all_jobs) + 2)},
    )
    now = datetime.now(scheduler.timezone)
    tick = runner.tick.total_seconds()
    common = {"coalesce": True, "max_instances": 1, "next_run_time": now}
    scheduler.add_job(
        runner.renew,
        IntervalTrigger(seconds=tick, timezone=app.timezone),
        id="leases",
        misfire_grace_time=max(1, int(tick)),
        **common,
    )
    for job in all_jobs:
        every = min(tick, job.every.total_seconds()) if job.every else tick
        scheduler.add_job(
            runner.look,
            IntervalTrigger(seconds=every, timezone=app.timezone),
            args=[job],
            id=job.name,
            misfire_grace_time=max(1, int(every)),
            **common,
        )
    return scheduler
