"""A P1 fans out to Slack and the Chinese workplace robots, each built from koubei.yaml
`sinks:` with its webhook and secret from the environment, each delivered once through
a crash between its send and the commit, signed as each platform documents, and a rate
limit answer from each robot waited out, not lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
import yaml
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.dingtalk import DingTalkSink
from monitor.alerting.feishu import FeishuSink
from monitor.alerting.outbox import drain_outbox, ops_target
from monitor.alerting.wecom import WeComSink
from monitor.app import make_sinks
from monitor.clock import FakeClock
from monitor.config import load_settings
from monitor.domain import Sink
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.dingtalk import FakeDingTalk
from monitor.fakes.feishu import FakeFeishu
from monitor.fakes.slack import FakeSlack
from monitor.fakes.wecom import FakeWeCom
from monitor.pipeline import Services, run_source
from monitor.store.tables import DeliveryRow
from tests.conftest import SLACK_TOKEN, review, write_config
from tests.test_sinks import Crash, DiesAfterSend

CRY = "催收威胁要上门，我要打12378投诉，身份证110101199003071234"


@pytest.fixture
def robots() -> Iterator[tuple[FakeWeCom, FakeDingTalk, FakeFeishu]]:
    with FakeWeCom() as wecom, FakeDingTalk() as dingtalk, FakeFeishu() as feishu:
        yield wecom, dingtalk, feishu


def _configure(
    svc: Services,
    tmp_path: Path,
    appstore: FakeAppStore,
    slack: FakeSlack,
    robots: tuple[FakeWeCom, FakeDingTalk, FakeFeishu],
) -> dict[str, str]:
    wecom, dingtalk, feishu = robots
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["board_url"] = "https://koubei.example.com"
    data["sinks"] = [
        {"name": "slack", "kind": "slack"},
        {"name": "pr-wecom", "kind": "wecom", "url_env": "PR_WECOM_URL", "grades": ["P1", "P2"]},
        {
            "name": "pr-dingtalk",
            "kind": "dingtalk",
            "url_env": "PR_DINGTALK_URL",
            "secret_env": "PR_DINGTALK_SECRET",
            "grades": ["P1"],
        },
        {
            "name": "pr-feishu",
            "kind": "feishu",
            "url_env": "PR_FEISHU_URL",
            "secret_env": "PR_FEISHU_SECRET",
            "grades": ["P1"],
        },
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "PR_WECOM_URL": wecom.webhook,
        "PR_DINGTALK_URL": dingtalk.webhook,
        "PR_DINGTALK_SECRET": str(dingtalk.secret),
        "PR_FEISHU_URL": feishu.webhook,
        "PR_FEISHU_SECRET": str(feishu.secret),
    }
    svc.settings = load_settings(path, env=env)
    return env


@pytest.fixture
def opened() -> Iterator[list[dict[str, Sink]]]:
    """Sink sets built by a test, closed after it (the robots hold HTTP connections)."""
    built: list[dict[str, Sink]] = []
    yield built
    for sinks in built:
        for sink in sinks.values():
            close = getattr(sink, "close", None)
            if close is not None:
                close()


def _sinks_of(svc: Services) -> list[tuple[str, str]]:
    with Session(svc.engine) as s:
        rows = s.execute(select(DeliveryRow).order_by(col(DeliveryRow.id))).scalars().all()
        return [(d.sink, d.status) for d in rows]


def test_a_p1_reaches_slack_and_each_robot_once_through_a_crash_after_each_send(
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    tmp_path: Path,
    robots: tuple[FakeWeCom, FakeDingTalk, FakeFeishu],
    opened: list[dict[str, Sink]],
) -> None:
    wecom, dingtalk, feishu = robots
    env = _configure(svc, tmp_path, appstore, slack, robots)
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    assert sorted(s for s, _ in _sinks_of(svc)) == [
        "pr-dingtalk",
        "pr-feishu",
        "pr-wecom",
        "slack",
    ]
    sinks = make_sinks(svc.settings, env=env)
    opened.append(sinks)
    assert isinstance(sinks["pr-wecom"], WeComSink)
    assert isinstance(sinks["pr-dingtalk"], DingTalkSink)
    assert isinstance(sinks["pr-feishu"], FeishuSink)
    outbox = svc.settings.app.outbox
    for name in ("slack", "pr-wecom", "pr-dingtalk", "pr-feishu"):  # the routing order
        dying: dict[str, Sink] = {**sinks, name: cast(Sink, DiesAfterSend(sinks[name]))}
        with pytest.raises(Crash):
            drain_outbox(svc.engine, dying, outbox, clock, ops=ops_target(svc.settings))
        clock.advance(timedelta(seconds=outbox.lease_seconds + 1))
    drain_outbox(svc.engine, sinks, outbox, clock, ops=ops_target(svc.settings))
    assert all(status == "sent" for _, status in _sinks_of(svc))
    assert len([m for m in slack.posts_in("#pr-crisis") if m.thread_ts is None]) == 1
    # Each robot took the P1 exactly once, and the fakes checked the signatures.
    assert [len(f.received) for f in robots] == [1, 1, 1]
    assert not any(f.refused for f in robots)
    content = wecom.received[0].body["markdown"]["content"]
    assert "P1" in content and "工单 #1" in content
    assert "https://koubei.example.com/cases/1" in content  # no buttons: the case page
    assert "110101199003071234" not in json.dumps([f.received[0].body for f in robots])
    # The on-call person is mentioned by each platform's own id from policy.yaml.
    ding = dingtalk.received[0].body
    assert ding["at"]["atMobiles"] == ["13800000001"]
    assert "@13800000001" in ding["markdown"]["text"]
    assert "<@ZhangWei>" in content
    assert "ou_zhangwei0001" in json.dumps(feishu.received[0].body)


def test_a_rate_limit_answer_from_each_robot_is_waited_out_not_lost(
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    tmp_path: Path,
    robots: tuple[FakeWeCom, FakeDingTalk, FakeFeishu],
    opened: list[dict[str, Sink]],
) -> None:
    env = _configure(svc, tmp_path, appstore, slack, robots)
    for fake in robots:
        fake.faults.rate_limited = 1
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    sinks = make_sinks(svc.settings, env=env)
    opened.append(sinks)
    outbox = svc.settings.app.outbox
    report = drain_outbox(svc.engine, sinks, outbox, clock, ops=ops_target(svc.settings))
    assert report.rate_limited == 3 and report.failed == 0 and report.given_up == 0
    assert dict(_sinks_of(svc)) == {
        "slack": "sent",
        "pr-wecom": "pending",
        "pr-dingtalk": "pending",
        "pr-feishu": "pending",
    }
    assert [len(f.refused) for f in robots] == [1, 1, 1]
    # DingTalk throttles for ten minutes; the longest wait is over after it.
    clock.advance(timedelta(minutes=11))
    drain_outbox(svc.engine, sinks, outbox, clock, ops=ops_target(svc.settings))
    assert all(status == "sent" for _, status in _sinks_of(svc))
    assert [len(f.received) for f in robots] == [1, 1, 1]
