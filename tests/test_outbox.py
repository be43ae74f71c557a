"""Alert delivery through the outbox to a local fake Slack: every alert once, never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import ConsoleSink, SlackSink
from monitor.clock import FakeClock
from monitor.config import load_settings
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import DeliveryRow
from tests.conftest import SLACK_TOKEN, review, reviews, write_config


def sink_for(svc: Services) -> SlackSink:
    return SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)


def alert_ids(slack: FakeSlack) -> list[int]:
    return [int((m.metadata or {})["event_payload"]["alert_id"]) for m in slack.messages]


def statuses(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return list(s.execute(select(col(DeliveryRow.status))).scalars().all())


def test_alerts_reach_their_grade_channels_in_the_first_cycle(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [
        review(3, content="催收威胁我，已经报警"),
        review(2, content="砍头息，服务费太高"),
        review(1, content="一直闪退，登录不了"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    report = drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock)
    assert report.sent == 3 and report.pending == 0
    by_channel = {m.channel: m for m in slack.messages}
    assert set(by_channel) == {"C0CRISIS01", "C0COMPLA01"}
    crisis = slack.posts_in("#pr-crisis")
    assert len(crisis) == 1
    attachment = crisis[0].attachments[0]
    assert attachment["color"] == "#D32F2F"
    text = json.dumps(attachment["blocks"], ensure_ascii=False)
    assert "P1 红色预警" in text and "<!here>" in text and "报警" in text
    actions = next(b for b in attachment["blocks"] if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == [
        "koubei_ack",
        "koubei_assign",
        "koubei_resolve",
        "koubei_false_positive",
        "koubei_escalate",
    ]
    assert "<@U0" in text  # the on-call person is mentioned
    assert statuses(svc.engine) == ["sent"] * 3


def test_scraped_text_is_masked_and_escaped_in_slack(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [
        review(
            1,
            title="<https://evil.example|官方客服>",
            content="<!channel> 催收威胁我，电话13812345678 & 身份证11010519491231002X",
        )
    ]
    run_source(svc, svc.settings.app.sources[0])
    drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock)
    blocks = json.dumps(slack.messages[0].attachments, ensure_ascii=False)
    assert "13812345678" not in blocks and "138****5678" in blocks
    assert "11010519491231002X" not in blocks and "110***********002X" in blocks
    assert "<!channel>" not in blocks and "&lt;!channel&gt;" in blocks
    assert "<https://evil.example|" not in blocks and "&amp;" in blocks


def test_rate_limited_posts_are_retried_after_retry_after_and_sent_once(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    slack.burst = 1  # one message a second per channel, no burst
    appstore.reviews = reviews(4, content="催收威胁要上门")  # four P1s, one channel
    run_source(svc, svc.settings.app.sources[0])
    started = time.monotonic()
    report = drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock)
    assert report.sent == 4 and report.failed == 0
    assert slack.rate_limited >= 1  # Slack did say 429, and we waited instead of failing
    assert time.monotonic() - started >= 2.5
    assert sorted(alert_ids(slack)) == sorted(set(alert_ids(slack)))
    assert len(slack.messages) == 4


def test_an_outage_keeps_alerts_pending_and_recovery_delivers_each_once(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    appstore.reviews = reviews(5, content="重复扣款不退")
    run_source(svc, svc.settings.app.sources[0])
    sink, outbox = sink_for(svc), svc.settings.app.outbox
    slack.faults.outage = True
    for _ in range(6):  # half an hour of Slack being down
        report = drain_outbox(svc.engine, sink, outbox, clock)
        assert report.sent == 0 and report.pending == 5
        clock.advance(timedelta(minutes=5))
    with Session(svc.engine) as s:
        rows = s.execute(select(DeliveryRow)).scalars().all()
        assert all(r.attempts >= 1 and "503" in (r.last_error or "") for r in rows)
    slack.faults.outage = False
    clock.advance(timedelta(minutes=10))
    report = drain_outbox(svc.engine, sink, outbox, clock)
    assert report.pending == 0 and report.sent + report.found_already_sent == 5
    assert len(slack.messages) == 5 and len(set(alert_ids(slack))) == 5


def test_a_lost_answer_is_checked_in_the_channel_before_posting_again(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    appstore.reviews = reviews(2, content="砍头息")
    run_source(svc, svc.settings.app.sources[0])
    slack.faults.drop_after_post = 1  # Slack stores the first post, the answer never arrives
    sink, outbox = sink_for(svc), svc.settings.app.outbox
    first = drain_outbox(svc.engine, sink, outbox, clock)
    assert first.failed == 1 and first.sent == 1 and len(slack.messages) == 2
    clock.advance(timedelta(minutes=1))
    second = drain_outbox(svc.engine, sink, outbox, clock)
    assert second.found_already_sent == 1 and second.sent == 0
    assert len(slack.messages) == 2 and statuses(svc.engine) == ["sent", "sent"]


def test_slack_api_errors_end_the_alert_as_failed_with_the_reason(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    del slack.channels["complaints"]  # the bot was never invited
    appstore.reviews = [review(1, content="砍头息")]
    run_source(svc, svc.settings.app.sources[0])
    report = drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock)
    # Slack would refuse it the same way every time: failed, not retried forever.
    assert report.failed == 1 and report.given_up == 1 and report.pending == 0
    with Session(svc.engine) as s:
        row = s.execute(select(DeliveryRow)).scalar_one()
        assert row.status == "failed"
        assert "channel_not_found" in (row.last_error or "")
        assert "invite the bot" in (row.last_error or "")
        assert row.maybe_sent is False  # Slack said no: nothing to look for next time


def test_without_a_token_alerts_print_and_go_to_jsonl(
    svc: Services, appstore: FakeAppStore, tmp_path: Path
) -> None:
    appstore.reviews = [review(1, content="暴力催收，要上门")]
    run_source(svc, svc.settings.app.sources[0])
    jsonl = tmp_path / "console" / "alerts.jsonl"
    report = drain_outbox(svc.engine, ConsoleSink(jsonl), svc.settings.app.outbox, svc.clock)
    assert report.sent == 1
    lines = [json.loads(x) for x in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1 and lines[0]["channel"] == "#pr-crisis"
    assert "P1 红色预警" in lines[0]["text"]


def test_p4_posts_go_out_in_one_digest(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [
        review(3, rating=2, content="广告太多了"),
        review(2, rating=2, content="额度太低"),
        review(1, rating=1, content="砍头息"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    assert enqueue_digest(svc) == 2
    assert enqueue_digest(svc) == 0  # each post in one digest only
    drain_outbox(svc.engine, sink_for(svc), svc.settings.app.outbox, svc.clock)
    digest = slack.posts_in("#complaints-digest")
    assert len(digest) == 1 and "2 条" in digest[0].text


def test_killed_between_post_and_commit_sends_no_duplicate(
    db_url: str, tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = reviews(3, content="催收威胁我")
    config = write_config(
        tmp_path,
        appstore_url=appstore.url,
        slack_url=slack.url + "/api/",
        outbox={"lease_seconds": 1},
    )
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "KOUBEI_CONFIG": str(config),
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
    }
    koubei = [sys.executable, "-m", "monitor"]
    subprocess.run([*koubei, "collect", "appstore-cn"], env=env, check=True, capture_output=True)
    slack.faults.hang_after_post = True  # Slack takes the first post, then the process dies
    proc = subprocess.Popen(
        [*koubei, "deliver"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while not slack.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(slack.messages) == 1
    slack.faults.hang_after_post = False
    time.sleep(1.1)  # the dead process's lease runs out
    done = subprocess.run([*koubei, "deliver"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already there 1" in done.stdout
    assert len(slack.messages) == 3 and len(set(alert_ids(slack))) == 3
    assert SLACK_TOKEN not in done.stdout + done.stderr


def test_settings_without_token_choose_the_console(tmp_path: Path) -> None:
    from monitor.app import make_sink

    settings = load_settings(write_config(tmp_path), env={})
    assert isinstance(make_sink(settings), ConsoleSink)
