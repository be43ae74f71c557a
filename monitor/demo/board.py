"""The demo's walk through the case board: a lead signs in, sees every open case with
its countdown, records a first response and reopens a case, and Slack follows."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
from slack_sdk import WebClient
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.case_actions import ACTIVE
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services
from monitor.store.notices import case_message
from monitor.store.tables import CaseRow, SinkMessageRow
from monitor.store.users import add_user
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.interactions import Interactions

LEAD, PASSWORD = "demo-lead", "koubei-demo-lead"  # a demo account in the demo database only


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def board_tour(
    svc: Services,
    settings: Settings,
    clock: FakeClock,
    slack: FakeSlack,
    signing_secret: str,
    deliver: Callable[[], object],
) -> None:
    with Session(svc.engine) as s, s.begin():
        add_user(s, LEAD, "lead", clock.now(), password=PASSWORD, display_name="客服主管（演示）")
    with Session(svc.engine) as s:
        open_ids = set(
            s.execute(select(col(CaseRow.id)).where(col(CaseRow.state).in_(ACTIVE))).scalars()
        )
        fresh = (
            s.execute(
                select(CaseRow)
                .where(col(CaseRow.state).in_(ACTIVE), col(CaseRow.first_response_at).is_(None))
                .where(col(CaseRow.id).in_(select(col(SinkMessageRow.case_id))))
                .order_by(col(CaseRow.severity), col(CaseRow.id))
            )
            .scalars()
            .first()
        )
        closed = (
            s.execute(
                select(CaseRow).where(col(CaseRow.state) == "resolved").order_by(col(CaseRow.id))
            )
            .scalars()
            .first()
        )
    client = WebClient(token=slack.token, base_url=settings.app.slack.base_url)
    interactions = Interactions(svc.engine, settings, clock, client)
    app = create_app(
        interactions, signing_secret, deliver, session_secret=secrets.token_urlsafe(48)
    )
    print("\n== Case board ==")
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=30) as web:
        page = web.get("/login").text
        signed = web.post("/login", data={"name": LEAD, "password": PASSWORD, "csrf": _csrf(page)})
        board = web.get("/cases").text
        shown = {int(i) for i in re.findall(r'data-case="(\d+)"', board)}
        print(
            f"  {url}/cases: {LEAD} (主管) signed in (HTTP {signed.status_code}); "
            f"{len(shown)} of {len(open_ids)} open cases shown, {board.count('data-due=')} "
            f"countdowns, {board.count('is-overdue')} overdue"
        )
        if fresh is not None and fresh.id is not None:
            with Session(svc.engine) as s:
                posted = case_message(s, fresh.id)
            assert posted is not None
            root = next(m for m in slack.messages if m.ts == posted.ref)
            path = f"/cases/{fresh.id}"
            web.post(
                f"{path}/first-response",
                data={
                    "csrf": _csrf(web.get(path).text),
                    "text": "您好，已收到您的反馈，专员今天内联系您",
                    "url": f"https://example.com/reply/{fresh.id}",
                },
            )
            reply = slack.thread_of(root)[-1].text if slack.thread_of(root) else "—"
            state = re.search(r'id="case-state">([^<]+)<', web.get(path).text)
            print(
                f"  first response on 工单 #{fresh.id} ({fresh.severity}): board shows "
                f"{state.group(1) if state else '?'}; Slack thread: {reply}; message edited "
                f"{root.edits}×"
            )
        if closed is not None and closed.id is not None:
            path = f"/cases/{closed.id}"
            web.post(
                f"{path}/reopen",
                data={"csrf": _csrf(web.get(path).text), "reason": "客户回访表示退款未到账"},
            )
            state = re.search(r'id="case-state">([^<]+)<', web.get(path).text)
            told = [m.text for m in slack.messages if "重开了工单" in m.text]
            print(
                f"  reopened 工单 #{closed.id}: board shows {state.group(1) if state else '?'}; "
                f"Slack: {told[-1] if told else '—'}"
            )
    print(
        f"  To browse it: KOUBEI_SESSION_SECRET=$(python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(48))') SLACK_SIGNING_SECRET=demo "
        f"koubei serve --config config/demo.yaml, open http://127.0.0.1:8080/cases, "
        f"sign in as {LEAD} / {PASSWORD}"
    )
