"""The 24/7 response process with a fake clock and a local fake Slack (real HTTP)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from monitor import case_actions
from monitor.alerting.outbox import drain_outbox
from monitor.alerting.routing import oncall_at, quiet_until
from monitor.alerting.sinks import SlackSink
from monitor.alerting.sla import sweep
from monitor.case_actions import Actor
from monitor.clock import FakeClock
from monitor.collectors.http import HttpClient
from monitor.domain import AlertKind, Severity
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack, Message
from monitor.notices import message_notice
from monitor.pipeline import Services, run_source
from monitor.store.engine import make_engine
from monitor.store.notices import enqueue
from monitor.store.tables import CaseEventRow, CaseRow, DeliveryRow, SinkMessageRow
from monitor.watchdog import beat, check_deadman, health
from tests.conftest import SLACK_TOKEN, review, reviews

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sink_for(svc: Services) -> SlackSink:
    return SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)


def cycle(svc: Services) -> None:
    """One scheduler tick: the SLA sweeper, then the outbox."""
    sweep(svc.engine, svc.settings, svc.clock)
    drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock, limit=1000)


def open_p1(svc: Services, appstore: FakeAppStore, slack: FakeSlack) -> Message:
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    cycle(svc)
    roots = [m for m in slack.posts_in("#pr-crisis") if m.thread_ts is None]
    assert len(roots) == 1, "a P1 reaches its channel in the first delivery cycle"
    return roots[0]


def escalations(slack: FakeSlack, root: Message) -> list[Message]:
    return [m for m in slack.thread_of(root) if m.text.startswith("🚨")]


def all_cases(svc: Services) -> list[CaseRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(CaseRow)).scalars().all())


def the_case(svc: Services) -> CaseRow:
    with Session(svc.engine) as s:
        case: CaseRow = s.execute(select(CaseRow)).scalars().one()
        return case


def test_unacknowledged_p1_escalates_at_15_and_30_minutes(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    root = open_p1(svc, appstore, slack)
    assert "<!here>" in json.dumps(root.attachments, ensure_ascii=False)
    clock.advance(timedelta(minutes=14, seconds=59))
    cycle(svc)
    assert escalations(slack, root) == []
    assert any("⏰" in m.text for m in slack.thread_of(root))  # reminder at 80% of 15 min
    clock.advance(timedelta(seconds=1))
    cycle(svc)
    first = escalations(slack, root)
    assert len(first) == 1 and first[0].broadcast
    assert "<!subteam^S00CSLEAD>" in first[0].text and "<!subteam^S00PRHEAD>" in first[0].text
    assert "已升级 L1" in json.dumps(root.attachments, ensure_ascii=False)  # message edited
    clock.advance(timedelta(minutes=15))
    cycle(svc)
    both = escalations(slack, root)
    assert len(both) == 2 and "<!subteam^S00EXECDUTY>" in both[1].text
    cycle(svc)
    assert len(escalations(slack, root)) == 2  # a second sweep changes nothing
    assert the_case(svc).escalation_level == 2


def test_acknowledged_at_14_minutes_it_does_not_escalate(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    root = open_p1(svc, appstore, slack)
    clock.advance(timedelta(minutes=14))
    with Session(svc.engine) as s, s.begin():
        case = s.execute(select(CaseRow)).scalar_one()
        case_actions.acknowledge(s, svc.settings, case, Actor("U0ALICE001"), clock.now())
    for _ in range(4):
        clock.advance(timedelta(minutes=10))
        cycle(svc)
    assert escalations(slack, root) == []
    thread = [m.text for m in slack.thread_of(root)]
    assert any("<@U0ALICE001> 已确认（开单后 14 分钟）" in t for t in thread)
    edited = json.dumps(root.attachments, ensure_ascii=False)
    assert root.edits >= 1 and "处理中" in edited and "koubei_ack" not in edited
    with Session(svc.engine) as s:
        events = s.execute(select(col(CaseEventRow.kind), col(CaseEventRow.actor))).all()
    assert ("acknowledged", "U0ALICE001") in [tuple(e) for e in events]


def test_after_a_restart_at_minute_10_it_still_escalates_at_15(
    svc: Services, db_url: str, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    root = open_p1(svc, appstore, slack)
    clock.advance(timedelta(minutes=10))
    cycle(svc)
    svc.engine.dispose()
    restarted = Services(  # a new process: nothing in memory, only the database
        settings=svc.settings,
        engine=make_engine(db_url),
        http=HttpClient(svc.settings.app.http),
        grader=svc.grader,
        clock=clock,
    )
    clock.advance(timedelta(minutes=4, seconds=59))
    cycle(restarted)
    assert escalations(slack, root) == []
    clock.advance(timedelta(seconds=1))
    cycle(restarted)
    assert len(escalations(slack, root)) == 1
    restarted.engine.dispose()


def test_reminder_and_breach_of_the_response_deadline(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    root = open_p1(svc, appstore, slack)
    with Session(svc.engine) as s, s.begin():
        case = s.execute(select(CaseRow)).scalar_one()
        case_actions.acknowledge(s, svc.settings, case, Actor("U0ALICE001"), clock.now())
    clock.advance(timedelta(hours=3, minutes=15))  # 80% of the 4-hour 黄金4小时 window
    cycle(svc)
    assert any("首次回应时限" in m.text and "⏰" in m.text for m in slack.thread_of(root))
    clock.advance(timedelta(minutes=50))
    cycle(svc)
    assert any("⛔ 已超过首次回应时限" in m.text for m in slack.thread_of(root))
    cycle(svc)
    assert sum("⛔" in m.text for m in slack.thread_of(root)) == 1


def test_quiet_hours_hold_p3_but_never_p1(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    clock.advance(timedelta(hours=16))  # 02:00 in Shanghai
    appstore.reviews = [
        review(2, content="一直闪退，登录不了"),
        review(1, content="催收威胁要上门"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    cycle(svc)
    assert len(slack.posts_in("#pr-crisis")) == 1 and slack.posts_in("#complaints") == []
    clock.advance(timedelta(hours=6))  # 08:00
    cycle(svc)
    assert len(slack.posts_in("#complaints")) == 1  # no reminder: its clocks start now
    case = next(c for c in all_cases(svc) if c.severity == "P3")
    assert case.ack_due == datetime(2026, 11, 29, 12, 0, tzinfo=SHANGHAI)  # 08:00 + 4 h


def test_quiet_hours_window_and_oncall_rotation(svc: Services) -> None:
    policy = svc.settings.policy
    night = datetime(2026, 11, 28, 23, 30, tzinfo=SHANGHAI)
    assert quiet_until(policy.quiet_hours, Severity.P3, night, SHANGHAI) == datetime(
        2026, 11, 29, 8, 0, tzinfo=SHANGHAI
    )
    assert quiet_until(policy.quiet_hours, Severity.P2, night, SHANGHAI) is None
    assert quiet_until(policy.quiet_hours, Severity.P3, night.replace(hour=12), SHANGHAI) is None
    assert policy.oncall is not None
    week1 = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
    assert oncall_at(policy.oncall, week1, SHANGHAI).name == "张伟"
    assert oncall_at(policy.oncall, week1 + timedelta(days=7, minutes=-1), SHANGHAI).name == "张伟"
    assert oncall_at(policy.oncall, week1 + timedelta(days=7), SHANGHAI).name == "李娜"
    assert oncall_at(policy.oncall, week1 + timedelta(days=21), SHANGHAI).name == "张伟"


def test_a_burst_of_p3_cases_is_grouped_and_the_group_edited(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    appstore.reviews = reviews(6, content="一直闪退，登录不了")
    run_source(svc, svc.settings.app.sources[0])
    cycle(svc)
    assert len(slack.posts_in("#complaints")) == 2  # the first two at once
    clock.advance(timedelta(seconds=61))
    cycle(svc)
    posts = [m for m in slack.posts_in("#complaints") if m.thread_ts is None]
    assert len(posts) == 3
    group = posts[2]
    assert "4 个投诉集中出现" in json.dumps(group.attachments, ensure_ascii=False)
    with Session(svc.engine) as s, s.begin():
        grouped = (
            s.execute(
                select(CaseRow)
                .join(SinkMessageRow, col(SinkMessageRow.case_id) == col(CaseRow.id))
                .where(col(SinkMessageRow.ref) == group.ts)
            )
            .scalars()
            .all()
        )
        assert len(grouped) == 4
        case_actions.acknowledge(s, svc.settings, grouped[0], Actor("U0BOB00001"), clock.now())
    cycle(svc)
    assert group.edits == 1 and "处理中" in json.dumps(group.attachments, ensure_ascii=False)
    assert any("已确认" in m.text for m in slack.thread_of(group))


def test_heartbeat_health_and_deadman_alert(
    svc: Services, slack: FakeSlack, clock: FakeClock
) -> None:
    stale = timedelta(seconds=svc.settings.policy.watchdog.stale_after_seconds)
    assert not health(svc.engine, clock.now(), stale).ok  # never ticked yet
    beat(svc.engine, clock.now())
    assert health(svc.engine, clock.now(), stale).ok
    assert not check_deadman(svc.engine, svc.settings, clock.now())
    clock.advance(timedelta(minutes=45))
    assert not health(svc.engine, clock.now(), stale).ok
    assert check_deadman(svc.engine, svc.settings, clock.now())
    assert not check_deadman(svc.engine, svc.settings, clock.now())  # once per gap
    drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, clock)
    ops = slack.posts_in("#koubei-ops")
    assert len(ops) == 1 and "停止了约 45 分钟" in ops[0].text
    assert (ops[0].metadata or {})["event_payload"]["severity"] == "P1"  # as before notices


def test_500_alerts_over_3_channels_paced_and_all_delivered(
    svc: Services, slack: FakeSlack, clock: FakeClock
) -> None:
    slack.clock = clock.timestamp  # the fake Slack's rate limit runs on the same clock
    slack.burst = 1
    slack.rate_per_s = 1.0
    keys = ["crisis", "complaints", "ops"]
    start = clock.now()
    with Session(svc.engine) as s, s.begin():
        for i in range(500):  # arriving over 60 seconds
            at = start + timedelta(seconds=60 * i / 500)
            notice = message_notice(
                kind=AlertKind.SURGE,
                dedup_key=f"load:{i}",
                route=keys[i % 3],
                text="load",
                colour="#000000",
                grade=Severity.P2,
            )
            enqueue(s, svc.settings, notice, at)
    clock.advance(timedelta(seconds=60))
    begin = clock.now()
    report = drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, clock, limit=10_000)
    elapsed = (clock.now() - begin).total_seconds()
    assert report.sent == 500 and report.failed == 0 and report.pending == 0
    assert slack.rate_limited == 0  # never a 429: we paced ourselves
    per_channel: dict[str, list[float]] = {}
    for m in slack.messages:
        per_channel.setdefault(m.channel, []).append(m.posted_at)
    for times in per_channel.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.999  # at most one message per second per channel
    drain_time = max(len(t) for t in per_channel.values()) - 1  # seconds, the busiest channel
    assert elapsed <= drain_time + 1
    with Session(svc.engine) as s:
        assert s.execute(select(col(DeliveryRow.status)).distinct()).scalars().all() == ["sent"]


def test_regraded_case_thread_replies_wait_for_its_message(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    """Order per case: with Slack down, the reply queues behind the case's message."""
    appstore.reviews = [review(1, content="砍头息太高了")]
    run_source(svc, svc.settings.app.sources[0])
    slack.faults.outage = True
    cycle(svc)
    with Session(svc.engine) as s, s.begin():
        case = s.execute(select(CaseRow)).scalar_one()
        case_actions.assign(s, svc.settings, case, Actor("U0CAROL001"), clock.now())
    cycle(svc)
    slack.faults.outage = False
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        cycle(svc)
    root = next(m for m in slack.messages if m.thread_ts is None)
    assert slack.messages.index(root) == 0
    assert any("<@U0CAROL001> 负责此工单" in m.text for m in slack.thread_of(root))
