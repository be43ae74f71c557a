"""Delivery under faults, against the fake Slack over HTTP: lost answers and permanent refusals.

Every alert reaches Slack once; one Slack will never take ends as failed,
tells the ops channel once and shows in `koubei deliveries`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import DrainReport, drain_outbox, ops_target
from monitor.alerting.sinks import SlackSink
from monitor.alerting.sla import sweep
from monitor.alerting.slack.render import SlackRenderer
from monitor.case_actions import case_rows
from monitor.clock import FakeClock
from monitor.domain import AlertKind, DeliveryStatus, Notice, Outgoing, Severity
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack, Message
from monitor.notices import case_notice
from monitor.pipeline import Services, run_source
from monitor.store.notices import enqueue
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow, PostRow
from tests.conftest import SLACK_TOKEN, review, reviews

OPS = "#koubei-ops"


def sink_for(svc: Services) -> SlackSink:
    return SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)


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
        notice = Notice(
            kind=AlertKind.DIGEST,
            dedup_key=f"report:test:{path.name}",
            route="executives",
            headline="2026年11月 报告",
            grade=Severity.P4,
            file=str(path),
        )
        enqueue(session, svc.settings, notice, svc.clock.now(), method="file")


def rendered_case(svc: Services, alert_id: int) -> dict[str, Any]:
    """The case's Slack message as the sink renders it now, from the case as it is."""
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        post, verdict = case_rows(s, case)
        notice = case_notice(
            svc.settings,
            case,
            post,
            verdict,
            kind=AlertKind.NEW_CASE,
            dedup_key=f"render:{case.id}",
            headline="新投诉",
            now=svc.clock.now(),
        )
    out = Outgoing(0, alert_id, "post", "#pr-crisis", notice, svc.clock.now())
    return SlackRenderer(svc.settings.policy).render(out)


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
    message = rendered_case(svc, 9)  # rendered within limits, not only cut at sending
    rendered = message["attachments"][0]["blocks"]
    assert all(len(b["text"]["text"]) <= 3000 for b in rendered if "text" in b)


def test_an_over_long_message_queued_before_the_limits_is_cut_at_sending(
    svc: Services, slack: FakeSlack
) -> None:
    text = "&amp;" * 725  # a Slack message as an older version queued it, over the limit
    with Session(svc.engine) as session, session.begin():
        alert = AlertRow(
            dedup_key="surge:old",
            kind=AlertKind.SURGE.value,
            severity="P3",
            channel_key="complaints",
            created_at=svc.clock.now(),
        )
        session.add(alert)
        session.flush()
        assert alert.id is not None
        alert.payload = {
            "text": text,
            "attachments": [
                {
                    "color": "#FBC02D",
                    "fallback": text,
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                }
            ],
            "metadata": {
                "event_type": "koubei_alert",
                "event_payload": {"alert_id": alert.id, "case_id": 0, "severity": "P3"},
            },
        }
        session.add(
            DeliveryRow(
                alert_id=alert.id,
                channel="#complaints",
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=svc.clock.now(),
                created_at=svc.clock.now(),
            )
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


def test_a_busy_days_digest_takes_as_many_messages_as_it_needs_each_post_once(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [
        review(n, rating=2, content="广告太多了", title=f"第{n}号" + "推送&广告" * 20)
        for n in range(120, 0, -1)
    ]
    run_source(svc, svc.settings.app.sources[0])
    count = enqueue_digest(svc)
    assert count >= 110  # P4 posts (a few may grade otherwise)
    assert enqueue_digest(svc) == 0
    report = drain(svc)
    assert report.failed == 0 and slack.refused == []
    digest = slack.posts_in("#complaints-digest")
    assert len(digest) >= 3
    sections = [b["text"]["text"] for m in digest for b in m.attachments[0]["blocks"][1:]]
    assert all(len(t) <= 3000 for t in sections)
    lines = [line for t in sections for line in t.split("\n")]
    assert all(line.startswith("• ") and line.endswith(")") for line in lines)  # whole lines
    shown = sorted(int(n) for line in lines for n in re.findall(r"第(\d+)号", line))
    assert len(shown) == count and len(set(shown)) == count  # every post once, none left out
    assert f"{count} 条" in digest[0].text and f"（1/{len(digest)}）" in digest[0].text


def p3_posts(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.posts_in("#complaints") if m.thread_ts is None]


def test_a_grouped_p3_mentions_the_on_call_person_in_its_top_level_text(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    appstore.reviews = reviews(5, content="一直闪退，登录不了")
    run_source(svc, svc.settings.app.sources[0])
    drain(svc)
    clock.advance(timedelta(seconds=61))
    drain(svc)
    posts = p3_posts(slack)
    assert len(posts) == 3  # two alone, then the group of three
    on_call = "<@U0ZHANGWEI>"  # 张伟's shift, 2026-11-28
    assert all(m.text.endswith(on_call) for m in posts)
    assert "个投诉集中出现" in json.dumps(posts[2].attachments, ensure_ascii=False)


def test_a_single_alerts_mentions_are_in_its_top_level_text(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    open_p1(svc, appstore, slack)
    root = slack.posts_in("#pr-crisis")[0]
    assert "<!here>" in root.text and "<@U0ZHANGWEI>" in root.text


HIDDEN = "\u2060\u180e\u202e\u2066\u2067\u2068\u2069\u200f\u200b"


def test_scraped_text_loses_invisible_characters_and_cannot_spoof_a_link(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = [
        review(
            1, content=f"催收威胁要上门{HIDDEN}，乱\u2060扣\u2060费", title=f"标\u202e题{HIDDEN}"
        )
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:  # a link with a label in it, as a hostile page could give
        post = s.execute(select(PostRow)).scalar_one()
        post.url = "https://evil.example/|官方客服>x"
        s.commit()
    message = rendered_case(svc, 99)
    shown = json.dumps(message, ensure_ascii=False)
    assert not any(c in shown for c in HIDDEN)
    assert "乱扣费" in shown and "标题" in shown
    context = next(b for b in message["attachments"][0]["blocks"] if b["type"] == "context")[
        "elements"
    ][0]["text"]
    links = re.findall(r"<([^>]*)>", context)
    assert links == ["https://evil.example/%7C%E5%AE%98%E6%96%B9%E5%AE%A2%E6%9C%8D%3Ex|查看原帖"]
    drain(svc)  # and what was already queued, before the post was touched, goes out clean
    sent = json.dumps([m.attachments for m in slack.messages], ensure_ascii=False)
    assert not any(c in sent for c in HIDDEN) and "乱扣费" in sent
