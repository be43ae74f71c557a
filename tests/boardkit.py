"""The case board under test: a real server on a free port, accounts, and cases from the fakes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from argon2 import PasswordHasher
from slack_sdk import WebClient
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.config import Settings
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store import users
from monitor.store.tables import CaseRow
from monitor.store.users import add_user
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions
from tests.conftest import SLACK_TOKEN, review

SESSION_SECRET = "board-test-session-secret-0123456789abcdef"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PASSWORD = "correct horse battery"
# name -> (role, Slack id)
PEOPLE = {
    "viewer1": ("viewer", None),
    "agent1": ("agent", "U0AGENT001"),
    "lead1": ("lead", "U0LEAD0001"),
    "admin1": ("admin", None),
}
COMPLAINTS = [
    review(1, content="催收威胁要上门，还打给我同事", title="催收恐吓"),
    review(2, content="未经同意扣款，乱收服务费，砍头息", title='=HYPERLINK("x")乱扣款'),
    review(3, content="一直闪退，登录不了，联系13812345678也没人管", title="闪退 13812345678"),
]


def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id still, at a test's cost: the default takes most of a second per hash."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


def drain(svc: Services) -> None:
    sink = SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    drain_outbox(svc.engine, sink, svc.settings.app.outbox, svc.clock)


def open_cases(svc: Services, appstore: FakeAppStore) -> dict[str, int]:
    """Three complaints of three grades, announced in Slack; grade -> case id."""
    appstore.reviews = list(COMPLAINTS)
    run_source(svc, svc.settings.app.sources[0])
    drain(svc)
    with Session(svc.engine) as s:
        rows = s.execute(select(col(CaseRow.severity), col(CaseRow.id))).all()
    return {grade: case_id for grade, case_id in rows}


def add_people(svc: Services) -> None:
    with Session(svc.engine) as s, s.begin():
        for name, (role, slack_id) in PEOPLE.items():
            add_user(s, name, role, svc.clock.now(), password=PASSWORD, slack_id=slack_id)


@contextmanager
def board_server(
    svc: Services, slack: FakeSlack, settings: Settings | None = None
) -> Iterator[str]:
    settings = settings or svc.settings
    client = WebClient(token=SLACK_TOKEN, base_url=settings.app.slack.base_url)
    interactions = Interactions(svc.engine, settings, svc.clock, client)
    app = create_app(
        interactions, SIGNING_SECRET, lambda: drain(svc), session_secret=SESSION_SECRET
    )
    with BackgroundServer(app) as url:
        yield url


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"name": name, "password": password, "csrf": token})
    assert r.status_code == 303, r.text
    return client


def form(client: httpx.Client, path: str, page: str, **fields: str) -> httpx.Response:
    token = csrf_of(client.get(page).text)
    return client.post(path, data={"csrf": token, **fields})
