"""`/metrics`: the database's state at scrape time, and this process's counters.

Values that are database state (posts, runs, health, grades, cases, breaches,
the outbox, job leases) are read from the database at each scrape by a
custom collector, so every instance, web or scheduler, reports the same truth
and a restart loses no count. Aggregate over instances with max(), not sum().
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from monitor.clock import Clock
from monitor.counters import REGISTRY
from monitor.domain import AlertKind, DeliveryStatus
from monitor.store.leases import all_leases
from monitor.store.tables import (
    AlertRow,
    CaseRow,
    DeliveryRow,
    PostRow,
    SourceRunRow,
    SourceStateRow,
    VerdictRow,
)

log = logging.getLogger(__name__)


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


_STATES = ("pending", "failing", "failed", "sent")


class DatabaseCollector(Collector):
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("koubei_database_up", "1 when the database answered this scrape")
        try:
            families = list(self._families())
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        now = self.clock.now()
        with Session(self.engine) as s:
            yield from self._sources(s, now)
            yield from self._grades_and_cases(s)
            yield from self._outbox(s, now)
        yield from self._leases(now)

    def _sources(self, s: Session, now: datetime) -> Iterator[Any]:
        collected = CounterMetricFamily(
            "koubei_posts_collected",
            "Posts read from each source, over all runs",
            labels=["source"],
        )
        stored = CounterMetricFamily(
            "koubei_posts_stored",
            "Posts stored, new or edited, by source",
            labels=["source", "change"],
        )
        runs = CounterMetricFamily(
            "koubei_source_runs", "Source runs by outcome", labels=["source", "status"]
        )
        per_source = s.execute(
            select(
                col(SourceRunRow.source),
                col(SourceRunRow.status),
                func.count(),
                func.coalesce(func.sum(SourceRunRow.fetched), 0),
                func.coalesce(func.sum(SourceRunRow.new), 0),
                func.coalesce(func.sum(SourceRunRow.updated), 0),
            ).group_by(col(SourceRunRow.source), col(SourceRunRow.status))
        ).all()
        totals: dict[str, list[int]] = {}
        for source, status, count, fetched, new, updated in per_source:
            runs.add_metric([source, status], count)
            t = totals.setdefault(source, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + fetched, t[1] + new, t[2] + updated
        for source, (fetched, new, updated) in sorted(totals.items()):
            collected.add_metric([source], fetched)
            stored.add_metric([source, "new"], new)
            stored.add_metric([source, "edited"], updated)
        yield from (collected, stored, runs)

        posts = GaugeMetricFamily(
            "koubei_posts", "Posts in the database by source", labels=["source"]
        )
        for source, count in s.execute(
            select(col(PostRow.source), func.count()).group_by(col(PostRow.source))
        ):
            posts.add_metric([source], count)
        yield posts

        blind = GaugeMetricFamily(
            "koubei_source_blind", "1 while a source is blind", labels=["source"]
        )
        fails = GaugeMetricFamily(
            "koubei_source_consecutive_failures", "Failed runs in a row", labels=["source"]
        )
        success = GaugeMetricFamily(
            "koubei_source_last_success_timestamp_seconds",
            "When each source last ran without error (Unix time; 0: never)",
            labels=["source"],
        )
        for state in s.execute(select(SourceStateRow)).scalars():
            blind.add_metric([state.source], 1 if state.blind else 0)
            fails.add_metric([state.source], state.consecutive_failures)
            success.add_metric([state.source], _ts(state.last_success_at))
        yield from (blind, fails, success)

    def _grades_and_cases(self, s: Session) -> Iterator[Any]:
        grades = CounterMetricFamily(
            "koubei_verdicts",
            "Gradings (a post edited is graded again) by grade",
            labels=["severity"],
        )
        for severity, count in s.execute(
            select(col(VerdictRow.severity), func.count()).group_by(col(VerdictRow.severity))
        ):
            grades.add_metric([severity], count)
        yield grades

        opened = CounterMetricFamily(
            "koubei_cases_opened", "Cases opened by grade", labels=["severity"]
        )
        acked = CounterMetricFamily(
            "koubei_cases_acknowledged", "Cases acknowledged by grade", labels=["severity"]
        )
        resolved = CounterMetricFamily(
            "koubei_cases_resolved", "Cases resolved by grade", labels=["severity"]
        )
        by_state = GaugeMetricFamily(
            "koubei_cases", "Cases by grade and current state", labels=["severity", "state"]
        )
        rows = s.execute(
            select(
                col(CaseRow.severity),
                col(CaseRow.state),
                func.count(),
                func.count(col(CaseRow.acknowledged_at)),
                func.count(col(CaseRow.resolved_at)),
            ).group_by(col(CaseRow.severity), col(CaseRow.state))
        ).all()
        sums: dict[str, list[int]] = {}
        for severity, state, count, n_acked, n_resolved in rows:
            by_state.add_metric([severity, state], count)
            t = sums.setdefault(severity, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + count, t[1] + n_acked, t[2] + n_resolved
        for severity, (count, n_acked, n_resolved) in sorted(sums.items()):
            opened.add_metric([severity], count)
            acked.add_metric([severity], n_acked)
            resolved.add_metric([severity], n_resolved)
        yield from (opened, acked, resolved, by_state)

        breaches = CounterMetricFamily(
            "koubei_sla_breaches", "SLA deadlines missed, by grade", labels=["severity"]
        )
        for severity, count in s.execute(
            select(col(AlertRow.severity), func.count())
            .where(col(AlertRow.kind) == AlertKind.BREACH.value)
            .group_by(col(AlertRow.severity))
        ):
            breaches.add_metric([severity], count)
        yield breaches

    def _outbox(self, s: Session, now: datetime) -> Iterator[Any]:
        outbox = GaugeMetricFamily(
            "koubei_outbox_deliveries",
            "Deliveries by sink and state: pending, failing (pending after a failed try), "
            "failed (refused for good, listed by `koubei deliveries`), sent",
            labels=["state", "sink"],
        )
        pending = col(DeliveryRow.status) == DeliveryStatus.PENDING.value
        counts: dict[str, dict[str, int]] = {}  # each sink with deliveries, every state
        for sink, status, failing, count in s.execute(
            select(
                col(DeliveryRow.sink),
                col(DeliveryRow.status),
                col(DeliveryRow.last_error).is_not(None),
                func.count(),
            ).group_by(
                col(DeliveryRow.sink),
                col(DeliveryRow.status),
                col(DeliveryRow.last_error).is_not(None),
            )
        ):
            mine = counts.setdefault(sink, dict.fromkeys(_STATES, 0))
            if status == DeliveryStatus.SENT.value:
                mine["sent"] += count
            elif status == DeliveryStatus.FAILED.value:
                mine["failed"] += count
            else:
                mine["pending"] += count
                mine["failing"] += count if failing else 0
        for sink, states in sorted(counts.items()):
            for state, count in states.items():
                outbox.add_metric([state, sink], count)
        yield outbox
        oldest = s.execute(select(func.min(col(DeliveryRow.created_at))).where(pending)).scalar()
        age = GaugeMetricFamily(
            "koubei_outbox_oldest_pending_seconds",
            "Age of the oldest undelivered alert (0: none waiting)",
        )
        age.add_metric([], (now - oldest).total_seconds() if oldest is not None else 0.0)
        yield age

    def _leases(self, now: datetime) -> Iterator[Any]:
        holder = GaugeMetricFamily(
            "koubei_job_lease_holder",
            "1 for the instance holding each job's live lease",
            labels=["job", "holder"],
        )
        expires = GaugeMetricFamily(
            "koubei_job_lease_expires_in_seconds",
            "Seconds until each job's lease runs out (negative: expired, nobody holds it)",
            labels=["job"],
        )
        started = GaugeMetricFamily(
            "koubei_job_last_started_timestamp_seconds",
            "When each job last started, on any instance (Unix time)",
            labels=["job"],
        )
        for lease in all_leases(self.engine):
            if lease.live(now):
                holder.add_metric([lease.job, lease.holder], 1)
            expires.add_metric([lease.job], (lease.expires_at - now).total_seconds())
            started.add_metric([lease.job], _ts(lease.last_started_at))
        yield from (holder, expires, started)


def database_registry(engine: Engine, clock: Clock) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine, clock))
    return registry


def exposition(database: CollectorRegistry) -> tuple[bytes, str]:
    """This process's counters, then the database's state, in the Prometheus text format."""
    return generate_latest(REGISTRY) + generate_latest(database), CONTENT_TYPE_LATEST


def serve_metrics(
    host: str,
    port: int,
    database: CollectorRegistry,
    health: Callable[[], tuple[bool, dict[str, Any]]],
) -> ThreadingHTTPServer:
    """`koubei run`'s own endpoints: GET /metrics and GET /healthz, in a daemon thread."""
    import json

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                body, ctype = exposition(database)
                status = 200
            elif self.path.split("?")[0] == "/healthz":
                ok, detail = health()
                body, ctype = json.dumps(detail).encode(), "application/json"
                status = 200 if ok else 503
            else:
                body, ctype, status = b"not found: try /metrics or /healthz\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
