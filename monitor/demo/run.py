"""The demo: fake App Store -> the real pipeline -> fake Slack and WeCom, on a fake clock.

It shows collection (with Apple's transient empty page), every grade reaching
Slack, each new P1 reaching a 企业微信 group robot beside Slack, a burst of P3 cases
grouped, the P4 digest, a P1 escalating after 15 minutes without acknowledgement,
and then acknowledged through a signed button click against `koubei serve`'s real
endpoint.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy import select
from sqlmodel import Session, col

from monitor import case_actions
from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import Sinks, drain_outbox, ops_target
from monitor.alerting.sla import sweep
from monitor.app import build_services, make_sinks
from monitor.case_actions import Actor
from monitor.classify.pii import mask_pii
from monitor.clock import FakeClock
from monitor.config import (
    Settings,
    SinkConfig,
    SourceConfig,
    load_settings,
    resolve_config_path,
)
from monitor.demo import load_demo_reviews
from monitor.demo.board import board_tour
from monitor.demo.first_party import (
    app_store_connect,
    collect_connect,
    demo_policy,
    follow_up,
    reply_to_a_review,
    send_in_app_feedback,
)
from monitor.demo.sources import (
    heimao_complaints,
    huawei_comments,
    jutousu_posts,
    rss_items,
    yingyongbao_comments,
)
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.heimao import FakeHeimao
from monitor.fakes.huawei import FakeHuawei
from monitor.fakes.jutousu import FakeJutousu
from monitor.fakes.rss import FakeRss
from monitor.fakes.slack import FakeSlack, Message
from monitor.fakes.wecom import FakeWeCom
from monitor.fakes.yingyongbao import FakeYingyongbao
from monitor.pipeline import RunResult, Services, run_source
from monitor.reports.period import month
from monitor.reports.run import make_report, queue_report_post
from monitor.store.notices import case_message
from monitor.store.tables import CaseRow, PostRow, VerdictRow
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions
from monitor.web.verify import signature

CHANNELS = {
    "pr-crisis": "C0CRISIS01",
    "complaints": "C0COMPLA01",
    "complaints-digest": "C0DIGEST01",
    "koubei-ops": "C0KOUOPS01",
    "exec-reports": "C0EXECRE01",
}
GRADE_ORDER = ("P1", "P2", "P3", "P4")
SIGNING_SECRET = "demo-signing-secret-not-real"
# A weekday morning in Shanghai: no quiet hours, so P3 alerts go at once.
DEMO_START = datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
# The demo's own environment for its sinks (koubei.yaml names variables, never secrets).
SLACK_TOKEN_ENV = "KOUBEI_DEMO_SLACK_TOKEN"
WECOM_URL_ENV = "KOUBEI_DEMO_WECOM_URL"
BOARD_URL = "http://127.0.0.1:8080"


def demo_sinks() -> list[SinkConfig]:
    """Slack for everything, and the PR team's 企业微信 group for new P1 cases beside it.

    Only new P1 cases: WeCom takes 20 messages a minute per robot, and on the demo's one
    clock pacing P2s and thread events too would move every later step of the demo.
    """
    return [
        SinkConfig(name="slack", kind="slack", secret_env=SLACK_TOKEN_ENV),
        SinkConfig(
            name="pr-wecom",
            kind="wecom",
            url_env=WECOM_URL_ENV,
            grades=["P1"],
            kinds=["new_case"],
        ),
    ]


def demo_settings(out: Path, appstore_url: str, slack: FakeSlack) -> Settings:
    # demo.yaml sits beside the main config (config/ here, /app/config in the image).
    base = load_settings(resolve_config_path(None).parent / "demo.yaml", env={})
    source = base.app.sources[0].model_copy(update={"base_url": appstore_url})
    app = base.app.model_copy(
        update={
            "sources": [source],
            "sinks": demo_sinks(),
            # Where `koubei serve --config config/demo.yaml` shows the board: robots link it.
            "board_url": BOARD_URL,
            "slack": base.app.slack.model_copy(update={"base_url": slack.url + "/api/"}),
            "store": base.app.store.model_copy(update={"sqlite_path": str(out / "koubei.db")}),
        }
    )
    secrets = base.secrets.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.token),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
        }
    )
    return base.model_copy(update={"app": app, "secrets": secrets})


class Demo:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.clock = FakeClock(DEMO_START)
        self.collected: dict[str, datetime] = {}  # source -> when the demo last collected it
        app_id, self.reviews = load_demo_reviews()
        self.appstore = FakeAppStore([r.review for r in self.reviews], app_id=app_id)
        self.appstore.quirks.empty_pages[2] = 1  # Apple's transient empty page
        self.heimao = FakeHeimao(complaints=heimao_complaints())
        self.rss = FakeRss(rss_items())
        self.jutousu = FakeJutousu(jutousu_posts())
        self.huawei = FakeHuawei("C100148961", huawei_comments())
        self.huawei.old_api = False  # show the token flow
        self.yyb = FakeYingyongbao("com.example.loan", yingyongbao_comments())
        self.slack = FakeSlack(
            token="xoxb-demo-not-a-real-token", channels=CHANNELS, clock=self.clock.timestamp
        )
        # On the demo's clock, so the robot's 20-a-minute window is the outbox's pacing.
        self.wecom = FakeWeCom(key="demo-wecom-key-not-real", clock=self.clock.timestamp)

    def cycle(self, svc: Services, sink: Sinks) -> None:
        """One scheduler tick: sources whose interval is up, the SLA sweeper, then the outbox.

        The demo's clock jumps hours ahead; collecting only where the demo says so would leave
        the report a true coverage gap for every source.
        """
        for source in svc.settings.app.sources:
            last = self.collected.get(source.name)
            if last is not None and self.clock.now() - last >= timedelta(
                minutes=source.interval_minutes
            ):
                self.collect(svc, source)
        sweep(svc.engine, svc.settings, self.clock)
        drain_outbox(
            svc.engine,
            sink,
            svc.settings.app.outbox,
            self.clock,
            limit=10_000,
            ops=ops_target(svc.settings),
        )

    def collect(self, svc: Services, source: SourceConfig) -> RunResult:
        self.collected[source.name] = self.clock.now()
        return run_source(svc, source)

    def run(self) -> None:
        started = time.monotonic()
        fakes = (self.appstore, self.heimao, self.rss, self.jutousu, self.huawei, self.yyb)
        with (
            fakes[0],
            fakes[1],
            fakes[2],
            fakes[3],
            fakes[4],
            fakes[5],
            self.slack,
            self.wecom,
        ):
            settings = demo_settings(self.out, self.appstore.url, self.slack)
            others = [
                SourceConfig(
                    name="heimao",
                    kind="heimao",
                    base_url=self.heimao.url,
                    options={"couid": self.heimao.couid},
                ),
                SourceConfig(
                    name="weibo-rss",
                    kind="rss",
                    base_url=self.rss.url,
                    options={"path": self.rss.path, "include": ["借款App"], "exclude": ["招聘"]},
                ),
                SourceConfig(
                    name="jutousu",
                    kind="jutousu",
                    base_url=self.jutousu.url,
                    options={"keyword": "借款App"},
                ),
                SourceConfig(
                    name="huawei",
                    kind="huawei",
                    base_url=self.huawei.url,
                    options={"appid": "C100148961"},
                ),
                SourceConfig(
                    name="yingyongbao",
                    kind="yingyongbao",
                    base_url=self.yyb.url,
                    options={"package": "com.example.loan"},
                ),
            ]
            settings = settings.model_copy(
                update={
                    "app": settings.app.model_copy(
                        update={"sources": [*settings.app.sources, *others]}
                    )
                }
            )
            settings = demo_policy(settings)
            svc = build_services(settings, clock=self.clock)
            sink = make_sinks(
                settings, env={SLACK_TOKEN_ENV: self.slack.token, WECOM_URL_ENV: self.wecom.webhook}
            )
            source = settings.app.sources[0]
            print(f"Fake App Store at {self.appstore.url}, fake Slack at {self.slack.url}")
            print(f"Demo clock starts {DEMO_START:%Y-%m-%d %H:%M} Asia/Shanghai\n")

            result = self.collect(svc, source)
            print(
                f"Collected {source.name}: {result.fetched} reviews in "
                f"{len(self.appstore.requests)} requests (an empty page was retried); "
                f"{result.new} new, {result.cases_opened} cases opened"
            )
            for other in others:
                got = self.collect(svc, other)
                print(
                    f"Collected {other.name}: {got.fetched} posts, {got.new} new, "
                    f"{got.cases_opened} cases opened"
                )
            with app_store_connect(self.clock) as (connect, connect_source):
                print(collect_connect(svc, connect, connect_source))
                print(reply_to_a_review(svc, connect, connect_source, sink))
            print(send_in_app_feedback(svc, self.clock, SIGNING_SECRET))
            self.print_joined(svc)
            self.cycle(svc, sink)
            self.clock.advance(timedelta(seconds=61))  # the P3 burst's group goes out
            self.cycle(svc, sink)
            digested = enqueue_digest(svc)
            self.cycle(svc, sink)
            print(f"P4 digest: {digested} mild complaints in one message\n")
            grouped = self.print_slack()
            self.print_wecom()

            self.escalate_and_acknowledge(svc, sink, settings)
            again = self.collect(svc, source)
            self.cycle(svc, sink)
            print(
                f"\nSecond collection: {again.new} new posts, {again.alerts} alerts (nothing twice)"
            )
            print(
                f"Slack never answered 429: {self.slack.rate_limited} rate-limit replies, "
                "deliveries paced to one message per second per channel"
            )
            self.resolve_some(svc, settings, sink)
            print(follow_up(svc, settings, self.clock))
            self.cycle(svc, sink)
            board_tour(
                svc, settings, self.clock, self.slack, SIGNING_SECRET, lambda: self.cycle(svc, sink)
            )
            self.report(svc, settings, sink)
            self.write_outputs(svc)
            agreement = self.grader_agreement(svc)
        print(f"Grader {svc.grader.name} agrees with the hand labels on {agreement}.")
        p1 = sum(1 for m in self.slack.messages if m.thread_ts is None and _grade(m) == "P1")
        print(
            f"WeCom group pr-wecom (企业微信) received {len(self.wecom.received)} message(s) "
            f"beside Slack's {p1} P1 case message(s); {len(self.wecom.refused)} refused"
        )
        print(
            f"Outputs in {self.out}/: slack_messages.json, wecom_messages.json, posts.jsonl, "
            "koubei.db, reports/"
        )
        missing = [g for g in GRADE_ORDER if not grouped.get(g)]
        print(
            f"Done in {time.monotonic() - started:.1f}s."
            + (f" MISSING grades: {missing}" if missing else "")
        )

    def escalate_and_acknowledge(self, svc: Services, sink: Sinks, settings: Settings) -> None:
        with Session(svc.engine) as s:
            case = (
                s.execute(
                    select(CaseRow).where(col(CaseRow.severity) == "P1").order_by(col(CaseRow.id))
                )
                .scalars()
                .first()
            )
            posted = case_message(s, case.id) if case is not None and case.id else None
        assert case is not None and case.id is not None and posted is not None
        root = next(m for m in self.slack.messages if m.ts == posted.ref)
        print(f"\n== Response process on 工单 #{case.id} (P1) ==")
        seen = 0
        for minute in (12, 15):  # the 80% reminder, then the first escalation step
            self.clock.advance(case.opened_at + timedelta(minutes=minute) - self.clock.now())
            self.cycle(svc, sink)
            for reply in self.slack.thread_of(root)[seen:]:
                print(f"  {self.at(case, reply)}  thread: {reply.text}")
            seen = len(self.slack.thread_of(root))
        interactions = Interactions(
            svc.engine,
            settings,
            self.clock,
            WebClient(token=self.slack.token, base_url=settings.app.slack.base_url),
        )
        with BackgroundServer(create_app(interactions, SIGNING_SECRET)) as url:
            self.clock.advance(timedelta(minutes=2))
            body = _click(case.id, "koubei_ack", "U0LINA0001")
            ts = str(int(self.clock.now().timestamp()))
            response = httpx.post(
                f"{url}/slack/actions",
                content=body,
                headers={
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": signature(SIGNING_SECRET, ts, body),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            print(
                f"  {self.now(case)}  signed click on 确认 → HTTP {response.status_code}: "
                f"{response.json().get('text')}"
            )
        self.cycle(svc, sink)
        for reply in self.slack.thread_of(root)[seen:]:
            print(f"  {self.at(case, reply)}  thread: {reply.text}")
        status = json.dumps(root.attachments, ensure_ascii=False)
        print(
            f"  message edited {root.edits}×, now shows: "
            f"{'🟡 处理中' if '处理中' in status else status[:80]}"
        )
        self.clock.advance(timedelta(minutes=30))
        before = len(self.slack.thread_of(root))
        self.cycle(svc, sink)
        print(
            f"  {self.now(case)}  no further escalation "
            f"({len(self.slack.thread_of(root)) - before} new thread messages)"
        )

    def print_joined(self, svc: Services) -> None:
        """Cases whose posts come from more than one platform."""
        with Session(svc.engine) as s:
            rows = s.execute(
                select(col(PostRow.case_id), col(PostRow.source)).where(
                    col(PostRow.case_id).is_not(None)
                )
            ).all()
        sources: dict[int, set[str]] = {}
        for case_id, source in rows:
            sources.setdefault(case_id, set()).add(source)
        for case_id, names in sorted(sources.items()):
            if len(names) > 1:
                print(
                    f"Cross-platform: 工单 #{case_id} joins posts from {', '.join(sorted(names))}"
                )

    def resolve_some(self, svc: Services, settings: Settings, sink: Sinks) -> None:
        """Customer service works through the P2 cases over the afternoon."""
        notes = [
            "已退还多收费用并致歉",
            "已核实并更正征信报送",
            "已停止该催收外包合作",
            "已取消会员自动续费并退款",
            "已升级风控规则并回访",
        ]
        with Session(svc.engine) as s:
            ids = (
                s.execute(
                    select(col(CaseRow.id))
                    .where(col(CaseRow.severity) == "P2")
                    .order_by(col(CaseRow.id))
                )
                .scalars()
                .all()
            )
        for i, case_id in enumerate(ids[:10]):
            # The afternoon passes as it would under the scheduler: sources are collected.
            self.clock.advance(timedelta(minutes=20))
            self.cycle(svc, sink)
            with Session(svc.engine) as s, s.begin():
                case = s.get_one(CaseRow, case_id)
                case_actions.resolve(
                    s,
                    settings,
                    case,
                    Actor("U0KEFU0001"),
                    self.clock.now(),
                    note=notes[i % len(notes)],
                    public_reply_url=f"https://example.com/reply/{case.id}" if i % 2 else None,
                    satisfaction=(5, 4, 2, 5, 3)[i % 5],
                )
        print(f"\nCustomer service resolved {min(10, len(ids))} P2 cases with notes and ratings")

    def report(self, svc: Services, settings: Settings, sink: Sinks) -> None:
        period = month(f"{DEMO_START.year}-{DEMO_START.month:02d}")
        result = make_report(
            svc.engine, settings, period, self.clock.now(), out_root=self.out / "reports"
        )
        queue_report_post(svc.engine, settings, result, self.clock.now())
        self.cycle(svc, sink)
        uploads = [u for u in self.slack.uploads if u.get("channel") == CHANNELS["exec-reports"]]
        print(f"\n== Monthly report {period.label} ==")
        print(result.summary_for_terminal())
        print(
            f"  wrote {result.written.html.parent}/ (report.html, report.pdf, cases.csv, "
            f"figures.json); PDF posted to #exec-reports: {len(uploads)} file(s)"
        )

    def at(self, case: CaseRow, message: Message) -> str:
        """When Slack got the message, in minutes:seconds since the case opened."""
        seconds = round(message.posted_at - case.opened_at.timestamp())
        return f"+{seconds // 60}:{seconds % 60:02d}"

    def now(self, case: CaseRow) -> str:
        seconds = round((self.clock.now() - case.opened_at).total_seconds())
        return f"+{seconds // 60}:{seconds % 60:02d}"

    def print_slack(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        names = {cid: name for name, cid in CHANNELS.items()}
        for msg in self.slack.messages:
            if msg.thread_ts is not None:
                continue
            severity = _grade(msg)
            grouped.setdefault(severity, []).append(f"#{names.get(msg.channel)}  {msg.text}")
        for grade in GRADE_ORDER:
            lines = grouped.get(grade, [])
            print(f"== {grade}: {len(lines)} message(s) in Slack ==")
            for line in lines:
                print(f"  {line[:110]}")
        return grouped

    def print_wecom(self) -> None:
        """What the PR team's 企业微信 group got for the first P1, beside Slack's message."""
        contents = self.wecom.contents()
        first = next((c for c in contents if "P1" in c.splitlines()[0]), None)
        print(f"== WeCom group pr-wecom (企业微信), new P1 cases: {len(contents)} message(s) ==")
        if first is None:
            print("  no P1 reached the WeCom group")
            return
        lines = [line for line in first.splitlines() if line.strip()]
        mention = next((line for line in lines if line.startswith("提醒：")), "提醒：none")
        link = re.search(rf"\[工单页面\]\(({re.escape(BOARD_URL)}/cases/\d+)\)", first)
        print(f"  {lines[0][:110]}")
        print(f"  {mention[:110]}")
        print(f"  case link: {link.group(1) if link else 'none'}")

    def write_outputs(self, svc: Services) -> None:
        messages: list[dict[str, Any]] = [
            {
                "channel": m.channel,
                "ts": m.ts,
                "thread_ts": m.thread_ts,
                "text": m.text,
                "attachments": m.attachments,
                "metadata": m.metadata,
                "edits": m.edits,
            }
            for m in self.slack.messages
        ]
        (self.out / "slack_messages.json").write_text(
            json.dumps(messages, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        robot = [{"at": r.at, "body": r.body} for r in self.wecom.received]
        (self.out / "wecom_messages.json").write_text(
            json.dumps(robot, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        with Session(svc.engine) as s, (self.out / "posts.jsonl").open("w", encoding="utf-8") as fh:
            rows = s.execute(
                select(PostRow, VerdictRow)
                .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
                .order_by(col(PostRow.published_at).desc())
            ).all()
            for post, verdict in rows:
                fh.write(
                    json.dumps(
                        {
                            "external_id": post.external_id,
                            "rating": post.rating,
                            "title": mask_pii(post.title),
                            "body": mask_pii(post.body),
                            "severity": verdict.severity,
                            "sentiment": verdict.sentiment,
                            "categories": verdict.categories,
                            "signals": verdict.signals,
                            "reasons": verdict.reasons,
                            "case_id": post.case_id,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )

    def grader_agreement(self, svc: Services) -> str:
        expected = {r.review.id: r.expect for r in self.reviews}
        with Session(svc.engine) as s:
            rows = s.execute(
                select(col(PostRow.external_id), col(VerdictRow.severity)).join(
                    VerdictRow, col(VerdictRow.post_id) == col(PostRow.id)
                )
            ).all()
        labelled = [(ext, sev) for ext, sev in rows if ext in expected]
        agree = sum(1 for ext, sev in labelled if expected[ext] == sev)
        return f"{agree}/{len(labelled)} labelled App Store reviews"


def _grade(message: Message) -> str:
    return str((message.metadata or {}).get("event_payload", {}).get("severity", "?"))


def _click(case_id: int, action_id: str, user: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": "demo.trigger",
        "actions": [{"action_id": action_id, "block_id": f"case:{case_id}", "value": str(case_id)}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def run_demo(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    Demo(out).run()
