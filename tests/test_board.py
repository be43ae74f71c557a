"""The case board over real HTTP: sign-in, roles, CSRF, the rate limit, filters, CSV, actions."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from monitor.alerting.sinks import ConsoleSink
from monitor.alerting.sla import sweep
from monitor.alerting.surge import check_surge
from monitor.clock import FakeClock
from monitor.fakes.appstore import FakeAppStore, Review
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.scheduler import jobs
from monitor.store.engine import make_engine
from monitor.store.tables import CaseEventRow, CaseRow, PostRow, VerdictRow
from monitor.store.users import add_user, all_users, check_password
from monitor.web.interactions import Interactions
from tests.boardkit import (
    COMPLAINTS,
    PASSWORD,
    PEOPLE,
    add_people,
    board_server,
    cheap_hashing,
    csrf_of,
    drain,
    form,
    open_cases,
    sign_in,
)
from tests.conftest import review, write_config


@pytest.fixture
def board(svc: Services, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    cheap_hashing(monkeypatch)
    add_people(svc)
    with board_server(svc, slack) as url:
        yield url


@pytest.fixture
def client(board: str) -> Iterator[httpx.Client]:
    """A browser-like client without a session yet."""
    with httpx.Client(base_url=board, timeout=10) as c:
        yield c


@pytest.fixture
def login(board: str) -> Iterator[Callable[[str], httpx.Client]]:
    opened: list[httpx.Client] = []

    def open_as(name: str) -> httpx.Client:
        opened.append(sign_in(board, name))
        return opened[-1]

    yield open_as
    for c in opened:
        c.close()


def case_row(svc: Services, case_id: int) -> CaseRow:
    with Session(svc.engine) as s:
        case = s.get(CaseRow, case_id)
        assert case is not None
        s.expunge(case)
        return case


def events(svc: Services, case_id: int) -> list[str]:
    with Session(svc.engine) as s:
        return list(
            s.execute(
                select(col(CaseEventRow.kind))
                .where(col(CaseEventRow.case_id) == case_id)
                .order_by(col(CaseEventRow.id))
            ).scalars()
        )


def test_without_a_session_nothing_is_shown_and_nothing_changes(
    board: str, svc: Services, appstore: FakeAppStore
) -> None:
    ids = open_cases(svc, appstore)
    case_id = ids["P1"]
    r = httpx.get(f"{board}/cases")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fcases"
    page = httpx.get(f"{board}/cases/{case_id}")
    assert page.status_code == 303 and "催收" not in page.text
    export = httpx.get(f"{board}/cases.csv")
    assert export.status_code == 401 and "催收" not in export.text
    act = httpx.post(f"{board}/cases/{case_id}/ack", data={"csrf": "x"})
    assert act.status_code in (401, 403)
    assert case_row(svc, case_id).state == "open"
    assert httpx.get(f"{board}/login").status_code == 200
    assert httpx.get(f"{board}/healthz").status_code in (200, 503)  # its own rule, no session


def test_a_forged_cookie_is_no_session(board: str) -> None:
    r = httpx.get(f"{board}/cases", cookies={"koubei_session": "eyJ1aWQiOiAxfQ==.x.y"})
    assert r.status_code == 303


def test_sign_in_sets_a_signed_httponly_samesite_cookie_and_sign_out_ends_it(
    client: httpx.Client,
) -> None:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"name": "agent1", "password": PASSWORD, "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/cases"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/cases").status_code == 200
    page = client.get("/cases").text
    client.post("/logout", data={"csrf": csrf_of(page)})
    assert client.get("/cases").status_code == 303


def test_a_form_without_the_session_token_is_refused(board: str) -> None:
    # The login form itself: a site that posts credentials from elsewhere gets nowhere.
    r = httpx.post(f"{board}/login", data={"name": "agent1", "password": PASSWORD})
    assert r.status_code == 403


def test_a_case_action_without_the_token_changes_nothing(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    client = login("agent1")
    r = client.post(f"/cases/{case_id}/ack", data={"csrf": "not-the-token"})
    assert r.status_code == 403
    assert case_row(svc, case_id).state == "open"


def test_only_paths_on_this_site_are_followed_after_sign_in(client: httpx.Client) -> None:
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"name": "agent1", "password": PASSWORD, "csrf": token, "next": "//evil.example/x"},
    )
    assert r.headers["location"] == "/cases"


def test_failed_sign_ins_are_limited_per_account_across_servers(
    client: httpx.Client,
    login: Callable[[str], httpx.Client],
    svc: Services,
    slack: FakeSlack,
    clock: FakeClock,
) -> None:
    for _ in range(5):
        token = csrf_of(client.get("/login").text)
        r = client.post("/login", data={"name": "lead1", "password": "wrong-guess", "csrf": token})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    # Another server on the same database (another process, another instance) knows it too,
    # and even the right password waits.
    with board_server(svc, slack) as other, httpx.Client(base_url=other) as second:
        token = csrf_of(second.get("/login").text)
        r = second.post("/login", data={"name": "lead1", "password": PASSWORD, "csrf": token})
        assert r.status_code == 429 and "请 15 分钟后再试" in r.text
        assert r.headers["retry-after"] == "900"
    clock.advance(timedelta(minutes=16))
    assert login("lead1").get("/cases").status_code == 200


def test_a_viewer_reads_but_cannot_act(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    client = login("viewer1")
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200 and "催收威胁要上门" in page.text
    assert 'id="act-ack"' not in page.text
    r = form(client, f"/cases/{case_id}/ack", f"/cases/{case_id}")
    assert r.status_code == 403
    assert case_row(svc, case_id).state == "open"


def test_board_lists_open_cases_by_next_deadline_with_counts_and_filters(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    ids = open_cases(svc, appstore)
    client = login("viewer1")
    page = client.get("/cases").text
    # P1 must be acknowledged in 15 minutes, P2 in an hour, P3 in four: that order.
    order = [page.index(f'data-case="{ids[g]}"') for g in ("P1", "P2", "P3")]
    assert order == sorted(order)
    assert 'data-count-grade="P1">1<' in page and 'data-count-state="open">3<' in page
    p1_row = page[page.index(f'data-case="{ids["P1"]}"') :].split("</tr>")[0]
    assert "还剩 1" in p1_row and "确认 · 11-28 10:15" in p1_row  # 15 min from 10:00 Shanghai
    assert "138****5678" in page and "13812345678" not in page
    only_p2 = client.get("/cases", params={"grade": "P2"}).text
    assert f'data-case="{ids["P2"]}"' in only_p2 and f'data-case="{ids["P1"]}"' not in only_p2
    fees = client.get("/cases", params={"category": "fees"}).text
    assert f'data-case="{ids["P2"]}"' in fees and f'data-case="{ids["P3"]}"' not in fees
    assert "没有符合条件的工单" in client.get("/cases", params={"source": "nowhere"}).text
    later = client.get("/cases", params={"since": "2026-11-29"}).text
    assert "没有符合条件的工单" in later


def test_csv_exports_what_the_filters_show_masked_and_formula_safe(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    ids = open_cases(svc, appstore)
    client = login("viewer1")
    r = client.get("/cases.csv", params={"grade": "P2"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [int(row["工单"]) for row in rows] == [ids["P2"]]
    assert rows[0]["标题"].startswith("'=HYPERLINK")
    assert rows[0]["确认时限"].startswith("2026-11-28T11:00")  # +1 h, Shanghai time
    everything = list(csv.DictReader(io.StringIO(client.get("/cases.csv").text.lstrip("\ufeff"))))
    assert len(everything) == 3
    p3 = next(row for row in everything if int(row["工单"]) == ids["P3"])
    assert "138****5678" in p3["标题"] and "13812345678" not in client.get("/cases.csv").text


def test_first_response_stops_its_clock_and_reaches_slack(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    root = next(m for m in slack.messages if f"工单 #{case_id} 新投诉" in m.text)
    client = login("agent1")
    clicked = svc.clock.now()
    r = form(
        client,
        f"/cases/{case_id}/first-response",
        f"/cases/{case_id}",
        text="您好，已安排专人联系您核实",
        url="https://apps.apple.com/cn/app/id1440195432?see-all=reviews",
    )
    assert r.status_code == 303
    case = case_row(svc, case_id)
    assert case.first_response_at is not None
    assert clicked <= case.first_response_at <= svc.clock.now() and case.state == "acknowledged"
    assert case.resolved_at is None and case.owner == "U0AGENT001"
    assert events(svc, case_id)[-1] == "first_response"
    replies = slack.thread_of(root)
    assert any("已公开回复" in m.text and "<@U0AGENT001>" in m.text for m in replies)
    assert root.edits >= 1
    page = client.get(f"/cases/{case_id}").text
    assert "已记录工单" in page and "首次回应" in page
    # The timeline holds the Slack side too: the new message, the thread reply, the edit.
    assert "Slack 新消息" in page and "Slack 线程回复" in page and "Slack 消息更新" in page
    assert "已送达" in page and "您好，已安排专人联系您核实" in page
    board_page = client.get("/cases").text
    assert "解决 ·" in board_page  # next deadline: resolve, the response clock stopped


def test_reopen_and_reassign_are_for_leads(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    case_id = open_cases(svc, appstore)["P2"]
    agent = login("agent1")
    form(
        agent,
        f"/cases/{case_id}/resolve",
        f"/cases/{case_id}",
        note="已退款",
        root_cause="费率说明不清",
    )
    assert case_row(svc, case_id).state == "resolved"
    assert "根因：费率说明不清" in (case_row(svc, case_id).resolution_note or "")
    r = form(agent, f"/cases/{case_id}/reopen", f"/cases/{case_id}", reason="客户说没收到退款")
    assert r.status_code == 403 and case_row(svc, case_id).state == "resolved"
    lead = login("lead1")
    form(lead, f"/cases/{case_id}/reopen", f"/cases/{case_id}", reason="客户说没收到退款")
    case = case_row(svc, case_id)
    assert case.state == "reopened" and case.resolved_at is None
    assert case.ack_due is not None and case.ack_due > svc.clock.now()  # clocks start again
    # an agent may take it, not hand it to someone else
    refused = form(agent, f"/cases/{case_id}/assign", f"/cases/{case_id}", owner="lead1")
    assert "你的角色不能执行此操作" in agent.get(refused.headers["location"]).text
    assert case_row(svc, case_id).owner == "U0AGENT001"  # the agent's since resolving
    form(lead, f"/cases/{case_id}/assign", f"/cases/{case_id}", owner="agent1")
    drain(svc)
    assert case_row(svc, case_id).owner == "U0AGENT001"
    assert any("将工单指派给 <@U0AGENT001>" in m.text for m in slack.messages)
    assert any("重开了工单" in m.text for m in slack.messages)
    assert events(svc, case_id)[-3:] == ["resolved", "reopened", "assigned"]


def test_koubei_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, "KOUBEI_CONFIG": str(config)}

    def koubei(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "user", "add", *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            timeout=120,
        )

    added = koubei(
        "wang.li",
        "--role",
        "lead",
        "--password-stdin",
        "--slack-id",
        "U0WANGLI01",
        stdin="a long enough secret\n",
    )
    assert added.returncode == 0, added.stderr
    assert "a long enough secret" not in added.stdout + added.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'koubei.db'}")
    with Session(engine) as s:
        user = check_password(s, "wang.li", "a long enough secret")
        assert user is not None and user.role == "lead" and user.slack_id == "U0WANGLI01"
        assert user.password_hash and user.password_hash.startswith("$argon2id$")
        assert check_password(s, "wang.li", "a long enough secreT") is None
    engine.dispose()
    again = koubei("wang.li", "--role", "lead", "--password-stdin", stdin="another secret 123\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = koubei("zhao", "--role", "boss", "--password-stdin", stdin="a long enough secret\n")
    assert bad.returncode == 2 and "one of viewer, agent, lead, admin" in bad.stderr
    short = koubei("zhao", "--role", "agent", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "至少 10 个字符" in short.stderr


def test_the_case_page_masks_personal_data_and_escapes_scraped_text(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    ids = open_cases(svc, appstore)
    page = login("viewer1").get(f"/cases/{ids['P3']}").text
    assert "联系138****5678也没人管" in page and "13812345678" not in page
    with Session(svc.engine) as s:
        reasons = s.execute(
            select(col(VerdictRow.reasons))
            .join(PostRow, col(PostRow.id) == col(VerdictRow.post_id))
            .where(col(PostRow.case_id) == ids["P3"])
        ).scalar_one()
    assert reasons and all(html.escape(r) in page for r in reasons)  # why this grade
    hostile = login("viewer1").get(f"/cases/{ids['P2']}").text
    assert "=HYPERLINK(&#34;x&#34;)乱扣款" in hostile  # scraped text is escaped, not markup


def test_a_board_account_without_slack_id_is_named_not_mentioned_in_slack(
    login: Callable[[str], httpx.Client],
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    admin = login("admin1")  # no Slack id
    form(admin, f"/cases/{case_id}/ack", f"/cases/{case_id}")
    assert case_row(svc, case_id).owner == "web:admin1"
    clock.advance(timedelta(hours=5))  # past the first-response deadline
    sweep(svc.engine, svc.settings, svc.clock)
    drain(svc)
    texts = [m.text for m in slack.messages]
    assert any("admin1 已确认" in t for t in texts)
    assert any(t.startswith("⛔ 已超过首次回应时限") and "admin1" in t for t in texts)
    assert not any("<@web:" in t for t in texts)


def test_admins_manage_accounts_and_a_change_counts_at_once(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    agent = login("agent1")
    assert agent.get("/users").status_code == 403
    admin = login("admin1")
    added = form(
        admin, "/users", "/users", name="li.na", role="agent", password="another long secret"
    )
    assert added.status_code == 303 and "已添加账户 li.na" in admin.get("/users").text
    with Session(svc.engine) as s:
        ids = {u.name: u.id for u in all_users(s)}
    assert check_password_of(svc, "li.na", "another long secret")
    # agent1 becomes a viewer: the session they already hold can no longer act.
    form(admin, f"/users/{ids['agent1']}", "/users", role="viewer", active="1")
    assert form(agent, f"/cases/{case_id}/ack", f"/cases/{case_id}").status_code == 403
    # ... and once turned off, the session is no session.
    form(admin, f"/users/{ids['agent1']}", "/users", role="viewer", active="0")
    assert agent.get("/cases").status_code == 303
    # An admin does not lock themselves out.
    form(admin, f"/users/{ids['admin1']}", "/users", role="viewer", active="0")
    assert "不能修改自己的角色或停用自己" in admin.get("/users").text
    assert admin.get("/users").status_code == 200


def check_password_of(svc: Services, name: str, password: str) -> bool:
    with Session(svc.engine) as s:
        return check_password(s, name, password) is not None


def post_ids(html_text: str) -> set[int]:
    return {int(m) for m in re.findall(r'data-post="(\d+)"', html_text)}


def test_search_finds_posts_by_words_and_filters_masked(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, board: str
) -> None:
    appstore.reviews = [
        *COMPLAINTS,
        review(4, rating=5, content="客服小姐姐很耐心，帮我解决了还款问题，好评", title="好评"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        by_title = {p.title: p.id for p in s.execute(select(PostRow)).scalars()}
    fees, crash, praise = (
        by_title[COMPLAINTS[1].title],
        by_title[COMPLAINTS[2].title],
        by_title["好评"],
    )
    assert httpx.get(f"{board}/posts", params={"q": "扣款"}).status_code == 303
    client = login("viewer1")

    def found(**params: str) -> set[int]:
        return post_ids(client.get("/posts", params=params).text)

    assert found(q="扣款") == {fees}
    assert found(q="闪退 没人管") == {crash}  # every word, anywhere in the post
    assert found(q="闪退 好评") == set()
    assert found(q="%") == set() and found(q="_") == set()  # wildcards are plain characters
    assert found(sentiment="positive") == {praise}
    assert found(rating="5") == {praise}
    assert found(grade="P2") == {fees}
    assert found(category="fees") == {fees}
    assert len(found()) == 4 and found(until="2026-09-30") == set()
    page = client.get("/posts", params={"q": "13812345678"}).text
    assert post_ids(page) == {crash}
    assert "138****5678" in page and "13812345678" not in page.replace('value="13812345678"', "")


def test_stories_rank_detailed_praise_and_keep_a_shortlist(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore
) -> None:
    detailed = (
        "上个月资金周转困难，客服小姐姐耐心帮我申请了延期还款，还详细解释了每一笔费用，"
        "整个过程没有任何隐藏收费，到账也很快，真的帮了大忙，非常感谢"
    )
    appstore.reviews = [
        COMPLAINTS[0],
        review(5, rating=4, content="还不错，好用", title="好用"),
        review(6, rating=5, content=detailed, title="客服帮了大忙"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        by_title = {p.title: p.id for p in s.execute(select(PostRow)).scalars()}
    good, short = by_title["客服帮了大忙"], by_title["好用"]
    viewer = login("viewer1")
    page = viewer.get("/stories").text
    order = re.findall(r'data-story="(\d+)"', page)
    assert order == [str(good), str(short)]  # the complaint is no story
    assert "5 星" in page and "详细（" in page
    assert form(viewer, f"/stories/{short}/shortlist", "/stories", note="x").status_code == 403
    agent = login("agent1")
    form(agent, f"/stories/{short}/shortlist", "/stories", note="已联系客户，同意讲述")
    page = viewer.get("/stories").text
    assert re.findall(r'data-story="(\d+)"', page) == [str(short), str(good)]  # shortlist first
    assert "已联系客户，同意讲述" in page and "agent1" in page
    form(agent, f"/stories/{short}/remove", "/stories")
    assert re.findall(r'data-story="(\d+)"', viewer.get("/stories").text) == [str(good), str(short)]


def test_the_weekly_pr_digest_carries_the_weeks_shortlist_once(
    login: Callable[[str], httpx.Client],
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
) -> None:
    appstore.reviews = [
        review(5, rating=4, content="还不错，好用，有问题打13812345678", title="好用"),
        review(6, rating=5, content="帮我申请了延期还款，<!channel> 非常感谢", title="帮了大忙"),
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        posts = {p.title: p for p in s.execute(select(PostRow)).scalars()}
    by_title = {title: p.id for title, p in posts.items()}
    agent = login("agent1")
    clock.advance(timedelta(days=-7))  # the week before: not this digest's
    form(agent, f"/stories/{by_title['好用']}/shortlist", "/stories", note="上周的")
    clock.advance(timedelta(days=7))  # Saturday of 2026-W48
    form(
        agent,
        f"/stories/{by_title['帮了大忙']}/shortlist",
        "/stories",
        note="客户同意讲述，电话13812345678",
    )
    clock.advance(timedelta(days=2, hours=-1))  # Monday 2026-11-30, 09:00 in Shanghai
    every = jobs(svc, ConsoleSink(Path(os.devnull)), "me")
    job = next(j for j in every if j.name == "stories:week")
    job.run()
    job.run()  # a second run, or a second instance, sends nothing more
    drain(svc)
    digests = [m for m in slack.messages if "好故事候选" in m.text]
    assert len(digests) == 1 and digests[0].channel == slack.channel_id("pr-crisis")
    # What the reader sees: the message's sections (the top-level text is its preview).
    text = "\n".join(
        str(block["text"]["text"])
        for part in digests[0].attachments
        for block in part.get("blocks", [])
        if isinstance(block.get("text"), dict)
    )
    assert "2026-W48" in text and "客户同意讲述" in text and "agent1" in text
    assert "13812345678" not in text  # a note is masked like the post it is about
    assert "上周的" not in text and "好用" not in text
    assert f"<{posts['帮了大忙'].url.replace('&', '&amp;')}|帮了大忙>" in text  # the post's link
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "未对外发布" in text


def dated(n: int, when: str, content: str) -> Review:
    """A one-star review published at `when` (Shanghai time)."""
    return Review(str(13_000_000_000 + n), f"顾客{n}", 1, f"标题{n}", content, when)


def test_trends_show_the_reports_figures_by_month_with_changes_and_surges(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    november = [
        dated(1, "2026-11-27T09:00:00+08:00", "催收威胁要上门，还打给我同事"),
        dated(2, "2026-11-27T10:00:00+08:00", "未经同意扣款，乱收服务费，砍头息"),
        dated(3, "2026-11-27T11:00:00+08:00", "客服电话一直打不通，退款拖了一个月"),
    ]
    appstore.reviews = list(november)
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        in_november = s.execute(select(func.count()).select_from(CaseRow)).scalar_one()
    assert in_november >= 2
    clock.advance(timedelta(days=5))  # 2026-12-03 10:00 in Shanghai
    crashes = [
        # published in the last hour: the surge rule counts posts by publish time
        dated(10 + i, f"2026-12-03T09:{10 + i}:00+08:00", f"一直闪退，第{i}次登录不了{'啊' * i}")
        for i in range(6)
    ]
    appstore.reviews = [*november, *crashes]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        december = s.execute(
            select(func.count()).select_from(CaseRow).where(col(CaseRow.opened_at) >= clock.now())
        ).scalar_one()
    assert december >= 1
    # The posts were graded now, so the surge rule reads them in its window.
    assert check_surge(svc.engine, svc.settings, clock.now()) == ["app"]
    client = login("viewer1")
    page = client.get("/trends").text
    embedded = re.search(r'id="trend-data">(.*?)</script>', page, re.S)
    assert embedded is not None
    data = json.loads(embedded.group(1))
    months = data["months"]
    assert len(months) == 12 and months[0]["key"] == "2026-01" and months[-1]["key"] == "2026-12"
    nov, dec = months[-2], months[-1]
    assert nov["cases"] == in_november and dec["cases"] == december and dec["partial"]
    assert dec["cases_mom"] == round((december - in_november) / in_november, 4)
    assert nov["cases_mom"] is None  # October was not monitored: no 环比 against nothing
    assert dec["cases_yoy"] is None  # nor 同比
    assert len(data["weeks"]) == 12 and data["weeks"][-1]["key"] == "2026-W49"
    assert data["daily"]["anomalies"] == [{"day": "2026-12-03", "categories": ["app"]}]
    assert 'data-period="2026-11"' in page and "/static/echarts/echarts.min.js" in page
    assert client.get("/static/echarts/echarts.min.js").status_code == 200


def trend_data(client: httpx.Client) -> dict[str, Any]:
    embedded = re.search(r'id="trend-data">(.*?)</script>', client.get("/trends").text, re.S)
    assert embedded is not None
    data: dict[str, Any] = json.loads(embedded.group(1))
    return data


def test_trends_compare_a_week_with_the_same_week_a_year_before(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    now = clock.now()
    clock.advance(timedelta(days=-366))  # Thursday 2025-11-27: monitoring begins
    last_year = [
        dated(1, "2025-11-25T09:00:00+08:00", "催收威胁要上门，还打给我同事"),
        dated(2, "2025-11-26T10:00:00+08:00", "未经同意扣款，乱收服务费，砍头息"),
    ]
    appstore.reviews = list(last_year)
    run_source(svc, svc.settings.app.sources[0])
    clock.advance(now - clock.now())  # back to Saturday 2026-11-28, in week 48
    this_year = [
        dated(3, "2026-11-24T09:00:00+08:00", "暴力催收，每天几十个电话骚扰我父母"),
        dated(4, "2026-11-25T10:00:00+08:00", "未经同意扣款，乱收会员费"),
        dated(5, "2026-11-26T11:00:00+08:00", "一直闪退，登录不了，也没人管"),
    ]
    appstore.reviews = [*this_year, *last_year]
    run_source(svc, svc.settings.app.sources[0])
    data = trend_data(login("viewer1"))
    weeks = {w["key"]: w for w in data["weeks"]}
    w48 = weeks["2026-W48"]
    assert w48["cases"] == 3 and w48["partial"]
    assert w48["cases_yoy"] == 0.5  # 3 against 2025-W48's 2
    # 2025-W47 ended before monitoring began: no 同比 against it, and none before data.
    assert weeks["2026-W47"]["cases_yoy"] is None and weeks["2026-W47"]["cases"] == 0
    assert weeks["2026-W47"]["cases_mom"] is None  # 2026-W46 had no cases: nothing to divide
    assert data["months"][-1]["key"] == "2026-11" and data["months"][-1]["cases_yoy"] == 0.5
    assert data["months"][-2]["cases_yoy"] is None  # October 2025 was not monitored


def test_the_same_period_a_year_before() -> None:
    from monitor.reports.period import iso_week, month
    from monitor.web.trends import year_before

    assert year_before(iso_week("2026-W48")) == iso_week("2025-W48")
    assert year_before(iso_week("2026-W53")) is None  # 2025 has 52 ISO weeks: 同比 is —
    assert year_before(iso_week("2027-W01")) == iso_week("2026-W01")
    assert year_before(month("2026-01")) == month("2025-01")


def test_a_second_view_of_trends_computes_only_the_running_periods(
    login: Callable[[str], httpx.Client],
    svc: Services,
    appstore: FakeAppStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.reports import figures
    from monitor.web import trends

    computed: list[str] = []

    def counting(*args: Any) -> dict[str, Any]:
        computed.append(args[2].key)
        return figures.compute(*args)

    monkeypatch.setattr(trends, "compute", counting)
    appstore.reviews = [dated(1, "2026-11-20T09:00:00+08:00", "催收威胁要上门，还打给我同事")]
    run_source(svc, svc.settings.app.sources[0])
    viewer = login("viewer1")
    first = trend_data(viewer)
    # 12 months and their year-ago months, 12 weeks, the week before and the year-ago weeks.
    assert len(computed) == 24 + 25
    computed.clear()
    assert trend_data(viewer) == first
    assert sorted(computed) == ["2026-11", "2026-W48"]  # only the running month and week
    # A late find in a closed week changes that week: the next view computes again.
    computed.clear()
    appstore.reviews = [
        dated(2, "2026-11-18T09:00:00+08:00", "未经同意扣款，乱收服务费，砍头息"),
        *appstore.reviews,
    ]
    run_source(svc, svc.settings.app.sources[0])
    after = {w["key"]: w["cases"] for w in trend_data(viewer)["weeks"]}
    assert len(computed) == 24 + 25
    assert after["2026-W47"] == 2


def test_slack_records_a_first_response_through_the_same_action(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    case_id = open_cases(svc, appstore)["P1"]
    interactions = Interactions(svc.engine, svc.settings, svc.clock)
    answer = interactions.command(
        {
            "text": f"reply {case_id} <https://apps.apple.com/cn/app/id1|回复> 您好，已联系您",
            "user_id": "U0ALICE001",
        }
    )
    assert answer["text"] == f"已记录工单 #{case_id} 的首次回应"
    case = case_row(svc, case_id)
    assert case.first_response_at is not None and case.state == "acknowledged"
    assert case.public_reply_url == "https://apps.apple.com/cn/app/id1"
    assert events(svc, case_id)[-1] == "first_response"
    refused = interactions.command({"text": f"reply {case_id} 没有链接", "user_id": "U0ALICE001"})
    assert "附上回复的链接" in refused["text"]  # no reply API on this platform: the link is needed
    assert "/koubei reply" in interactions.command({"text": "", "user_id": "U0ALICE001"})["text"]


def test_failed_sign_ins_are_limited_per_address_too(client: httpx.Client, svc: Services) -> None:
    with Session(svc.engine) as s, s.begin():
        add_user(s, "extra1", "viewer", svc.clock.now(), password=PASSWORD)

    def attempt(name: str, password: str) -> int:
        token = csrf_of(client.get("/login").text)
        data = {"name": name, "password": password, "csrf": token}
        return client.post("/login", data=data).status_code

    # Five wrong guesses at each of four accounts: none is locked past its own five...
    codes = [attempt(name, "wrong-guess") for name in PEOPLE for _ in range(5)]
    assert codes == [401] * 20
    # ... but the address has failed twenty times: it waits, even for a fresh account.
    assert attempt("extra1", PASSWORD) == 429


def test_the_follow_up_list_shows_due_calls_and_records_one(
    login: Callable[[str], httpx.Client], svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    case_id = open_cases(svc, appstore)["P2"]
    agent = login("agent1")
    form(agent, f"/cases/{case_id}/resolve", f"/cases/{case_id}", note="已退款", satisfaction="3")
    viewer = login("viewer1")
    page = viewer.get("/followups").text
    assert f'data-followup="{case_id}"' in page and "未到期" in page  # P2: due in two days
    assert f'action="/followups/{case_id}"' not in page  # viewers read only
    clock.advance(timedelta(days=5))
    assert "已逾期" in viewer.get("/followups").text
    form(
        agent, f"/followups/{case_id}", "/followups", reached="yes", satisfaction="5", settled="yes"
    )
    assert case_row(svc, case_id).satisfaction == 5
    assert f'data-followup="{case_id}"' not in viewer.get("/followups").text
    assert events(svc, case_id)[-1] == "followup"
