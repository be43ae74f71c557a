"""The Slack message rendered from a notice at delivery is the message Koubei built
before notices: same blocks, text, colour, buttons, mentions and metadata.

`BEFORE` is that message as the old Block Kit builder wrote it for this review,
frozen here so the comparison outlives the builder.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.slack.render import SlackRenderer
from monitor.domain import Notice, Outgoing
from monitor.fakes.appstore import FakeAppStore
from monitor.pipeline import Services, run_source
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow
from tests.conftest import review

BEFORE: dict[str, Any] = {
    "text": ("[P1 红色预警 · 危机] 工单 #1 新投诉: 标题 &lt;b&gt; <!here> <@U0ZHANGWEI>"),
    "attachments": [
        {
            "color": "#D32F2F",
            "fallback": "[P1 红色预警 · 危机] 工单 #1 新投诉: 标题 &lt;b&gt;",
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": ("<!here> <@U0ZHANGWEI> *P1 红色预警 · 危机* · 新投诉 · 工单 #1"),
                    },
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": (
                            "> *标题 &lt;b&gt;*\n> 催收威胁要上门 &lt;!channel&"
                            "gt; &lt;https://evil.example|银行&gt; 电话13"
                            "8****5678 &amp;&amp;（鶞鵳鶤魑鹋鲆鷊鴯）"
                        ),
                    },
                },
                {
                    "type": "section",
                    "fields": [
                        {
                            "type": "mrkdwn",
                            "text": "*来源* appstore-cn",
                        },
                        {
                            "type": "mrkdwn",
                            "text": "*评分* ★☆☆☆☆",
                        },
                        {
                            "type": "mrkdwn",
                            "text": "*版本* 5.2.0",
                        },
                        {
                            "type": "mrkdwn",
                            "text": "*作者* 用户1",
                        },
                        {
                            "type": "mrkdwn",
                            "text": "*分类* 催收",
                        },
                        {
                            "type": "mrkdwn",
                            "text": "*信号* 威胁/恐吓",
                        },
                    ],
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": (
                            "*判定依据*\n• rating 1★\n• negative words: “催收"
                            "”\n• P1 threat signal: “威胁”"
                        ),
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": (
                                "🔴 待确认 · 负责人 — · 确认时限 11-28 10:15 · 发布 10"
                                "-01 15:01 · <https://itunes.apple.com/cn"
                                "/review?id=1440195432&amp;type=Purple%20"
                                "Software|查看原帖>"
                            ),
                        },
                    ],
                },
                {
                    "type": "actions",
                    "block_id": "case:1",
                    "elements": [
                        {
                            "type": "button",
                            "text": {
                                "type": "plain_text",
                                "text": "确认 Ack",
                            },
                            "action_id": "koubei_ack",
                            "value": "1",
                            "style": "primary",
                        },
                        {
                            "type": "button",
                            "text": {
                                "type": "plain_text",
                                "text": "我来负责 Assign me",
                            },
                            "action_id": "koubei_assign",
                            "value": "1",
                        },
                        {
                            "type": "button",
                            "text": {
                                "type": "plain_text",
                                "text": "解决 Resolve",
                            },
                            "action_id": "koubei_resolve",
                            "value": "1",
                        },
                        {
                            "type": "button",
                            "text": {
                                "type": "plain_text",
                                "text": "误报 False positive",
                            },
                            "action_id": "koubei_false_positive",
                            "value": "1",
                            "style": "danger",
                        },
                        {
                            "type": "button",
                            "text": {
                                "type": "plain_text",
                                "text": "立即升级 Escalate",
                            },
                            "action_id": "koubei_escalate",
                            "value": "1",
                        },
                    ],
                },
            ],
        },
    ],
    "metadata": {
        "event_type": "koubei_alert",
        "event_payload": {
            "alert_id": 1,
            "case_id": 1,
            "severity": "P1",
        },
    },
}


def test_a_case_message_from_its_notice_is_the_block_kit_message_of_before(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = [
        review(
            1,
            content="催收威胁要上门 <!channel> <https://evil.example|银行> 电话13812345678 &&",
            title="标题 <b>",
        )
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        alert = s.execute(select(AlertRow).where(col(AlertRow.case_id) == case.id)).scalar_one()
        delivery = s.execute(select(DeliveryRow)).scalar_one()
        assert alert.id is not None and delivery.id is not None
    notice = Notice.from_json(alert.payload)
    out = Outgoing(delivery.id, alert.id, "post", delivery.channel, notice, delivery.created_at)
    now = SlackRenderer(svc.settings.policy).render(out)
    assert now == BEFORE
    assert "13812345678" not in str(now) and "&lt;!channel&gt;" in str(now)
