"""A send that takes longer than the outbox lease keeps its delivery: a second drain (a
second instance) running meanwhile neither posts it again nor tells ops it may be lost.

Real time, a lease of a fraction of a second, two drains on two threads, real HTTP to
the fake Slack and the fake WeCom robot, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from monitor.alerting.outbox import DrainReport, drain_outbox, ops_target
from monitor.alerting.sinks import SlackSink
from monitor.alerting.wecom import WeComSink
from monitor.clock import SystemClock
from monitor.config import OutboxConfig, load_settings
from monitor.domain import DeliveryStatus, Sink
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.fakes.wecom import FakeWeCom
from monitor.pipeline import Services, run_source
from tests.conftest import SLACK_AND_WECOM, SLACK_TOKEN, review, write_config
from tests.test_outbox_claims import CRY, _ops_alerts, _rows

LEASE_S = 0.6


def _short_lease(svc: Services) -> OutboxConfig:
    return svc.settings.app.outbox.model_copy(update={"lease_seconds": LEASE_S})


def _slack_sink(svc: Services) -> Sink:
    return cast(
        Sink, SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    )


def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the first send never reached the fake"
        time.sleep(0.01)


def _first_drain(drain: Callable[[], DrainReport]) -> tuple[threading.Thread, list[DrainReport]]:
    reports: list[DrainReport] = []
    thread = threading.Thread(target=lambda: reports.append(drain()), daemon=True)
    thread.start()
    return thread, reports


def test_a_retry_after_longer_than_the_lease_is_not_posted_twice_by_another_instance(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    (queued,) = _rows(svc)
    outbox = _short_lease(svc)
    # Slack asks the first post to wait 2 s; slack-sdk sleeps that out inside the send,
    # more than three leases.
    slack.faults.retry_after_s = 2
    slack.faults.rate_limit_posts = 1
    first, reports = _first_drain(
        lambda: drain_outbox(svc.engine, _slack_sink(svc), outbox, SystemClock())
    )
    _until(lambda: slack.rate_limited >= 1)
    time.sleep(LEASE_S + 0.4)  # the claim's first lease is over: a second instance drains
    other = drain_outbox(svc.engine, _slack_sink(svc), outbox, SystemClock())
    first.join(timeout=10)
    assert not first.is_alive()
    (mine,) = reports
    assert other.sent == 0 and other.found_already_sent == 0
    assert mine.sent == 1 and mine.superseded == 0
    assert len(slack.posts_in("#pr-crisis")) == 1
    (row,) = _rows(svc)
    assert row.id == queued.id and row.status == DeliveryStatus.SENT.value
    assert row.attempts == 1 and row.last_error is None and row.claimed_until is None


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


def test_a_slow_robot_answer_is_not_told_to_ops_as_maybe_lost_by_another_instance(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, tmp_path: Path, wecom: FakeWeCom
) -> None:
    path = write_config(
        tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/", sinks=SLACK_AND_WECOM
    )
    svc.settings = load_settings(
        path, env={"SLACK_BOT_TOKEN": SLACK_TOKEN, "PR_WECOM_URL": wecom.webhook}
    )
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    outbox = _short_lease(svc)
    ops = ops_target(svc.settings)
    robot = WeComSink.connect("pr-wecom", wecom.webhook)
    # The robot takes the message and answers 2 s later (its timeout is 10 s).
    wecom.faults.slow_answer_s = 2.0
    try:
        first, reports = _first_drain(
            lambda: drain_outbox(svc.engine, {"pr-wecom": robot}, outbox, SystemClock(), ops=ops)
        )
        _until(lambda: wecom.calls >= 1)
        time.sleep(LEASE_S + 0.4)
        other_robot = WeComSink.connect("pr-wecom", wecom.webhook)
        try:
            other = drain_outbox(
                svc.engine, {"pr-wecom": other_robot}, outbox, SystemClock(), ops=ops
            )
        finally:
            other_robot.close()
        first.join(timeout=10)
        assert not first.is_alive()
    finally:
        robot.close()
    (mine,) = reports
    assert other.unconfirmed == 0 and other.sent == 0
    assert mine.sent == 1 and mine.superseded == 0
    assert wecom.calls == 1 and len(wecom.received) == 1
    robot_row = next(d for d in _rows(svc) if d.sink == "pr-wecom")
    assert robot_row.status == DeliveryStatus.SENT.value and robot_row.last_error is None
    assert not _ops_alerts(svc)  # nobody is sent to look for a message that arrived
