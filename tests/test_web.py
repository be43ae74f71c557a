"""`koubei serve` over real HTTP: signed Slack clicks, the modal, /koubei, /healthz."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.clock import FakeClock
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack, Message
from monitor.pipeline import Services, run_source
from monitor.store.tables import CaseEventRow, CaseRow
from monitor.watchdog import beat
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions
from monitor.web.verify import signature
from tests.conftest import SLACK_TOKEN, review

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def web(svc: Services, slack: FakeSlack) -> Iterator[str]:
    client = WebClient(token=SLACK_TOKEN, base_url=svc.settings.app.slack.base_url)
    interactions = Interactions(svc.engine, svc.settings, svc.clock, client)
    sink = SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)

    def drain() -> None:
        drain_outbox(svc.engine, sink, svc.settings.app.outbox, svc.clock)

    with BackgroundServer(create_app(interactions, SECRET, drain)) as url:
        yield url


def signed(body: bytes, clock: FakeClock, age: float = 0, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(clock.now().timestamp() - age))
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(case_id: int, action_id: str, user: str = "U0ALICE001") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "name": "alice"},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C0CRISIS01"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"case:{case_id}",
                "value": str(case_id),
                "action_ts": "1700000000.1",
            }
        ],
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def open_case(svc: Services, appstore: FakeAppStore, slack: FakeSlack) -> tuple[int, Message]:
    appstore.reviews = [review(1, content="催收威胁要上门")]
    run_source(svc, svc.settings.app.sources[0])
    drain_outbox(
        svc.engine,
        SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
        svc.settings.app.outbox,
        svc.clock,
    )
    with Session(svc.engine) as s:
        case_id = s.execute(select(col(CaseRow.id))).scalar_one()
    return case_id, slack.messages[0]


def state_and_events(svc: Services) -> tuple[str, int]:
    with Session(svc.engine) as s:
        state = s.execute(select(col(CaseRow.state))).scalar_one()
        events = s.execute(select(func.count()).select_from(CaseEventRow)).scalar_one()
    return state, int(events)


def wait_for(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_refused_requests_change_nothing(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, _ = open_case(svc, appstore, slack)
    before = state_and_events(svc)
    body = click(case_id, "koubei_ack")
    bad = signed(body, clock, secret="not-the-secret")
    old = signed(body, clock, age=6 * 60)
    tampered = signed(body, clock)
    responses = [
        httpx.post(f"{web}/slack/actions", content=body, headers=bad),
        httpx.post(f"{web}/slack/actions", content=body, headers=old),
        httpx.post(
            f"{web}/slack/actions",
            content=body.replace(b"koubei_ack", b"koubei_esc"),
            headers=tampered,
        ),
        httpx.post(f"{web}/slack/actions", content=body),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    assert "5-minute window" in responses[1].json()["error"]
    assert state_and_events(svc) == before


def test_a_valid_click_updates_the_case_and_the_message_and_a_replay_is_refused(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, root = open_case(svc, appstore, slack)
    body = click(case_id, "koubei_ack")
    headers = signed(body, clock)
    clicked_at = clock.now()
    started = time.monotonic()
    response = httpx.post(f"{web}/slack/actions", content=body, headers=headers)
    assert response.status_code == 200 and time.monotonic() - started < 3
    assert "已确认工单" in response.json()["text"]
    wait_for(lambda: root.edits >= 1)
    assert state_and_events(svc)[0] == "acknowledged"
    assert root.edits == 1 and "处理中" in json.dumps(root.attachments, ensure_ascii=False)
    wait_for(lambda: slack.thread_of(root))
    assert "<@U0ALICE001> 已确认" in slack.thread_of(root)[0].text
    with Session(svc.engine) as s:
        event = s.execute(
            select(CaseEventRow).where(col(CaseEventRow.kind) == "acknowledged")
        ).scalar_one()
        assert event.actor == "U0ALICE001" and event.at == clicked_at
    after = state_and_events(svc)
    replay = httpx.post(f"{web}/slack/actions", content=body, headers=headers)
    assert replay.status_code == 409
    assert state_and_events(svc) == after


def test_resolve_opens_a_modal_and_its_submission_resolves_the_case(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, root = open_case(svc, appstore, slack)
    body = click(case_id, "koubei_resolve")
    assert (
        httpx.post(f"{web}/slack/actions", content=body, headers=signed(body, clock)).status_code
        == 200
    )
    assert len(slack.views) == 1 and slack.views[0]["private_metadata"] == str(case_id)
    clock.advance(timedelta(minutes=40))
    submission = {
        "type": "view_submission",
        "user": {"id": "U0BOB00001"},
        "view": {
            "callback_id": "koubei_resolve_modal",
            "private_metadata": str(case_id),
            "state": {
                "values": {
                    "note": {
                        "note": {
                            "type": "plain_text_input",
                            "value": "已致电客户道歉，暂停该催收员工作",
                        }
                    },
                    "replied": {"replied": {"selected_option": {"value": "yes"}}},
                    "reply_url": {"reply_url": {"value": "https://weibo.com/example/reply/1"}},
                    "satisfaction": {"satisfaction": {"selected_option": {"value": "4"}}},
                }
            },
        },
    }
    body = urlencode({"payload": json.dumps(submission, ensure_ascii=False)}).encode()
    submitted_at = clock.now()
    response = httpx.post(f"{web}/slack/actions", content=body, headers=signed(body, clock))
    assert response.status_code == 200 and response.json() == {"response_action": "clear"}
    with Session(svc.engine) as s:
        case = s.get_one(CaseRow, case_id)
        assert case.state == "resolved" and case.satisfaction == 4
        assert case.resolution_note == "已致电客户道歉，暂停该催收员工作"
        assert case.public_reply_url == "https://weibo.com/example/reply/1"
        assert case.first_response_at == submitted_at and case.resolved_at == submitted_at
    wait_for(lambda: root.edits >= 1)
    edited = json.dumps(root.attachments, ensure_ascii=False)
    assert "已解决" in edited and "koubei_resolve" not in edited  # no buttons left


def test_slash_command_status_ack_and_oncall(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, _ = open_case(svc, appstore, slack)

    def command(text: str) -> dict[str, Any]:
        body = urlencode(
            {
                "command": "/koubei",
                "text": text,
                "user_id": "U0CAROL001",
                "user_name": "carol",
                "response_url": "https://hooks.slack.com/x",
                "trigger_id": uuid.uuid4().hex,
            }
        ).encode()
        r = httpx.post(f"{web}/slack/commands", content=body, headers=signed(body, clock))
        assert r.status_code == 200
        return dict(r.json())

    assert f"#{case_id} P1 待确认" in command("status")["text"]
    assert "已确认" in command(f"ack {case_id}")["text"]
    again = command(f"ack {case_id}")["text"]  # already acknowledged
    assert "当前状态为处理中，不能确认" in again and "acknowledged" not in again
    assert "当前值班：张伟" in command("oncall")["text"]
    assert "用法" in command("")["text"]


def test_healthz_follows_the_heartbeat(web: str, svc: Services, clock: FakeClock) -> None:
    assert httpx.get(f"{web}/healthz").status_code == 503
    beat(svc.engine, clock.now())
    ok = httpx.get(f"{web}/healthz")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    clock.advance(timedelta(minutes=5))
    assert httpx.get(f"{web}/healthz").status_code == 503


class RecordingSocketClient:
    """Stands in for the WebSocket side: records the acknowledgements sent back."""

    def __init__(self) -> None:
        self.responses: list[Any] = []

    def send_socket_mode_response(self, response: Any) -> None:
        self.responses.append(response)


def test_socket_mode_runs_the_same_actions(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    from slack_sdk.socket_mode.client import BaseSocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest

    from monitor.web.socket_mode import make_listener

    case_id, _ = open_case(svc, appstore, slack)
    interactions = Interactions(svc.engine, svc.settings, svc.clock, None)
    listener = make_listener(interactions)
    client = RecordingSocketClient()
    socket = cast(BaseSocketModeClient, client)
    payload = json.loads(urlencode_payload_to_json(click(case_id, "koubei_ack")))
    listener(socket, SocketModeRequest(type="interactive", envelope_id="e1", payload=payload))
    command = {"text": "status", "user_id": "U0CAROL001"}
    listener(socket, SocketModeRequest(type="slash_commands", envelope_id="e2", payload=command))
    assert [r.envelope_id for r in client.responses] == ["e1", "e2"]
    assert "已确认工单" in client.responses[0].payload["text"]
    assert "处理中" in client.responses[1].payload["text"]
    assert state_and_events(svc)[0] == "acknowledged"


def urlencode_payload_to_json(body: bytes) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body.decode())["payload"][0]


def test_status_says_how_many_it_lists_and_names_states_in_chinese(
    web: str, svc: Services, clock: FakeClock
) -> None:
    states = ["open", "acknowledged", "reopened"]
    with Session(svc.engine) as s, s.begin():
        for n in range(42):
            opened = clock.now() - timedelta(minutes=n)
            s.add(
                CaseRow(
                    severity="P2",
                    state=states[n % 3],
                    source="appstore-cn",
                    opened_at=opened,
                    updated_at=opened,
                )
            )
        s.add(
            CaseRow(
                severity="P1",
                state="resolved",
                source="x",
                opened_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    body = urlencode({"command": "/koubei", "text": "status", "user_id": "U0CAROL001"}).encode()
    r = httpx.post(f"{web}/slack/commands", content=body, headers=signed(body, clock))
    text = r.json()["text"]
    lines = text.splitlines()
    assert lines[0] == "未结工单 42 个，显示前 20 个（按级别、开单时间排序）："
    assert len([line for line in lines if line.startswith("• #")]) == 20
    assert lines[-1] == "… 另有 22 个未列出"
    assert "待确认" in text and "处理中" in text and "已重开" in text
    assert not any(state in text for state in ("open", "acknowledged", "reopened", "resolved"))
