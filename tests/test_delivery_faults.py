"""Delivery under faults, against the fake Slack over HTTP: lost answers and permanent refusals.

Every alert reaches Slack once; one Slack will never take ends as failed,
tells the ops channel once and shows in `koubei deliveries`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.alerts import enqueue_alert
from monitor.alerting.blocks import plain_message
from monitor.alerting.outbox import DrainReport, drain_outbox, ops_target
from monitor.alerting.sinks import SlackSink
from monitor.alerting.sla import sweep
from monitor.clock import FakeClock
from monitor.domain import AlertKind, Severity
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack, Message
from monitor.pipeline import Services, run_source
from monitor.store.tables import DeliveryRow
from tests.conftest import SLACK_TOKEN, review

OPS = "#koubei-ops"


def sink_for(svc: Services) -> SlackSink:
    return SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack)


def drain(svc: Services) -> DrainReport:
    return drain_outbox(
        svc.engine,
        sink_for(svc),
        svc.settings.app.outbox,
        svc.clock,
        limit=1000,
        ops=ops_target(svc.settings),
    )


def cycle(svc: Services) -> None:
    sweep(svc.engine, svc.settings, svc.clock)
    drain(svc)


def deliveries(svc: Services) -> list[DeliveryRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(DeliveryRow).order_by(col(DeliveryRow.id))).scalars().all())


def open_p1(svc: Services, appstore: FakeAppStore, slack: FakeSlack) -> Message:
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378")]
    run_source(svc, svc.settings.app.sources[0])
    cycle(svc)
    roots = [m for m in slack.posts_in("#pr-crisis") if m.thread_ts is None]
    assert len(roots) == 1
    return roots[0]


def test_a_thread_reply_whose_answer_was_lost_is_not_posted_twice(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    root = open_p1(svc, appstore, slack)
    slack.faults.drop_after_post = 1  # the reminder lands in the thread; its answer is lost
    clock.advance(timedelta(minutes=12))
    cycle(svc)
    reminders = [m for m in slack.thread_of(root) if "⏰" in m.text]
    assert len(reminders) == 1
    clock.advance(timedelta(minutes=1))
    cycle(svc)
    assert len([m for m in slack.thread_of(root) if "⏰" in m.text]) == 1
    assert all(d.status == "sent" for d in deliveries(svc))


def queue_file(svc: Services, path: Path) -> None:
    with Session(svc.engine) as session, session.begin():
        enqueue_alert(
            session,
            svc.settings,
            kind=AlertKind.DIGEST,
            severity=Severity.P4,
            dedup_key=f"report:test:{path.name}",
            case_id=None,
            now=svc.clock.now(),
            channel_key="executives",
            method="file",
            build=lambda _alert_id: {"text": "2026年11月 报告", "file": str(path)},
        )


def test_a_report_whose_upload_answer_was_lost_is_not_uploaded_twice(
    svc: Services, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    pdf = tmp_path / "koubei-2026-11.pdf"
    pdf.write_bytes(b"%PDF-1.7 test report")
    queue_file(svc, pdf)
    slack.faults.drop_answer_of["files.completeUploadExternal"] = 1  # shared; answer lost
    first = drain(svc)
    assert first.failed == 1
    shared = [u for u in slack.uploads if u.get("channel") == "C0EXECRE01"]
    assert len(shared) == 1
    clock.advance(timedelta(minutes=1))
    second = drain(svc)
    assert second.found_already_sent == 1 and second.sent == 0
    assert len([u for u in slack.uploads if u.get("channel")]) == 1
    assert [d.status for d in deliveries(svc)] == ["sent"]


def test_an_ampersand_flood_is_escaped_then_cut_and_slack_takes_it(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [review(1, content="催收威胁要上门" + "&" * 800, title="&" * 300)]
    run_source(svc, svc.settings.app.sources[0])
    report = drain(svc)
    assert report.sent == 1 and report.failed == 0 and slack.refused == []
    blocks = slack.posts_in("#pr-crisis")[0].attachments[0]["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(t) <= 3000 for t in texts)
    body = texts[1]
    assert "&amp;&amp;" in body and body.endswith("…")
    assert "&amp" not in body.replace("&amp;", "")  # no entity cut in half


def test_an_over_long_message_queued_before_the_limits_is_cut_at_sending(
    svc: Services, slack: FakeSlack
) -> None:
    with Session(svc.engine) as session, session.begin():
        enqueue_alert(
            session,
            svc.settings,
            kind=AlertKind.SURGE,
            severity=Severity.P3,
            dedup_key="surge:old",
            case_id=None,
            now=svc.clock.now(),
            channel_key="complaints",
            build=lambda alert_id: plain_message(alert_id, "P3", "&amp;" * 725, "#FBC02D"),
        )
    report = drain(svc)
    assert report.sent == 1 and slack.refused == []
    text = slack.posts_in("#complaints")[0].attachments[0]["blocks"][0]["text"]["text"]
    assert len(text) <= 3000 and text.endswith("&amp;…")


def test_a_permanent_refusal_fails_once_tells_ops_once_and_is_listed(
    db_url: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    del slack.channels["complaints"]  # the bot was removed from the channel
    appstore.reviews = [review(1, content="砍头息，服务费太高")]
    run_source(svc, svc.settings.app.sources[0])
    first = drain(svc)
    assert first.given_up == 1
    for _ in range(3):
        clock.advance(timedelta(minutes=30))
        again = drain(svc)
        assert again.failed == 0  # not retried: Slack would answer the same
    failed = [d for d in deliveries(svc) if d.status == "failed"]
    assert len(failed) == 1 and "channel_not_found" in (failed[0].last_error or "")
    assert failed[0].attempts == 1
    ops = slack.posts_in(OPS)
    assert len(ops) == 1  # told once
    assert "channel_not_found" in ops[0].text and f"--retry {failed[0].id}" in ops[0].text
    assert "工单 #1 新投诉" in ops[0].text  # what the lost alert said reaches someone
    listing = koubei_deliveries(db_url, svc, "--failed")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == 2 and "failed" in lines[1] and "channel_not_found" in lines[1]
    everything = koubei_deliveries(db_url, svc).stdout.splitlines()
    assert "failed" in everything[1] and "sent" in everything[2]  # failed ones first


def test_a_wrong_token_fails_without_the_token_in_any_error(
    db_url: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    slack.token = "xoxb-the-real-one"  # ours is refused: invalid_auth
    appstore.reviews = [review(1, content="催收威胁要上门")]
    run_source(svc, svc.settings.app.sources[0])
    report = drain(svc)
    assert report.given_up >= 1
    rows = deliveries(svc)
    assert rows and all(d.status == "failed" for d in rows)  # the ops notice fails too, once
    assert all("invalid_auth" in (d.last_error or "") for d in rows)
    listing = koubei_deliveries(db_url, svc, "--failed")
    assert "invalid_auth" in listing.stdout
    assert SLACK_TOKEN not in listing.stdout + listing.stderr
    assert all(SLACK_TOKEN not in (d.last_error or "") for d in rows)


def koubei_deliveries(db_url: str, svc: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "KOUBEI_CONFIG": str(svc.settings.path)}
    env["SLACK_BOT_TOKEN"] = SLACK_TOKEN
    return subprocess.run(
        [sys.executable, "-m", "monitor", "deliveries", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_a_failed_delivery_can_be_queued_again_once_fixed(
    db_url: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    del slack.channels["complaints"]
    appstore.reviews = [review(1, content="砍头息，服务费太高")]
    run_source(svc, svc.settings.app.sources[0])
    drain(svc)
    slack.channels["complaints"] = "C0COMPLA01"  # the bot is invited again
    queued = koubei_deliveries(db_url, svc, "--retry-all")
    assert "queued again: 1" in queued.stdout
    clock.advance(timedelta(minutes=1))
    drain(svc)
    assert len(slack.posts_in("#complaints")) == 1
    assert all(d.status == "sent" for d in deliveries(svc))
