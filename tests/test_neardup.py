"""Near-duplicate complaints across platforms become one case."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.classify.neardup import shingles, signature, similarity
from monitor.config import SourceConfig
from monitor.fakes.appstore import FakeAppStore, Review
from monitor.fakes.heimao import Complaint, FakeHeimao
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import CaseRow, PostRow
from tests.conftest import SLACK_TOKEN

STORY = (
    "借款一万到手只有八千五，被收了一千五的服务费和担保费，合同里根本没写，"
    "打客服电话一直没人接，要求退还砍头息"
)


def test_signatures_estimate_similarity() -> None:
    a = signature(STORY)
    b = signature(STORY.replace("一千五", "1500元").replace("，", " "))  # a repost, lightly edited
    c = signature("App一直闪退，登录不了，人脸识别失败十几次，还款日马上到了，急死人")
    assert a is not None and b is not None and c is not None
    assert similarity(a, b) >= 0.7 and similarity(a, c) < 0.2
    assert signature("垃圾") is None  # too short to compare
    assert shingles("借款 一万!") == {"借款一", "款一万"}


def test_the_same_complaint_on_two_platforms_is_one_case(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    with FakeHeimao(
        complaints=[
            Complaint(
                sn="17380005555",
                title="砍头息",
                text=STORY,
                filed=datetime(2026, 11, 27, 2, tzinfo=UTC),
            )
        ]
    ) as heimao:
        heimao_source = SourceConfig(
            name="heimao-company",
            kind="heimao",
            base_url=heimao.url,
            options={"couid": heimao.couid},
        )
        assert run_source(svc, heimao_source).cases_opened == 1
        drain_outbox(
            svc.engine,
            SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
            svc.settings.app.outbox,
            svc.clock,
        )
        appstore.reviews = [
            Review(
                id="13000000001",
                author="小张",
                rating=1,
                title="砍头息",
                content=STORY.replace("，", "。") + " 我要去银保监会投诉！",
                updated="2026-11-27T20:00:00-08:00",
            ),
            Review(
                id="13000000002",
                author="路人",
                rating=1,
                title="闪退",
                content="App一直闪退，登录不了，人脸识别失败十几次，还款日马上到了",
                updated="2026-11-27T19:00:00-08:00",
            ),
        ]
        result = run_source(svc, svc.settings.app.sources[0])
        drain_outbox(
            svc.engine,
            SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
            svc.settings.app.outbox,
            svc.clock,
        )
    assert result.new == 2 and result.cases_opened == 1  # the crash report is its own case
    with Session(svc.engine) as s:
        joined = s.execute(
            select(PostRow).where(col(PostRow.external_id) == "13000000001")
        ).scalar_one()
        case = s.get_one(CaseRow, joined.case_id)
        sources = (
            s.execute(select(col(PostRow.source)).where(col(PostRow.case_id) == case.id))
            .scalars()
            .all()
        )
    assert sorted(sources) == ["appstore-cn", "heimao-company"]
    assert case.severity == "P1"  # the highest of its posts (the App Store one names a regulator)
    root = next(m for m in slack.messages if m.thread_ts is None and "砍头息" in m.text)
    thread = [m.text for m in slack.thread_of(root)]
    assert any("📎 同一投诉也出现在 appstore-cn" in t for t in thread)
    assert any(m.text.startswith("[P1") and "升级 P2→P1" in m.text for m in slack.messages)
