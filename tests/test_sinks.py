"""Notices to several sinks: routed by the config, each delivery on its own, each
delivered once through a crash between the send and its commit; sinks that cannot be
asked (robots) are never sent twice, rate limits are waited out, capabilities adapt."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import yaml
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox, ops_target
from monitor.alerting.sinks import ConsoleSink
from monitor.alerting.slack.sink import SlackSink
from monitor.app import make_sinks
from monitor.clock import FakeClock
from monitor.config import Settings, load_settings
from monitor.domain import Outgoing, Sink, SinkRef
from monitor.errors import ConfigError, SinkError
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import DeliveryRow, SinkMessageRow
from tests.conftest import SLACK_TOKEN, review, write_config


class Crash(BaseException):
    """The process dying: nothing after the send runs (not a SinkError, not caught)."""


class DiesAfterSend:
    """Wraps a sink: its first send reaches the service, then the process 'dies'."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.died = False
        for attr in ("kind", "threads", "edits", "buttons", "files", "mentions", "lookup"):
            setattr(self, attr, getattr(inner, attr))
        self.rate_per_minute = inner.rate_per_minute

    def send(self, out: Outgoing) -> SinkRef:
        ref = self.inner.send(out)
        if not self.died:
            self.died = True
            raise Crash
        return ref

    def find(self, out: Outgoing) -> SinkRef | None:
        return self.inner.find(out)


class Robot:
    """A group robot as the protocol sees it: no threads, edits, buttons or lookup."""

    kind: ClassVar[str] = "robot"
    threads: ClassVar[bool] = False
    edits: ClassVar[bool] = False
    buttons: ClassVar[bool] = False
    files: ClassVar[bool] = False
    mentions: ClassVar[bool] = True
    lookup: ClassVar[bool] = False
    max_bytes: ClassVar[int] = 4096
    rate_per_minute: ClassVar[int] = 20
    rate_source: ClassVar[str] = "test"

    def __init__(self, name: str = "robot") -> None:
        self.name = name
        self.got: list[Outgoing] = []
        self.refuse: list[SinkError] = []

    def send(self, out: Outgoing) -> SinkRef:
        if self.refuse:
            raise self.refuse.pop(0)
        self.got.append(out)
        return SinkRef(out.channel, f"r{len(self.got)}")

    def find(self, out: Outgoing) -> SinkRef | None:
        raise AssertionError("a sink without lookup is never asked")


def two_sink_settings(tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack) -> Settings:
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sinks"] = [
        {"name": "slack", "kind": "slack"},
        {
            "name": "pr-console",
            "kind": "console",
            "grades": ["P1", "P2"],
            "options": {"jsonl": str(tmp_path / "pr.jsonl")},
        },
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_settings(path, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})


def rows(svc: Services) -> list[DeliveryRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(DeliveryRow).order_by(col(DeliveryRow.id))).scalars())


def test_a_p1_to_two_sinks_is_delivered_once_on_each_through_a_crash_after_each_send(
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    svc.settings = two_sink_settings(tmp_path, appstore, slack)
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    assert sorted(d.sink for d in rows(svc)) == ["pr-console", "slack"]
    sinks = make_sinks(svc.settings, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
    assert isinstance(sinks["slack"], SlackSink) and isinstance(sinks["pr-console"], ConsoleSink)
    outbox = svc.settings.app.outbox
    for name in ("slack", "pr-console"):  # each sink in turn takes the message, then we die
        dying: dict[str, Sink] = {**sinks, name: cast(Sink, DiesAfterSend(sinks[name]))}
        with pytest.raises(Crash):
            drain_outbox(svc.engine, dying, outbox, clock, ops=ops_target(svc.settings))
        clock.advance(timedelta(seconds=outbox.lease_seconds + 1))
    report = drain_outbox(svc.engine, sinks, outbox, clock, ops=ops_target(svc.settings))
    # Slack's copy was found by the second run, the console's by this one: none sent again.
    assert report.found_already_sent == 1 and report.sent == 0 and report.failed == 0
    assert [d.status for d in rows(svc)] == ["sent", "sent"]
    assert len([m for m in slack.posts_in("#pr-crisis") if m.thread_ts is None]) == 1
    console = (tmp_path / "pr.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(console) == 1 and "P1 红色预警" in json.loads(console[0])["text"]
    with Session(svc.engine) as s:
        posted = sorted(m.sink for m in s.execute(select(SinkMessageRow)).scalars())
    assert posted == ["pr-console", "slack"]  # each sink's thread for the case's events


def test_grades_route_notices_and_a_p4_digest_skips_a_p1_p2_sink(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, tmp_path: Path
) -> None:
    svc.settings = two_sink_settings(tmp_path, appstore, slack)
    appstore.reviews = [review(1, rating=2, content="广告太多了")]
    run_source(svc, svc.settings.app.sources[0])
    from monitor.alerting.digest import enqueue_digest

    assert enqueue_digest(svc) == 1
    assert [d.sink for d in rows(svc)] == ["slack"]


def test_a_robot_gets_a_thread_event_as_a_new_message_and_is_never_sent_twice(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sinks"] = [{"name": "robot", "kind": "wecom", "url_env": "ROBOT_URL"}]
    data["board_url"] = "https://koubei.example.com"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    svc.settings = load_settings(path, env={})
    robot = Robot()
    outbox = svc.settings.app.outbox
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    with pytest.raises(Crash):
        drain_outbox(svc.engine, {"robot": cast(Sink, DiesAfterSend(robot))}, outbox, clock)
    assert len(robot.got) == 1
    # No buttons on a robot: the notice links the case's page on the board instead.
    links = {x.label: x.url for x in robot.got[0].notice.links}
    assert links["工单页面"] == "https://koubei.example.com/cases/1"
    assert robot.got[0].notice.actions == ("ack", "assign", "resolve", "false_positive", "escalate")
    clock.advance(timedelta(seconds=outbox.lease_seconds + 1))
    report = drain_outbox(svc.engine, {"robot": robot}, outbox, clock)
    assert report.unconfirmed == 1 and len(robot.got) == 1  # not sent again
    (row,) = rows(svc)
    assert row.status == "sent" and "sent-unconfirmed" in (row.last_error or "")
    # An escalation (a thread event elsewhere) reaches the robot as a message of its own.
    from monitor.alerting.sla import sweep

    clock.advance(timedelta(minutes=16))
    sweep(svc.engine, svc.settings, clock)
    drain_outbox(svc.engine, {"robot": robot}, outbox, clock)
    events = [o for o in robot.got if o.adapted_from == "reply"]
    assert events and all(o.method == "post" and o.thread is None for o in events)
    assert any("升级 L1" in o.notice.headline for o in events)
    edits = [o for o in robot.got if o.adapted_from == "update"]
    assert edits and all(o.method == "post" and o.notice.case_id == 1 for o in edits)


def test_a_rate_limit_answer_is_waited_out_not_counted_and_never_given_up(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    robot = Robot("slack")  # the default sink's name: every row is its
    robot.refuse = [SinkError("429", definite=True, retry_after=30) for _ in range(12)]
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    outbox = svc.settings.app.outbox
    for _ in range(12):
        report = drain_outbox(svc.engine, {"slack": robot}, outbox, clock)
        assert report.failed == 0 and report.rate_limited == 1 and not robot.got
        (row,) = rows(svc)
        assert row.status == "pending" and row.attempts == 0
        assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
        clock.advance(timedelta(seconds=30))
    report = drain_outbox(svc.engine, {"slack": robot}, outbox, clock)
    assert report.sent == 1 and len(robot.got) == 1


def test_a_configured_sink_without_its_variable_is_a_clear_config_error(
    tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sinks"] = [
        {"name": "slack", "kind": "slack"},
        {"name": "pr-wecom", "kind": "wecom", "url_env": "KOUBEI_PR_WECOM_URL"},
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = load_settings(path, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
    with pytest.raises(ConfigError) as err:
        make_sinks(settings, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
    assert "pr-wecom" in str(err.value) and "KOUBEI_PR_WECOM_URL" in str(err.value)
    data["sinks"] = [{"name": "slack", "kind": "slack"}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        make_sinks(load_settings(path, env={}), env={})
    assert "SLACK_BOT_TOKEN" in str(err.value)
    data["sinks"] = [{"name": "x", "kind": "telegram"}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert "sinks[0].kind" in str(err.value)


def test_without_sinks_the_default_is_one_slack_sink_or_the_console(
    tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    with_token = make_sinks(load_settings(path, env={}), env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
    assert list(with_token) == ["slack"] and isinstance(with_token["slack"], SlackSink)
    without = make_sinks(load_settings(path, env={}), env={})
    assert list(without) == ["slack"] and isinstance(without["slack"], ConsoleSink)


def test_a_slack_rate_limit_outlasting_slack_sdk_retries_is_waited_out(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    from tests.conftest import SLACK_CHANNELS

    with FakeSlack(token=SLACK_TOKEN, channels=dict(SLACK_CHANNELS), burst=1) as slack:
        slack.rate_per_s = 0.0001  # one message, then 429 with Retry-After for a while
        slack.faults.retry_after_s = 7
        config = svc.settings.app.slack.model_copy(
            update={"base_url": slack.url + "/api/", "rate_limit_retries": 0}
        )
        sink = SlackSink.from_config(SLACK_TOKEN, config, svc.settings.policy)
        appstore.reviews = [
            review(2, content="催收威胁要上门，我要打12378"),
            review(1, content="暴力催收，要上门，我要报警"),
        ]
        run_source(svc, svc.settings.app.sources[0])
        outbox = svc.settings.app.outbox
        report = drain_outbox(svc.engine, {"slack": sink}, outbox, clock)
        assert report.sent == 1 and report.rate_limited == 1 and report.failed == 0
        waiting = [d for d in rows(svc) if d.status == "pending"]
        assert len(waiting) == 1 and waiting[0].attempts == 0
        assert waiting[0].next_attempt_at == clock.now() + timedelta(seconds=7)
        slack.rate_per_s = 1000.0
        clock.advance(timedelta(seconds=7))
        report = drain_outbox(svc.engine, {"slack": sink}, outbox, clock)
        assert report.sent == 1 and report.failed == 0
        assert len([m for m in slack.posts_in("#pr-crisis") if m.thread_ts is None]) == 2


def test_a_sink_that_never_carried_the_case_gets_its_events_as_messages_not_a_wait(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    """A Slack sink renamed (or added) after a case was announced has no thread for it:
    the case's next event reaches it as a message of its own instead of waiting forever
    for a case message that will never be queued there, and the case's card, posted there
    once without paging anyone, carries the events after it."""
    from monitor.alerting.sla import sweep

    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    outbox = svc.settings.app.outbox
    env = {"SLACK_BOT_TOKEN": SLACK_TOKEN}
    drain_outbox(svc.engine, make_sinks(svc.settings, env), outbox, clock)
    (root,) = [m for m in slack.messages if "工单 #1" in m.text]
    path = write_config(
        tmp_path,
        appstore_url=appstore.url,
        slack_url=slack.url + "/api/",
        sinks=[{"name": "slack-main", "kind": "slack"}],
    )
    svc.settings = load_settings(path, env=env)
    clock.advance(timedelta(minutes=16))  # unacknowledged: escalated to L1
    sweep(svc.engine, svc.settings, clock)
    for _ in range(3):
        drain_outbox(svc.engine, make_sinks(svc.settings, env), outbox, clock)
        clock.advance(timedelta(seconds=20))
    renamed = [r for r in rows(svc) if r.sink == "slack-main"]
    assert renamed and all(r.status == "sent" for r in renamed)
    after = slack.messages[slack.messages.index(root) + 1 :]
    assert root.ts not in {m.thread_ts for m in after}  # the old sink's thread is not used
    # The first event, with no thread there yet, is a message of its own naming the case.
    assert "升级 L1" in after[0].text and "工单 #1" in after[0].text
    assert after[0].thread_ts is None
    # The case's card follows once, paging nobody again, and carries the case from then on.
    cards = [m for m in after if "新投诉" in m.text]
    assert len(cards) == 1 and cards[0].thread_ts is None
    assert "<!here>" not in cards[0].text and "<@" not in cards[0].text
    later = after[after.index(cards[0]) + 1 :]
    assert later and all(m.thread_ts == cards[0].ts for m in later)
