"""`koubei serve` under hostile input, over real HTTP: oversized bodies, signed but
malformed payloads, a database that is down or slow."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session

from monitor.clock import FakeClock
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services
from monitor.store.engine import make_engine
from monitor.store.tables import CaseRow
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions
from tests.test_web import SECRET, click, open_case, signed, state_and_events

LIMIT = 1_048_576  # serve.max_body_bytes by default


@pytest.fixture
def web(svc: Services) -> Iterator[str]:
    interactions = Interactions(svc.engine, svc.settings, svc.clock, None)
    with BackgroundServer(create_app(interactions, SECRET)) as url:
        yield url


def form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def command_body(text_: str) -> bytes:
    return urlencode({"command": "/koubei", "text": text_, "user_id": "U0CAROL001"}).encode()


# --- size ----------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_read_or_verified(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, _ = open_case(svc, appstore, slack)
    before = state_and_events(svc)
    huge = b"payload=" + b"A" * (50 * 1_048_576)
    started = time.monotonic()
    unsigned = httpx.post(f"{web}/slack/actions", content=huge, timeout=60)
    assert unsigned.status_code == 413
    assert "max_body_bytes" in unsigned.json()["error"]
    # Signed or not, a body over the cap is never verified nor acted on.
    padded = click(case_id, "koubei_ack") + b"&pad=" + b"B" * (2 * LIMIT)
    signed_huge = httpx.post(
        f"{web}/slack/actions", content=padded, headers=signed(padded, clock), timeout=60
    )
    assert signed_huge.status_code == 413
    assert time.monotonic() - started < 30
    assert state_and_events(svc) == before


def test_a_chunked_body_without_a_length_is_cut_off_at_the_cap(web: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):  # 12.5 MiB in 64 KiB chunks, no Content-Length
            yield b"x" * 65_536

    response = httpx.post(f"{web}/slack/commands", content=chunks(), timeout=60)
    assert response.status_code == 413


def test_the_body_is_read_a_chunk_at_a_time_and_no_further_than_the_cap(svc: Services) -> None:
    app = create_app(Interactions(svc.engine, svc.settings, svc.clock, None), SECRET)
    chunk = b"x" * 65_536
    pulled = 0
    total = 800  # 50 MiB offered
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < total}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/slack/actions",
        "raw_path": b"/slack/actions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled <= LIMIT // len(chunk) + 1  # stopped at the cap, not at 800 chunks


# --- signed but malformed ------------------------------------------------------------


def action(value: object, action_id: str = "koubei_ack") -> dict[str, Any]:
    return {"action_id": action_id, "block_id": "case:1", "value": value}


def submission(metadata: object = "1", satisfaction: object = "4") -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": "U0BOB00001"},
        "view": {
            "callback_id": "koubei_resolve_modal",
            "private_metadata": metadata,
            "state": {
                "values": {
                    "note": {"note": {"value": "已处理"}},
                    "replied": {"replied": {"selected_option": {"value": "no"}}},
                    "satisfaction": {"satisfaction": {"selected_option": {"value": satisfaction}}},
                }
            },
        },
    }


USER = {"id": "U0ALICE001", "name": "alice"}
MALFORMED: dict[str, tuple[bytes, str]] = {
    "a list as payload": (form([1, 2, 3]), "expected a JSON object"),
    "a null payload": (form(None), "expected a JSON object"),
    "user as a string": (
        form({"type": "block_actions", "user": "U0ALICE001", "actions": [action("1")]}),
        "user: expected a JSON object",
    ),
    "actions as an object": (
        form({"type": "block_actions", "user": USER, "actions": {"a": 1}}),
        "actions: expected a JSON list",
    ),
    "a null action": (
        form({"type": "block_actions", "user": USER, "actions": [None]}),
        "actions[0]: expected a JSON object",
    ),
    "a non-numeric case id": (
        form({"type": "block_actions", "user": USER, "actions": [action("abc")]}),
        "'abc' is not a case number",
    ),
    "a superscript digit": (
        form({"type": "block_actions", "user": USER, "actions": [action("²")]}),
        "is not a case number",
    ),
    "a case id beyond the integer range": (
        form({"type": "block_actions", "user": USER, "actions": [action("99999999999999999999")]}),
        "there is no case #99999999999999999999",
    ),
    "a case id as a list": (
        form({"type": "block_actions", "user": USER, "actions": [action(["1"])]}),
        "actions[0].value: expected a string",
    ),
    "a modal for case abc": (form(submission(metadata="abc")), "view.private_metadata"),
    "a modal for a case past the id range": (form(submission(metadata=str(2**31))), "no case"),
    "a modal with satisfaction 99": (form(submission(satisfaction="99")), "satisfaction"),
    "a modal whose view is a string": (
        form({"type": "view_submission", "view": "x"}),
        "view: expected a JSON object",
    ),
    "JSON nested 200,000 deep": (
        urlencode({"payload": "[" * 200_000}).encode(),
        "payload is not JSON",
    ),
    "a body that is not UTF-8": (b"payload=\xff\xfe", "not a UTF-8 form"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_signed_malformed_payloads_answer_400_with_a_message_and_change_nothing(
    web: str,
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    name: str,
) -> None:
    open_case(svc, appstore, slack)
    before = state_and_events(svc)
    body, problem = MALFORMED[name]
    response = httpx.post(f"{web}/slack/actions", content=body, headers=signed(body, clock))
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False and problem in response.json()["error"]
    assert state_and_events(svc) == before


BAD_NUMBERS = [
    "ack 99999999999999999999",
    "ack ²",
    "ack #0",
    "resolve abc 已处理",
    "ack " + "9" * 5000,
    "ack <!channel>",
]


@pytest.mark.parametrize("words", BAD_NUMBERS)
def test_a_slash_command_with_a_bad_case_number_answers_200_with_an_ephemeral_error(
    web: str,
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    words: str,
) -> None:
    open_case(svc, appstore, slack)
    before = state_and_events(svc)
    body = command_body(words)
    # Slack shows the user a slash command's answer only with HTTP 200: errors are text.
    response = httpx.post(f"{web}/slack/commands", content=body, headers=signed(body, clock))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith("没有工单")
    assert "/koubei status" in answer["text"] and len(answer["text"]) < 200
    assert "<!channel>" not in answer["text"]  # the user's words are shown, not obeyed
    assert state_and_events(svc) == before


# --- the database down or slow -------------------------------------------------------


def test_healthz_and_actions_answer_503_when_the_database_is_down(
    svc: Services, clock: FakeClock
) -> None:
    # Nothing listens on port 9: the database is down.
    down = make_engine("postgresql://koubei:hunter2@127.0.0.1:9/koubei?connect_timeout=2")
    app = create_app(Interactions(down, svc.settings, svc.clock, None), SECRET)
    with BackgroundServer(app) as url:
        health = httpx.get(f"{url}/healthz", timeout=30)
        body = click(1, "koubei_ack")
        acted = httpx.post(
            f"{url}/slack/actions", content=body, headers=signed(body, clock), timeout=30
        )
    assert health.status_code == 503
    assert health.json()["ok"] is False and health.json()["down"] == ["database"]
    assert acted.status_code == 503 and "database" in acted.json()["error"]
    assert "hunter2" not in health.text + acted.text
    down.dispose()


def test_a_blocked_database_holds_one_request_not_the_whole_server(
    web: str, svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    case_id, _ = open_case(svc, appstore, slack)
    body = click(case_id, "koubei_ack")
    headers = signed(body, clock)
    answers: list[httpx.Response] = []
    with svc.engine.connect() as conn, conn.begin():
        # Hold the write lock the click's replay check needs (SQLite: BEGIN IMMEDIATE).
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE slack_requests IN EXCLUSIVE MODE"))
        clicking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{web}/slack/actions", content=body, headers=headers, timeout=60)
            )
        )
        clicking.start()
        time.sleep(0.5)  # the click is now waiting on the database
        assert not answers
        # Meanwhile the server still answers: the waiting click holds a worker thread,
        # not the event loop.
        started = time.monotonic()
        other = httpx.post(f"{web}/slack/actions", content=b"payload=%7B%7D", timeout=10)
        assert other.status_code == 401 and time.monotonic() - started < 5
    clicking.join(timeout=60)
    assert answers and answers[0].status_code == 200
    with Session(svc.engine) as s:
        assert s.get_one(CaseRow, case_id).state == "acknowledged"
