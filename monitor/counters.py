"""In-process events as Prometheus counters and histograms, one registry per process.

What is database state (posts, cases, the outbox, leases) is read from the
database at scrape time instead (monitor/metrics.py), so any instance reports
the same truth; what happens inside one process is counted here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from monitor.classify import GradeInput, Grader
from monitor.domain import Verdict

REGISTRY = CollectorRegistry(auto_describe=True)

JOB_RUNS = Counter(
    "koubei_job_runs",
    "Scheduled job runs on this instance, by outcome (ok, error)",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "koubei_job_duration_seconds",
    "How long a scheduled job ran on this instance",
    ["job"],
    buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 1800),
    registry=REGISTRY,
)
LEASE_TAKEOVERS = Counter(
    "koubei_job_lease_takeovers",
    "Leases this instance took from another holder (or lost to one)",
    ["job", "direction"],
    registry=REGISTRY,
)
SCHEDULER_BEAT = Gauge(
    "koubei_scheduler_heartbeat_timestamp_seconds",
    "When this instance's scheduler last renewed its leases (Unix time)",
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "koubei_delivery_latency_seconds",
    "From an alert being queued to its delivery being confirmed (outbox job), by sink",
    ["sink"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=REGISTRY,
)
# The names are Slack's from before other sinks; the sink label says whose answer it was.
SLACK_RATE_LIMITED = Counter(
    "koubei_slack_rate_limited",
    "Rate-limit answers that made this instance wait (Slack's HTTP 429, a robot's "
    "rate-limit code), by sink",
    ["sink"],
    registry=REGISTRY,
)
SLACK_RATE_LIMIT_WAIT = Counter(
    "koubei_slack_rate_limit_wait_seconds",
    "Seconds this instance waited (or put a delivery off) on a sink's rate limit, by sink",
    ["sink"],
    registry=REGISTRY,
)
GRADING_SECONDS = Histogram(
    "koubei_grading_seconds",
    "Time to grade one batch of posts, by grader",
    ["grader"],
    buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
GRADED = Counter(
    "koubei_graded_posts",
    "Posts graded on this instance, by grader",
    ["grader"],
    registry=REGISTRY,
)


class CountingRateLimitHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 retry, counting each wait and its length for the sink `sink`."""

    def __init__(self, *, sink: str = "slack", max_retry_count: int = 1) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sink = sink

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        started = time.monotonic()
        super().prepare_for_next_attempt(
            state=state, request=request, response=response, error=error
        )
        SLACK_RATE_LIMITED.labels(self.sink).inc()
        SLACK_RATE_LIMIT_WAIT.labels(self.sink).inc(time.monotonic() - started)


def count_rate_limits(waits: Mapping[str, Sequence[float]]) -> None:
    """The outbox's rate-limit answers (sink -> seconds each asked to wait), counted."""
    for sink, seconds in waits.items():
        SLACK_RATE_LIMITED.labels(sink).inc(len(seconds))
        SLACK_RATE_LIMIT_WAIT.labels(sink).inc(sum(seconds))


class TimedGrader:
    """A grader whose every call is timed into GRADING_SECONDS."""

    def __init__(self, inner: Grader) -> None:
        self.inner = inner
        self.name = inner.name

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        with GRADING_SECONDS.labels(self.name).time():
            verdicts = self.inner.grade_many(items, batch_size)
        GRADED.labels(self.name).inc(len(verdicts))
        return verdicts

    def grade(self, text: str, **meta: Any) -> Verdict:
        with GRADING_SECONDS.labels(self.name).time():
            verdict = self.inner.grade(text, **meta)
        GRADED.labels(self.name).inc()
        return verdict
