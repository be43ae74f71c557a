"""The WeCom, DingTalk and Feishu robot sinks against their local fakes, over real HTTP.

What a group reading the robot would notice: the P1 arrives signed and mentions
the right person; a rate limit is an error to wait out, not a lost message; an
unanswered post is reported as possibly delivered; a huge post is cut, not
refused; a post cannot fake a link or an @all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import quote_plus

import httpx
import pytest

from monitor.alerting.dingtalk import DingTalkSink
from monitor.alerting.dingtalk import sign as ding_sign
from monitor.alerting.feishu import FeishuSink
from monitor.alerting.feishu import sign as feishu_sign
from monitor.alerting.robot_markdown import TRUNCATED
from monitor.alerting.wecom import WeComSink
from monitor.clock import FakeClock
from monitor.domain import (
    AlertKind,
    Mention,
    Notice,
    NoticeItem,
    NoticeLink,
    Outgoing,
    Severity,
    Sink,
)
from monitor.errors import ConfigError, SinkError
from monitor.fakes.dingtalk import FakeDingTalk
from monitor.fakes.feishu import FakeFeishu
from monitor.fakes.wecom import FakeWeCom

S = TypeVar("S", WeComSink, DingTalkSink, FeishuSink)
START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CASE_URL = "https://koubei.example/cases/42"
POST_URL = "https://tousu.example/complaint/9911"
# policy.yaml people -> platform ids, as the caller passes them to each sink
WECOM_IDS = {"lihua": "LiHua"}
NAMES = {"lihua": "李华", "oncall": "值班人 张伟"}  # policy's names, for mentions without an id
DINGTALK_IDS = {"lihua": "13800001111", "zhangwei": "manager4220"}
FEISHU_IDS = {"lihua": "ou_7d8a6e6df7621556ce0d21922b676706", "zhangwei": "zw@koubei.example"}
HOSTILE = (
    "[点我领取赔偿](http://evil.example/phish) <@all> <@U0EVIL> @所有人 "
    '<at id=all></at> <font color="warning">紧急</font> **加粗** # 标题 '
    "\u200b隐\u202e藏 ![img](http://evil.example/x.png) `code` &lt;@all&gt;"
)


_OPEN: list[WeComSink | DingTalkSink | FeishuSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def opened(sink: S) -> S:
    _OPEN.append(sink)
    return sink


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def wecom(clock: FakeClock) -> Iterator[FakeWeCom]:
    with FakeWeCom(clock=clock.timestamp) as fake:
        yield fake


@pytest.fixture
def dingtalk(clock: FakeClock) -> Iterator[FakeDingTalk]:
    with FakeDingTalk(clock=clock.timestamp) as fake:
        yield fake


@pytest.fixture
def feishu(clock: FakeClock) -> Iterator[FakeFeishu]:
    with FakeFeishu(clock=clock.timestamp) as fake:
        yield fake


def wecom_sink(fake: FakeWeCom) -> WeComSink:
    sink = WeComSink.connect("pr-wecom", fake.webhook, ids=WECOM_IDS, names=NAMES, timeout=5)
    return opened(sink)


def dingtalk_sink(
    fake: FakeDingTalk, clock: FakeClock, secret: str | None = None, keyword: str | None = None
) -> DingTalkSink:
    return opened(
        DingTalkSink.connect(
            "pr-dingtalk",
            fake.webhook,
            fake.secret if secret is None else secret,
            ids=DINGTALK_IDS,
            keyword=keyword,
            timeout=5,
            clock=clock,
        )
    )


def feishu_sink(
    fake: FakeFeishu, clock: FakeClock, secret: str | None = None, keyword: str | None = None
) -> FeishuSink:
    return opened(
        FeishuSink.connect(
            "pr-feishu",
            fake.webhook,
            fake.secret if secret is None else secret,
            ids=FEISHU_IDS,
            keyword=keyword,
            timeout=5,
            clock=clock,
        )
    )


def p1(quote: str = "催收人员每天打电话给我同事和父母，威胁要上门。", headline: str = "") -> Notice:
    return Notice(
        kind=AlertKind.NEW_CASE,
        dedup_key="case:42:new",
        route="crisis",
        headline=headline or "黑猫投诉：暴力催收，威胁联系家人",
        grade=Severity.P1,
        case_id=42,
        quote=quote,
        fields=(("来源", "黑猫投诉"), ("类别", "collection")),
        reasons=("关键词：威胁", "模型：collection 0.97"),
        links=(NoticeLink("工单", CASE_URL), NoticeLink("原帖", POST_URL)),
        mentions=(Mention(person="lihua"), Mention(role="oncall")),
        actions=("ack", "assign", "resolve"),
        status="待确认 · 首次回应截止 02:30",
    )


def outgoing(notice: Notice, method: str = "post", group: tuple[Notice, ...] = ()) -> Outgoing:
    return Outgoing(
        delivery_id=7,
        alert_id=70,
        method=method,  # type: ignore[arg-type]
        channel=notice.route,
        notice=notice,
        created_at=START,
        group=group,
    )


def test_the_sinks_declare_robot_capabilities() -> None:
    sinks: list[type[Sink]] = [WeComSink, DingTalkSink, FeishuSink]
    for cls in sinks:
        assert (cls.threads, cls.edits, cls.buttons, cls.files, cls.lookup) == (
            False,
            False,
            False,
            False,
            False,
        )
        assert cls.mentions and cls.rate_source.startswith("https://")
    assert (WeComSink.max_bytes, WeComSink.rate_per_minute) == (4096, 20)
    assert DingTalkSink.rate_per_minute == 20
    assert (FeishuSink.max_bytes, FeishuSink.rate_per_minute) == (20 * 1024, 100)


def test_a_p1_reaches_wecom_with_its_link_mention_and_actions(wecom: FakeWeCom) -> None:
    ref = wecom_sink(wecom).send(outgoing(p1()))
    assert (ref.channel, len(wecom.received)) == ("pr-wecom", 1)
    content = wecom.contents()[0]
    first = content.splitlines()[0]
    assert first.startswith('### <font color="warning">【P1】黑猫投诉')
    assert "工单 #42" in first
    assert "> 催收人员每天打电话给我同事和父母，威胁要上门。" in content
    assert f"[工单]({CASE_URL})" in content and f"[原帖]({POST_URL})" in content
    assert f"可执行：确认、指派、解决（[在工单页操作]({CASE_URL})）" in content
    # lihua has a WeCom id and is mentioned; the on-call role has none and is named instead
    assert wecom.mentions(0) == ["LiHua"]
    assert "提醒：<@LiHua> 值班人 张伟" in content


def test_a_signed_dingtalk_message_is_accepted(dingtalk: FakeDingTalk, clock: FakeClock) -> None:
    notice = replace(p1(), mentions=(*p1().mentions, Mention("zhangwei")))
    dingtalk_sink(dingtalk, clock).send(outgoing(notice))
    assert len(dingtalk.received) == 1
    query = dingtalk.received[0].query
    assert query["timestamp"] == str(int(START.timestamp() * 1000))
    at = dingtalk.ats(0)
    assert at == {"atMobiles": ["13800001111"], "atUserIds": ["manager4220"], "isAtAll": False}
    text = dingtalk.texts()[0]
    # DingTalk only notifies those the text names too
    assert "@13800001111" in text and "@manager4220" in text
    assert dingtalk.received[0].body["markdown"]["title"].startswith("【P1】")


def test_a_wrong_dingtalk_secret_is_refused_for_good(
    dingtalk: FakeDingTalk, clock: FakeClock
) -> None:
    with pytest.raises(SinkError) as err:
        dingtalk_sink(dingtalk, clock, secret="SECnot-the-secret").send(outgoing(p1()))
    assert (err.value.definite, err.value.permanent, err.value.retry_after) == (True, True, None)
    assert "310000" in str(err.value) and dingtalk.received == []
    assert dingtalk.token not in str(err.value)


def test_a_dingtalk_timestamp_over_an_hour_old_is_refused(
    dingtalk: FakeDingTalk, clock: FakeClock
) -> None:
    behind = FakeClock(START - timedelta(hours=1, minutes=1))  # this machine's clock is off
    sink = opened(
        DingTalkSink.connect("pr-dingtalk", dingtalk.webhook, dingtalk.secret, clock=behind)
    )
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert err.value.permanent and dingtalk.reasons == ["timestamp"]


def test_a_signed_feishu_card_is_accepted(feishu: FakeFeishu, clock: FakeClock) -> None:
    everyone = Mention(everyone=True)
    notice = replace(p1(), mentions=(*p1().mentions, Mention("zhangwei"), everyone))
    feishu_sink(feishu, clock).send(outgoing(notice))
    assert len(feishu.received) == 1
    body = feishu.received[0].body
    assert (body["msg_type"], body["timestamp"]) == ("interactive", str(int(START.timestamp())))
    header = feishu.cards()[0]["header"]
    assert header["template"] == "red" and header["title"]["content"].startswith("【P1】")
    md = feishu.markdown(0)
    assert "<at id=ou_7d8a6e6df7621556ce0d21922b676706></at>" in md
    assert "<at email=zw@koubei.example></at>" in md
    assert "<at id=all></at>" in md
    assert f"[工单]({CASE_URL})" in md


def test_a_wrong_feishu_secret_or_stale_timestamp_is_refused_for_good(
    feishu: FakeFeishu, clock: FakeClock
) -> None:
    with pytest.raises(SinkError) as err:
        feishu_sink(feishu, clock, secret="not-the-secret").send(outgoing(p1()))
    assert (err.value.definite, err.value.permanent) == (True, True)
    assert "19021" in str(err.value) and feishu.received == []
    stale = FakeClock(START + timedelta(hours=2))
    sink = opened(FeishuSink.connect("pr-feishu", feishu.webhook, feishu.secret, clock=stale))
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert err.value.permanent and feishu.refused[-1][0] == 19021


def test_a_missing_keyword_is_refused_and_a_configured_one_passes(clock: FakeClock) -> None:
    with FakeDingTalk(keywords=("告警",), clock=clock.timestamp) as ding:
        with pytest.raises(SinkError) as err:
            dingtalk_sink(ding, clock).send(outgoing(p1()))
        assert err.value.permanent and ding.reasons == ["keyword"]
        dingtalk_sink(ding, clock, keyword="告警").send(outgoing(p1()))
        assert len(ding.received) == 1
    with FakeFeishu(keywords=("告警",), clock=clock.timestamp) as fei:
        with pytest.raises(SinkError) as err:
            feishu_sink(fei, clock).send(outgoing(p1()))
        assert err.value.permanent and "19024" in str(err.value)
        feishu_sink(fei, clock, keyword="告警").send(outgoing(p1()))
        assert len(fei.received) == 1


def test_a_rate_limit_answer_is_waited_out_not_lost(
    wecom: FakeWeCom, dingtalk: FakeDingTalk, feishu: FakeFeishu, clock: FakeClock
) -> None:
    sinks: list[tuple[Sink, FakeWeCom | FakeDingTalk | FakeFeishu]] = [
        (wecom_sink(wecom), wecom),
        (dingtalk_sink(dingtalk, clock), dingtalk),
        (feishu_sink(feishu, clock), feishu),
    ]
    for sink, fake in sinks:
        fake.faults.rate_limited = 1
        with pytest.raises(SinkError) as err:
            sink.send(outgoing(p1()))
        assert err.value.definite and not err.value.permanent
        assert err.value.retry_after is not None and err.value.retry_after >= 1
        assert fake.received == []
        sink.send(outgoing(p1()))  # the outbox's retry after the wait
        assert len(fake.received) == 1, sink.kind


def test_wecom_enforces_twenty_a_minute(wecom: FakeWeCom, clock: FakeClock) -> None:
    sink = wecom_sink(wecom)
    for _ in range(20):
        sink.send(outgoing(p1()))
        clock.advance(timedelta(seconds=1))
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert err.value.retry_after == 60 and "45009" in str(err.value)
    clock.advance(timedelta(seconds=41))  # the first message leaves the minute
    sink.send(outgoing(p1()))
    assert len(wecom.received) == 21


def test_dingtalk_throttles_ten_minutes_past_twenty_a_minute(
    dingtalk: FakeDingTalk, clock: FakeClock
) -> None:
    sink = dingtalk_sink(dingtalk, clock)
    for _ in range(20):
        sink.send(outgoing(p1()))
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert err.value.retry_after == 600 and not err.value.permanent
    clock.advance(timedelta(seconds=120))
    with pytest.raises(SinkError):
        sink.send(outgoing(p1()))  # a minute later the robot is still throttled
    clock.advance(timedelta(seconds=600))
    sink.send(outgoing(p1()))
    assert len(dingtalk.received) == 21


def test_feishu_enforces_five_a_second(feishu: FakeFeishu, clock: FakeClock) -> None:
    sink = feishu_sink(feishu, clock)
    for _ in range(5):
        sink.send(outgoing(p1()))
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert err.value.retry_after is not None and "11232" in str(err.value)
    clock.advance(timedelta(seconds=1))
    sink.send(outgoing(p1()))
    assert len(feishu.received) == 6


def test_an_unanswered_post_is_indefinite(
    wecom: FakeWeCom, dingtalk: FakeDingTalk, feishu: FakeFeishu, clock: FakeClock
) -> None:
    sinks: list[tuple[Sink, FakeWeCom | FakeDingTalk | FakeFeishu]] = [
        (wecom_sink(wecom), wecom),
        (dingtalk_sink(dingtalk, clock), dingtalk),
        (feishu_sink(feishu, clock), feishu),
    ]
    for sink, fake in sinks:
        fake.faults.drop_after_receive = 1
        with pytest.raises(SinkError) as err:
            sink.send(outgoing(p1()))
        # the robot has it, and the sender cannot know: not definite, not permanent
        assert (err.value.definite, err.value.permanent) == (False, False)
        assert len(fake.received) == 1
        fake.faults.server_error = 1
        with pytest.raises(SinkError) as err:
            sink.send(outgoing(p1()))
        assert (err.value.definite, err.value.permanent) == (False, False)
        assert "502" in str(err.value)


def test_an_answer_past_the_timeout_is_indefinite(dingtalk: FakeDingTalk, clock: FakeClock) -> None:
    sink = opened(
        DingTalkSink.connect(
            "pr-dingtalk", dingtalk.webhook, dingtalk.secret, timeout=0.3, clock=clock
        )
    )
    dingtalk.faults.slow_answer_s = 1.5
    with pytest.raises(SinkError) as err:
        sink.send(outgoing(p1()))
    assert (err.value.definite, err.value.permanent) == (False, False)
    assert "ReadTimeout" in str(err.value) and len(dingtalk.received) == 1


def test_no_connection_is_definite(clock: FakeClock) -> None:
    with FakeWeCom(clock=clock.timestamp) as fake:
        url = fake.webhook
    # nothing listens on the port any more
    with pytest.raises(SinkError) as err:
        opened(WeComSink.connect("pr-wecom", url, timeout=2)).send(outgoing(p1()))
    assert (err.value.definite, err.value.permanent) == (True, False)
    assert "fake-wecom-key" not in str(err.value)


def test_refusals_a_retry_cannot_change_are_permanent(
    wecom: FakeWeCom, feishu: FakeFeishu, clock: FakeClock
) -> None:
    wrong = opened(WeComSink.connect("pr-wecom", wecom.webhook.replace("fake-wecom", "other")))
    with pytest.raises(SinkError) as err:
        wrong.send(outgoing(p1()))
    assert err.value.permanent and "93000" in str(err.value)
    wecom.refuse(-1)  # system busy: refused this time only
    with pytest.raises(SinkError) as err:
        wecom_sink(wecom).send(outgoing(p1()))
    assert (err.value.definite, err.value.permanent) == (True, False)
    feishu.refuse(19022)
    with pytest.raises(SinkError) as err:
        feishu_sink(feishu, clock).send(outgoing(p1()))
    assert err.value.permanent and "IP" in str(err.value)


def test_an_oversized_notice_is_cut_to_the_limit_and_accepted(
    wecom: FakeWeCom, dingtalk: FakeDingTalk, feishu: FakeFeishu, clock: FakeClock
) -> None:
    huge = p1(quote="我被骗了，" * 6000)  # 30,000 characters, 90,000 bytes
    wecom_sink(wecom).send(outgoing(huge))
    dingtalk_sink(dingtalk, clock).send(outgoing(huge))
    feishu_sink(feishu, clock).send(outgoing(huge))
    content = wecom.contents()[0]
    assert 4000 < len(content.encode()) <= 4096
    text = dingtalk.texts()[0]
    assert 19000 < len(text.encode()) <= 20000
    body = json.dumps(feishu.received[0].body, ensure_ascii=False, separators=(",", ":"))
    assert 19000 < len(body.encode()) <= 20 * 1024
    for rendered in (content, text, feishu.markdown(0)):
        # cut in the quote, with the marker; the links and the actions survive the cut
        assert TRUNCATED in rendered and f"[工单]({CASE_URL})" in rendered
        assert "可执行：" in rendered and "来自 Koubei" in rendered


def test_post_text_cannot_make_links_or_mentions(
    wecom: FakeWeCom, dingtalk: FakeDingTalk, feishu: FakeFeishu, clock: FakeClock
) -> None:
    hostile = Notice(
        kind=AlertKind.NEW_CASE,
        dedup_key="case:43:new",
        route="complaints",
        headline=HOSTILE,
        grade=Severity.P2,
        case_id=43,
        quote=HOSTILE + "\n" + HOSTILE,
        fields=(("标题", HOSTILE),),
        links=(NoticeLink("工单", "https://koubei.example/cases/43"),),
    )
    wecom_sink(wecom).send(outgoing(hostile))
    dingtalk_sink(dingtalk, clock).send(outgoing(hostile))
    feishu_sink(feishu, clock).send(outgoing(hostile))
    for rendered in (wecom.contents()[0], dingtalk.texts()[0], feishu.markdown(0)):
        assert "](http" in rendered  # our own case link is a link...
        assert rendered.count("](") == 1  # ...and the only one
        assert "evil.example" in rendered and "](http://evil" not in rendered
        hostile_markup = (
            "<@all>",
            "<@U0EVIL>",
            "<at",
            '<font color="warning">紧急',
            "@所有人",
            "**加粗",
            "# 标题",
            "`code`",
            "\u200b",
            "\u202e",
            "&lt;",
        )
        for markup in hostile_markup:
            assert markup not in rendered, markup
        assert "＠所有人" in rendered and "［点我领取赔偿］" in rendered  # still readable
    assert wecom.mentions(0) == []
    assert dingtalk.ats(0) == {"atMobiles": [], "atUserIds": [], "isAtAll": False}
    assert "<at" not in json.dumps(feishu.cards()[0], ensure_ascii=False)


def test_a_group_notice_lists_its_cases_with_links(
    wecom: FakeWeCom, feishu: FakeFeishu, clock: FakeClock
) -> None:
    members = tuple(
        Notice(
            kind=AlertKind.NEW_CASE,
            dedup_key=f"case:{n}:new",
            route="complaints",
            headline=f"应用闪退 {n}",
            grade=Severity.P3,
            case_id=n,
            links=(NoticeLink("工单", f"https://koubei.example/cases/{n}"),),
        )
        for n in (51, 52)
    )
    group = Notice(
        kind=AlertKind.GROUP,
        dedup_key="group:2026-12-01T02",
        route="complaints",
        headline="3 个新的 P3 工单",
        items=(NoticeItem("扣款未到账", "https://koubei.example/cases/53", Severity.P3, 53),),
    )
    wecom_sink(wecom).send(outgoing(group, group=members))
    content = wecom.contents()[0]
    assert content.startswith("### 3 个新的 P3 工单")
    for n, text in ((53, "扣款未到账"), (51, "应用闪退 51"), (52, "应用闪退 52")):
        assert f"- 【P3】工单 #{n} {text} [查看](https://koubei.example/cases/{n})" in content
    feishu_sink(feishu, clock).send(outgoing(group, group=members))
    assert feishu.cards()[0]["header"]["template"] == "blue"
    assert "工单 #52 应用闪退 52 [查看](https://koubei.example/cases/52)" in feishu.markdown(0)


def test_a_thread_event_and_a_state_change_are_new_messages_naming_the_case(
    dingtalk: FakeDingTalk, wecom: FakeWeCom, clock: FakeClock
) -> None:
    event = Notice(
        kind=AlertKind.EVENT,
        dedup_key="case:42:event:3",
        route="crisis",
        headline="李华 已确认，正在联系用户",
        grade=Severity.P1,
        case_id=42,
        links=(NoticeLink("工单", CASE_URL),),
    )
    # the outbox hands a thread event to a sink without threads as a plain post
    dingtalk_sink(dingtalk, clock).send(outgoing(event, method="post"))
    assert dingtalk.texts()[0].startswith("### 【P1】工单 #42 进展：李华 已确认，正在联系用户")
    update = Notice(
        kind=AlertKind.UPDATE,
        dedup_key="case:42:update:5",
        route="crisis",
        headline="已解决",
        grade=Severity.P1,
        case_id=42,
        status="已解决 · 负责人 李华 · 用时 42 分钟",
        links=(NoticeLink("工单", CASE_URL),),
    )
    wecom_sink(wecom).send(outgoing(update, method="post"))
    lines = wecom.contents()[0].splitlines()
    assert lines[0] == '### <font color="warning">【P1】工单 #42 状态更新：已解决</font>'
    assert lines[1] == "状态：已解决 · 负责人 李华 · 用时 42 分钟"


def test_a_report_names_its_file_and_links_to_it(wecom: FakeWeCom) -> None:
    report = Notice(
        kind=AlertKind.DIGEST,
        dedup_key="report:2026-W48",
        route="executives",
        headline="口碑周报 2026 第 48 周",
        file="/var/lib/koubei/reports/weekly-2026-W48.pdf",
        links=(NoticeLink("下载周报", "https://koubei.example/reports/2026-W48"),),
    )
    wecom_sink(wecom).send(outgoing(report, method="file"))
    content = wecom.contents()[0]
    assert "报告文件：weekly-2026-W48.pdf" in content and "/var/lib" not in content
    assert "[下载周报](https://koubei.example/reports/2026-W48)" in content


def test_from_config_refuses_unusable_settings_clearly() -> None:
    with pytest.raises(ConfigError, match="no key="):
        WeComSink.connect("pr-wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send")
    with pytest.raises(ConfigError, match="not signed"):
        WeComSink.connect("pr-wecom", "https://qyapi.example/send?key=k", "a-secret")
    with pytest.raises(ConfigError, match="access_token="):
        DingTalkSink.connect("pr-dingtalk", "https://oapi.dingtalk.com/robot/send")
    with pytest.raises(ConfigError, match="bot/v2/hook"):
        FeishuSink.connect("pr-feishu", "https://open.feishu.cn/hook/x")
    with pytest.raises(ConfigError, match="plain text"):
        FeishuSink.connect(
            "pr-feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x", keyword="<at id=all>"
        )


def test_feishu_signature_matches_a_published_vector() -> None:
    # the example of a public Feishu webhook client's test suite: same key, same second
    assert feishu_sign("dGhpcyBpcyBhIGtleQ==", 1716283459) == (
        "8EyY+xxfJvzWjZQpdc2mgvQFaG7lF5nbxl7RITyMkJU="
    )


def test_the_fakes_refuse_what_the_robots_refuse(
    wecom: FakeWeCom, dingtalk: FakeDingTalk, feishu: FakeFeishu, clock: FakeClock
) -> None:
    """Unfitted messages, sent raw: the fakes refuse them as the robots document."""
    ts_ms = int(START.timestamp() * 1000)
    assert dingtalk.secret is not None and feishu.secret is not None
    ding_url = (
        f"{dingtalk.webhook}&timestamp={ts_ms}&sign={quote_plus(ding_sign(dingtalk.secret, ts_ms))}"
    )
    ts = int(START.timestamp())
    fei_auth = {"timestamp": str(ts), "sign": feishu_sign(feishu.secret, ts)}
    with httpx.Client(timeout=5) as client:

        def code(url: str, body: Mapping[str, object], key: str = "errcode") -> object:
            return client.post(url, json=body).json()[key]

        big = "长" * 1400  # 4,200 bytes
        assert code(wecom.webhook, {"msgtype": "markdown", "markdown": {"content": big}}) == 40058
        assert code(wecom.webhook, {"msgtype": "markdown", "markdown": {"content": " "}}) == 44004
        assert code(wecom.webhook, {"msgtype": "voice", "voice": {}}) == 40008
        md = {"title": "t", "text": "长" * 6700}  # 20,100 bytes
        assert code(ding_url, {"msgtype": "markdown", "markdown": md}) == 460101
        assert code(ding_url, {"msgtype": "markdown", "markdown": {"title": "t"}}) == 40035
        unsigned = {"msgtype": "markdown", "markdown": {"title": "t", "text": "x"}}
        assert code(dingtalk.webhook, unsigned) == 310000
        card = {"elements": [{"tag": "div", "text": {"tag": "lark_md", "content": "长" * 7000}}]}
        body = {**fei_auth, "msg_type": "interactive", "card": card}  # 21,000+ bytes
        assert code(feishu.webhook, body, "code") == 9499
        assert code(feishu.webhook, {**fei_auth, "msg_type": "interactive"}, "code") == 9499
        no_sign = {"msg_type": "text", "content": {"text": "x"}}
        assert code(feishu.webhook, no_sign, "code") == 19021
        assert code(feishu.webhook + "x", {**fei_auth, **no_sign}, "code") == 19001
        assert code(feishu.webhook, {**fei_auth, **no_sign}, "code") == 0
    assert (len(wecom.received), len(dingtalk.received), len(feishu.received)) == (0, 0, 1)
