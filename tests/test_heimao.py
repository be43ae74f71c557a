"""黑猫投诉 against a local fake: format, signature, blocks, status progression, duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.clock import FakeClock
from monitor.config import SourceConfig
from monitor.fakes.heimao import Complaint, FakeHeimao
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, fetch_posts, run_source
from monitor.store.tables import CaseEventRow, CaseRow, PostRow
from tests.conftest import SLACK_TOKEN

FILED = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


def complaints() -> list[Complaint]:
    return [
        Complaint(
            sn="17380001234",
            title='<span class="hl">某借款App</span>暴力催收',
            text="逾期两天就被催收爆通讯录，给我同事发P图，要求停止骚扰并道歉。电话13812345678",
            filed=FILED,
            author="维权的小王",
            appeal="道歉,停止骚扰",
            issue="暴力催收",
            cost="0",
        ),
        Complaint(
            sn="17380001100",
            title="砍头息和担保费",
            text="借款一万到手八千五，收了担保费和服务费，要求退还。",
            filed=FILED - timedelta(hours=5),
            author="张先生",
            cost="1,500",
            companies=["某借款App", "某融资担保公司"],
        ),
    ]


@pytest.fixture
def heimao() -> Iterator[FakeHeimao]:
    with FakeHeimao(complaints=complaints()) as server:
        yield server


@pytest.fixture
def source(heimao: FakeHeimao) -> SourceConfig:
    return SourceConfig(
        name="heimao-company",
        kind="heimao",
        base_url=heimao.url,
        options={"couid": heimao.couid, "page_size": 10},
    )


def test_complaints_are_normalized_from_api_and_detail_pages(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    heimao.faults.jsonp = True
    posts, error = fetch_posts(svc.http, svc.clock, source)
    assert error is None
    assert [p.external_id for p in posts] == [
        "17380001234",
        "17380001100",
    ]  # one post per complaint
    first = posts[0]
    assert first.title == "某借款App暴力催收"  # highlight HTML stripped
    assert first.body.startswith("逾期两天就被催收爆通讯录") and "电话13812345678" in first.body
    assert first.published_at == FILED and first.author == "维权的小王"
    assert first.url == f"{heimao.url}/complaint/view/17380001234/"
    assert first.platform is not None and first.platform.status == "处理中"
    assert first.platform.appeal == "道歉,停止骚扰" and not first.platform.final
    assert posts[1].platform is not None and posts[1].platform.amount == 1500.0
    list_call = next(r for r in heimao.requests if r.path.startswith("/api/"))
    assert list_call.headers["x-requested-with"] == "XMLHttpRequest"
    assert len(list_call.query["ts"]) == 13 and len(list_call.query["rs"]) == 16


def test_a_wrong_signature_is_an_error_not_an_empty_list(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    bad = source.model_copy(update={"options": {**source.options, "salt": "wrong"}})
    posts, error = fetch_posts(svc.http, svc.clock, bad)
    assert posts == [] and error is not None and "1001" in str(error)


@pytest.mark.parametrize("fault", ["login_wall", "risk_block"])
def test_login_walls_and_risk_blocks_are_reported_as_blocks(
    svc: Services, heimao: FakeHeimao, source: SourceConfig, slack: FakeSlack, fault: str
) -> None:
    setattr(heimao.faults, fault, True)
    result = run_source(svc, source)
    assert result.blocked and not result.ok and result.fetched == 0
    assert result.health is not None and "拦截" in result.health  # the ops channel hears at once
    drain_outbox(
        svc.engine,
        SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
        svc.settings.app.outbox,
        svc.clock,
    )
    assert len(slack.posts_in("#koubei-ops")) == 1 and slack.posts_in("#complaints") == []


def test_malformed_json_and_changed_layout_are_parse_errors(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    heimao.faults.malformed = True
    _, error = fetch_posts(svc.http, svc.clock, source)
    assert error is not None and "neither JSON nor JSONP" in str(error)
    heimao.faults.malformed, heimao.faults.changed_layout = False, True
    _, error = fetch_posts(svc.http, svc.clock, source)
    assert error is not None and "layout changed" in str(error) and "heimao-company" in str(error)


def test_status_progresses_to_resolution_with_satisfaction(
    svc: Services, heimao: FakeHeimao, source: SourceConfig, clock: FakeClock
) -> None:
    first = run_source(svc, source)
    assert first.new == 2 and first.cases_opened == 2
    crisis = heimao.complaints[0]
    # The company replies; a day later the user confirms completion and rates it.
    clock.advance(timedelta(hours=3))
    crisis.status = 6
    crisis.replies.append((FILED + timedelta(hours=2), "您好，已核实并停止相关催收，向您致歉。"))
    second = run_source(svc, source)
    assert second.status_changes == 1 and second.new == 0
    clock.advance(timedelta(days=1))
    crisis.status, crisis.completed, crisis.stars = 7, FILED + timedelta(days=1), (5, 4, 4)
    third = run_source(svc, source)
    assert third.status_changes == 1
    with Session(svc.engine) as s:
        post = s.execute(select(PostRow).where(col(PostRow.external_id) == crisis.sn)).scalar_one()
        case = s.get_one(CaseRow, post.case_id)
        assert post.platform_status == "已完成"
        assert case.state == "resolved" and case.satisfaction == 4
        assert case.first_response_at == FILED + timedelta(hours=2)
        assert case.resolved_at == FILED + timedelta(days=1)
        events = s.execute(
            select(col(CaseEventRow.kind), col(CaseEventRow.detail))
            .where(col(CaseEventRow.case_id) == case.id)
            .order_by(col(CaseEventRow.id))
        ).all()
    changes = [(d["old"], d["new"]) for k, d in events if k == "platform_status"]
    assert changes == [("处理中", "已回复"), ("已回复", "已完成")]
    assert [k for k, _ in events].count("resolved") == 1
    # Settled complaints are not read again; the open one still is.
    heimao.requests.clear()
    run_source(svc, source)
    pages = [r.path for r in heimao.requests if r.path.startswith("/complaint/")]
    assert f"/complaint/view/{crisis.sn}/" in pages  # still on the first list page
    heimao.complaints = heimao.complaints[1:]  # the settled one drops off the list
    heimao.requests.clear()
    run_source(svc, source)
    assert all(crisis.sn not in r.path for r in heimao.requests)


def test_collective_and_amount_raise_the_grade(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    heimao.complaints = [
        Complaint(
            sn="17380009999",
            title="重复扣款",
            text="被重复扣款两次，不退钱",
            filed=FILED,
            cost="12000",
        )
    ]
    run_source(svc, source)
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
    assert case.severity == "P1"  # P2 raised one step: ¥12,000 in dispute


def test_dry_run_prints_heimao_posts(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    posts, _ = fetch_posts(svc.http, svc.clock, source)
    line = json.dumps(posts[0].as_json(), ensure_ascii=False)
    assert '"kind": "heimao"' in line and '"external_id": "17380001234"' in line


def test_a_slow_source_times_out_with_a_clear_error(
    svc: Services, heimao: FakeHeimao, source: SourceConfig
) -> None:
    from monitor.collectors.http import HttpClient

    heimao.faults.delay_s = 1.0
    impatient = svc.settings.app.http.model_copy(update={"timeout_s": 0.2, "max_retries": 1})
    with HttpClient(impatient, sleep=lambda _s: None) as http:
        posts, error = fetch_posts(http, svc.clock, source)
    assert posts == [] and error is not None
    assert "timed out after 0.2s" in str(error) and "gave up after 2 tries" in str(error)


def test_a_complaint_first_seen_closed_pages_nobody(
    svc: Services, heimao: FakeHeimao, source: SourceConfig, slack: FakeSlack, clock: FakeClock
) -> None:
    from monitor.alerting.sla import sweep

    heimao.complaints = [
        Complaint(
            sn="17380007777",
            title="会员费不退",
            text="会员费不退，已向平台投诉",
            filed=FILED - timedelta(days=20),
            status=8,
        )
    ]
    result = run_source(svc, source)
    assert result.new == 1 and result.cases_opened == 1 and result.alerts == 0
    clock.advance(timedelta(days=2))
    assert sweep(svc.engine, svc.settings, clock).escalations == 0
    drain_outbox(
        svc.engine,
        SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
        svc.settings.app.outbox,
        clock,
    )
    assert slack.messages == []
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        assert (
            case.state == "resolved" and case.resolution_note == "heimao 平台首次发现时状态为已关闭"
        )
