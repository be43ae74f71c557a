"""/metrics on `koubei serve` and `koubei run`: the database's state and process counters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.app import make_sinks
from monitor.clock import FakeClock
from monitor.config import load_settings
from monitor.counters import TimedGrader
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.fakes.wecom import FakeWeCom
from monitor.metrics import database_registry, exposition, serve_metrics
from monitor.pipeline import Services, run_source
from monitor.scheduler import Job, JobRunner, _outbox_job
from monitor.store.leases import Leases
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions
from tests.conftest import SLACK_AND_WECOM, SLACK_TOKEN, reviews, write_config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_serve_metrics_show_runs_posts_grades_cases_outbox_and_leases(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = reviews(3, content="催收威胁要上门") + reviews(
        2, start=10, rating=5, content="很好用"
    )
    svc.grader = TimedGrader(svc.grader)
    run_source(svc, svc.settings.source("appstore-cn"))
    ran_at = svc.clock.now().timestamp()
    Leases(svc.engine, "host-a:1:abc").acquire("source:appstore-cn", svc.clock.now())
    sink = SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    drain_outbox(svc.engine, sink, svc.settings.app.outbox, svc.clock)
    interactions = Interactions(svc.engine, svc.settings, svc.clock, None)
    with BackgroundServer(create_app(interactions, "secret")) as url:
        response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    src = (("source", "appstore-cn"),)
    assert got[("koubei_database_up", ())] == 1
    assert got[("koubei_posts_collected_total", src)] == 5
    assert got[("koubei_posts_stored_total", (("change", "new"), ("source", "appstore-cn")))] == 5
    assert got[("koubei_source_runs_total", (("source", "appstore-cn"), ("status", "ok")))] == 1
    assert got[("koubei_source_blind", src)] == 0
    assert got[("koubei_source_last_success_timestamp_seconds", src)] == ran_at
    assert got[("koubei_verdicts_total", (("severity", "P1"),))] == 3
    assert got[("koubei_cases_opened_total", (("severity", "P1"),))] == 3
    assert got[("koubei_cases_acknowledged_total", (("severity", "P1"),))] == 0
    slack_sent = (("sink", "slack"), ("state", "sent"))
    assert got[("koubei_outbox_deliveries", slack_sent)] == len(slack.messages) > 0
    assert got[("koubei_outbox_deliveries", (("sink", "slack"), ("state", "pending")))] == 0
    assert got[("koubei_outbox_oldest_pending_seconds", ())] == 0
    holder = (("holder", "host-a:1:abc"), ("job", "source:appstore-cn"))
    assert got[("koubei_job_lease_holder", holder)] == 1
    assert got[("koubei_graded_posts_total", (("grader", svc.grader.name),))] >= 5
    assert got[("koubei_grading_seconds_count", (("grader", svc.grader.name),))] >= 1


def test_an_undelivered_alert_shows_as_a_stuck_outbox(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    appstore.reviews = reviews(1, content="催收威胁要上门")
    run_source(svc, svc.settings.source("appstore-cn"))
    clock.advance(timedelta(minutes=10))
    text = serve_and_get(svc, JobRunner(svc), "/metrics")[1]
    got = samples(text)
    assert got[("koubei_outbox_deliveries", (("sink", "slack"), ("state", "pending")))] >= 1
    assert got[("koubei_outbox_oldest_pending_seconds", ())] == 600


def serve_and_get(svc: Services, runner: JobRunner, path: str) -> tuple[int, str]:
    def healthy() -> tuple[bool, dict[str, object]]:
        ok = runner.last_beat is not None
        return ok, {"ok": ok, "instance": runner.instance}

    server = serve_metrics("127.0.0.1", 0, database_registry(svc.engine, svc.clock), healthy)
    try:
        response = httpx.get(f"http://127.0.0.1:{server.server_address[1]}{path}")
        return response.status_code, response.text
    finally:
        server.shutdown()
        server.server_close()


def test_koubei_run_serves_its_heartbeat_and_job_counters(svc: Services) -> None:
    runner = JobRunner(svc, Leases(svc.engine, "me", ttl=45))
    assert serve_and_get(svc, runner, "/healthz")[0] == 503  # not ticked yet
    runner.look(Job("surge", lambda: None, every=timedelta(seconds=30)))
    runner.renew()
    status, body = serve_and_get(svc, runner, "/healthz")
    assert status == 200 and '"instance": "me"' in body
    got = samples(serve_and_get(svc, runner, "/metrics")[1])
    assert got[("koubei_job_runs_total", (("job", "surge"), ("outcome", "ok")))] >= 1
    assert got[("koubei_job_lease_holder", (("holder", "me"), ("job", "surge")))] == 1
    assert got[("koubei_scheduler_heartbeat_timestamp_seconds", ())] > 0


def test_outbox_metrics_say_which_sink(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    """Sent, failed and pending deliveries, their latency and the rate-limit waits, by sink."""
    with FakeWeCom(clock=clock.timestamp) as wecom:
        path = write_config(
            tmp_path,
            appstore_url=appstore.url,
            slack_url=slack.url + "/api/",
            sinks=SLACK_AND_WECOM,
        )
        env = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "PR_WECOM_URL": wecom.webhook}
        svc.settings = load_settings(path, env=env)
        sinks = make_sinks(svc.settings, env)
        before = samples(exposition(database_registry(svc.engine, clock))[0].decode())
        waited = ("koubei_slack_rate_limit_wait_seconds_total", (("sink", "pr-wecom"),))
        latency = ("koubei_delivery_latency_seconds_count", (("sink", "pr-wecom"),))
        appstore.reviews = reviews(2, content="催收威胁要上门")
        run_source(svc, svc.settings.source("appstore-cn"))
        wecom.faults.rate_limited = 1  # the first P1: "api freq out of limit", wait a minute
        _outbox_job(svc, sinks)
        wecom.refuse(93000)  # the second: the webhook's key was revoked, refused for good
        clock.advance(timedelta(seconds=61))
        _outbox_job(svc, sinks)
        got = samples(exposition(database_registry(svc.engine, clock))[0].decode())
        for sink in sinks.values():
            getattr(sink, "close", lambda: None)()

    def state(sink: str, name: str) -> float:
        return got[("koubei_outbox_deliveries", (("sink", sink), ("state", name)))]

    # Slack: the two cases, and #koubei-ops told of the robot's refusal.
    assert state("slack", "sent") == 3 and state("slack", "failed") == 0
    assert state("pr-wecom", "sent") == 1 and state("pr-wecom", "failed") == 1
    assert state("pr-wecom", "pending") == 0
    assert (
        got[("koubei_slack_rate_limited_total", (("sink", "pr-wecom"),))]
        - before.get(("koubei_slack_rate_limited_total", (("sink", "pr-wecom"),)), 0)
        == 1
    )
    assert got[waited] - before.get(waited, 0) == 60  # WeCom's published window
    assert got[latency] - before.get(latency, 0) == 1
    assert got[("koubei_delivery_latency_seconds_count", (("sink", "slack"),))] >= 2
