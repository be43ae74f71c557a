"""The case board in a real browser: Debian's Chromium driven by Playwright.

Skips, saying why, only where /usr/bin/chromium is missing (scripts/system-deps.sh
installs it for `make test`). KOUBEI_SCREENSHOTS=docs/screenshots also saves each
page there for the README.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session

from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import CaseRow
from tests.boardkit import PASSWORD, add_people, board_server, cheap_hashing, open_cases
from tests.conftest import review

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = os.environ.get("KOUBEI_SCREENSHOTS", "").strip()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests skipped: /usr/bin/chromium is missing and could not be installed "
            "(Debian: apt-get install -y chromium; `make test` does it as root)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def site(
    svc: Services, slack: FakeSlack, appstore: FakeAppStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, int]]]:
    cheap_hashing(monkeypatch)
    add_people(svc)
    ids = open_cases(svc, appstore)
    with board_server(svc, slack) as url:
        yield url, ids


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(page: Page, url: str, name: str, target: str = "/cases") -> None:
    page.goto(url + target)
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{url}{target}*")


def case_state(svc: Services, case_id: int) -> CaseRow:
    with Session(svc.engine) as s:
        case = s.get(CaseRow, case_id)
        assert case is not None
        s.expunge(case)
        return case


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unauthenticated_pages_go_to_login_and_come_back_after(
    page: Page, site: tuple[str, dict[str, int]]
) -> None:
    url, ids = site
    page.goto(f"{url}/cases/{ids['P1']}")
    assert "/login?next=" in page.url and "催收" not in page.content()
    shot(page, "login")
    page.fill("input[name=name]", "viewer1")
    page.fill("input[name=password]", "wrong password!")
    page.click("button:has-text('登录')")
    assert page.inner_text(".error") == "用户名或密码错误"
    page.fill("input[name=name]", "viewer1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{url}/cases/{ids['P1']}")
    assert "催收威胁要上门" in page.inner_text("main")
    response = page.request.get(f"{url}/cases.csv")
    assert response.status == 200  # the browser's session cookie goes with it
    anonymous = page.context.browser
    assert anonymous is not None
    other = anonymous.new_context()
    try:
        assert other.request.get(f"{url}/cases.csv").status == 401
    finally:
        other.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_board_counts_countdowns_and_filters(page: Page, site: tuple[str, dict[str, int]]) -> None:
    url, ids = site
    sign_in(page, url, "lead1")
    rows = page.locator("table.cases tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("data-case") for i in range(3)] == [
        str(ids[g]) for g in ("P1", "P2", "P3")
    ]
    assert page.inner_text("[data-count-grade=P1]") == "1"
    assert page.inner_text("#count-open") == "3"
    first = rows.nth(0).locator("[data-due]")
    assert first.inner_text().startswith("还剩 1")  # P1: 15 minutes to acknowledge
    shot(page, "board")
    # The countdown is live: moved past its deadline, the row turns overdue within a tick.
    first.evaluate("el => el.setAttribute('data-due', '2026-11-28T01:00:00+00:00')")
    page.wait_for_selector(f"tr.is-overdue[data-case='{ids['P1']}']")
    assert first.inner_text().startswith("超时 ")
    page.select_option("select[name=grade]", "P2")
    page.click("button:has-text('筛选')")
    page.wait_for_url("**grade=P2**")
    assert rows.count() == 1 and rows.nth(0).get_attribute("data-case") == str(ids["P2"])
    with page.expect_download() as download:
        page.click("#export")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["工单"]) for r in exported] == [ids["P2"]]
    assert exported[0]["标题"].startswith("'=HYPERLINK")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_acting_on_a_case_updates_slack_and_the_board(
    page: Page, site: tuple[str, dict[str, int]], svc: Services, slack: FakeSlack
) -> None:
    url, ids = site
    case_id = ids["P1"]
    root = next(m for m in slack.messages if f"工单 #{case_id} 新投诉" in m.text)
    sign_in(page, url, "agent1", f"/cases/{case_id}")
    assert page.inner_text("#case-state") == "待确认"
    page.click("#act-ack")
    page.wait_for_selector(".flash:has-text('已确认工单')")
    assert page.inner_text("#case-state") == "处理中"
    assert root.edits >= 1
    assert any("<@U0AGENT001> 已确认" in m.text for m in slack.thread_of(root))
    form = page.locator("#form-first-response")
    form.locator("textarea[name=text]").fill("您好，已安排专员今天联系您")
    form.locator("input[name=url]").fill("https://apps.apple.com/cn/app/id1440195432")
    form.locator("button").click()
    page.wait_for_selector(".flash:has-text('首次回应')")
    assert case_state(svc, case_id).first_response_at is not None
    assert any("已公开回复" in m.text for m in slack.thread_of(root))
    assert "首次回应" in page.inner_text("ol.timeline")
    # The first-response clock stopped: the next deadline on the board is resolving it.
    shot(page, "case")
    page.goto(f"{url}/cases")
    row = page.locator(f"tr[data-case='{case_id}']")
    assert "解决 ·" in row.inner_text() and "处理中" in row.inner_text()
    # Slack's message says what the board says.
    assert "处理中" in json.dumps([root.text, root.blocks, root.attachments], ensure_ascii=False)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_lead_reopens_a_resolved_case(
    page: Page, site: tuple[str, dict[str, int]], svc: Services, slack: FakeSlack
) -> None:
    url, ids = site
    case_id = ids["P2"]
    sign_in(page, url, "lead1", f"/cases/{case_id}")
    form = page.locator("#form-resolve")
    form.locator("textarea[name=note]").fill("已退还服务费")
    form.locator("input[name=root_cause]").fill("费率页面未写明服务费")
    form.locator("select[name=satisfaction]").select_option("4")
    form.locator("button").click()
    page.wait_for_selector(".flash:has-text('已解决')")
    assert page.inner_text("#case-state") == "已解决"
    page.locator("#form-reopen input[name=reason]").fill("客户反馈退款未到账")
    page.locator("#form-reopen button").click()
    page.wait_for_selector(".flash:has-text('已重开')")
    assert page.inner_text("#case-state") == "重新打开"
    assert case_state(svc, case_id).state == "reopened"
    assert any("重开了工单：客户反馈退款未到账" in m.text for m in slack.messages)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_searching_posts(page: Page, site: tuple[str, dict[str, int]]) -> None:
    url, ids = site
    sign_in(page, url, "viewer1", "/posts")
    assert page.inner_text("#total") == "共 3 条"
    page.fill("input[name=q]", "闪退")
    page.click("button:has-text('搜索')")
    page.wait_for_url("**q=*")
    assert page.inner_text("#total") == "共 1 条"
    result = page.locator("article.post")
    assert "138****5678" in result.inner_text() and "13812345678" not in result.inner_text()
    assert result.locator(f"a[href='/cases/{ids['P3']}']").count() == 1
    assert "「闪退」不足三个字" in page.inner_text("#search-hint")
    # Three characters and more go through the full-text index, ranked by relevance.
    page.fill("input[name=q]", "登录不了")
    page.click("button:has-text('搜索')")
    page.wait_for_url("**q=%E7%99%BB*")
    assert page.inner_text("#total") == "共 1 条"
    assert page.inner_text("#search-hint").startswith("按相关度排序")
    shot(page, "posts")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_shortlisting_a_story(
    page: Page, site: tuple[str, dict[str, int]], svc: Services, appstore: FakeAppStore
) -> None:
    url, _ = site
    appstore.reviews = [
        review(7, rating=5, content="客服耐心解释了每一笔费用，提前还款也没有额外收费，点赞")
    ]
    run_source(svc, svc.settings.app.sources[0])
    sign_in(page, url, "agent1", "/stories")
    story = page.locator("article[data-story]").first
    story.locator("input[name=note]").fill("已电话联系，客户同意讲述")
    story.locator("button:has-text('加入候选')").click()
    page.wait_for_selector(".flash:has-text('已加入候选')")
    assert "★ 候选" in page.locator("article[data-story]").first.inner_text()
    shot(page, "stories")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reading_a_trend_chart(page: Page, site: tuple[str, dict[str, int]]) -> None:
    url, _ = site
    sign_in(page, url, "viewer1", "/trends")
    page.wait_for_function(
        "window.echarts && echarts.getInstanceByDom(document.getElementById('chart-months'))"
    )
    option = page.evaluate(
        "() => { const o = echarts.getInstanceByDom(document.getElementById('chart-months'))"
        ".getOption(); return {months: o.xAxis[0].data, cases: o.series[0].data}; }"
    )
    assert option["months"][-1] == "2026-11" and len(option["months"]) == 12
    # The demo complaints were published in October: the report's month rule files them there.
    assert dict(zip(option["months"], option["cases"], strict=True))["2026-10"] == 3
    assert page.inner_text("tr[data-period='2026-10'] td:nth-child(2)") == "3"
    assert page.locator("#chart-daily-grade canvas").count() == 1
    # The weeks have their table too, with 同比 (— : no week a year before was monitored).
    week = page.locator("#table-weeks tbody tr").last
    assert week.get_attribute("data-period") == "2026-W48"
    assert week.locator("td:nth-child(4)").inner_text() == "—"
    shot(page, "trends")
