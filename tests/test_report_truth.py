"""The report tells the truth on a first real month: backfilled complaints, platform
times earlier than Koubei's, deadlines still running, monitoring begun mid-month.

Monitoring began 2026-11-20 10:00 (Shanghai): appstore-cn then ran every 30 minutes.
Its first collections found older complaints on 黑猫 (a backfill). Times are Shanghai
local; "filed" is the publish time of the case's post, "opened" when Koubei found it.

  K1 P2 heimao   filed 11-05 09:00, platform replied 15:00, completed 11-07 09:00 with
                 5 stars; opened 11-20 10:05 (found by the backfill)
  K2 P1 appstore filed 11-21 08:00, opened 08:30, ack 08:40, reply 10:30,
                 resolved 11-22 08:00, 2 stars, owner U0LINA0001
  K3 P1 appstore filed 11-30 22:00, opened 22:10, nothing done
  K4 P3 appstore filed 11-30 23:00, opened 23:05, nothing done (nothing due in November)
  K5 P2 heimao   filed 10-20 10:00 (October's), opened 11-20 10:06, completed 11-21 10:00
                 with 5 stars
  K6 P3 heimao   filed 11-10 12:00, the platform's reply stamped 11:00 (its clock is an
                 hour behind), opened 11-20 10:07, completed 11-28 12:00 with 4 stars:
                 18 days after filing, 8 days after Koubei found it
  K7 P3 appstore filed 11-25 09:00, opened 09:10, ack 09:30, reply 12:30, resolved
                 12-02 10:00 with 5 stars (after November ended)

November worked by hand, as of its end (12-01 00:00):
  cases K1 K2 K3 K4 K6 K7 = 6 (K5 was filed in October); posts published 6
  responded K1 K2 K6 K7 = 4/6; resolved K1 K2 K6 = 3/6
  on time: K1 (resolve due 11-23 10:05), K2 (due 11-22 08:30); K6 was due 11-25 10:07: 2/6
  15 days from filing: K1 (2 days), K2 (1 day); K6 took 18: 2/6
  satisfaction: K1 5, K2 2, K6 4 stars -> 2 of 3 (K7's rating came in December)
  first response from filing: K1 6 h, K2 2.5 h, K6 -1 h -> 0 (counted as clamped),
    K7 3.5 h -> mean 3.0, median 3.0, p90 6.0
  resolution from filing: K1 48 h, K2 24 h, K6 432 h -> mean 168.0, median 48.0, p90 432.0
  SLA: P1 K2 met, K3 missed its 22:25 acknowledgement -> 1 met, 1 breached;
       P2 K1 met (the platform had replied and closed before Koubei's clocks began);
       P3 K6 acknowledged (by its completion) and resolved late, K7 resolved after its
       11-30 09:10 deadline, K4 open -> 0 met, 2 breached, 1 open
October: K5 only, not yet completed at October's end; no source had run: no comparison.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from monitor.cases import apply_deadlines
from monitor.config import Settings
from monitor.reports.figures import compute
from monitor.reports.period import FuturePeriod, month
from monitor.reports.run import make_report
from monitor.store.tables import CaseEventRow, CaseRow, PostRow, SourceRunRow, VerdictRow
from tests.conftest import write_config

SH = ZoneInfo("Asia/Shanghai")
MONITORING_START = datetime(2026, 11, 20, 10, 0, tzinfo=SH)
AFTER = datetime(2026, 12, 5, 9, 0, tzinfo=SH)
NOV_END = datetime(2026, 12, 1, 0, 0, tzinfo=SH)


def at(month_day: str, hm: str) -> datetime:
    mo, d = (int(x) for x in month_day.split("-"))
    h, mi = (int(x) for x in hm.split(":"))
    return datetime(2026, mo, d, h, mi, tzinfo=SH)


@dataclass
class Spec:
    grade: str
    source: str
    filed: datetime
    opened: datetime
    category: str
    title: str = "投诉"
    ack: datetime | None = None
    reply: datetime | None = None
    resolved: datetime | None = None
    stars: int | None = None
    owner: str | None = None


SPECS = {
    "K1": Spec(
        "P2",
        "heimao",
        at("11-05", "09:00"),
        at("11-20", "10:05"),
        "fees",
        ack=at("11-07", "09:00"),  # a platform completion acknowledges the case too
        reply=at("11-05", "15:00"),
        resolved=at("11-07", "09:00"),
        stars=5,
    ),
    "K2": Spec(
        "P1",
        "appstore-cn",
        at("11-21", "08:00"),
        at("11-21", "08:30"),
        "collection",
        ack=at("11-21", "08:40"),
        reply=at("11-21", "10:30"),
        resolved=at("11-22", "08:00"),
        stars=2,
        owner="U0LINA0001",
    ),
    "K3": Spec(
        "P1",
        "appstore-cn",
        at("11-30", "22:00"),
        at("11-30", "22:10"),
        "collection",
        title='=HYPERLINK("http://evil.example","点我")',
    ),
    "K4": Spec(
        "P3", "appstore-cn", at("11-30", "23:00"), at("11-30", "23:05"), "app", title="@SUM(A1)"
    ),
    "K5": Spec(
        "P2",
        "heimao",
        at("10-20", "10:00"),
        at("11-20", "10:06"),
        "fees",
        ack=at("11-21", "10:00"),
        resolved=at("11-21", "10:00"),
        stars=5,
    ),
    "K6": Spec(
        "P3",
        "heimao",
        at("11-10", "12:00"),
        at("11-20", "10:07"),
        "deduction",
        title="-1+1 扣款",
        ack=at("11-28", "12:00"),
        reply=at("11-10", "11:00"),
        resolved=at("11-28", "12:00"),
        stars=4,
    ),
    "K7": Spec(
        "P3",
        "appstore-cn",
        at("11-25", "09:00"),
        at("11-25", "09:10"),
        "service",
        title="+86 客服不理人",
        ack=at("11-25", "09:30"),
        reply=at("11-25", "12:30"),
        resolved=at("12-02", "10:00"),
        stars=5,
    ),
}


def add_case(s: Session, settings: Settings, n: int, spec: Spec) -> int:
    case = CaseRow(
        severity=spec.grade,
        state="open",
        title=spec.title,
        source=spec.source,
        opened_at=spec.opened,
        updated_at=spec.opened,
        owner=spec.owner,
        acknowledged_at=spec.ack,
        first_response_at=spec.reply,
        resolved_at=spec.resolved,
        satisfaction=spec.stars,
        resolution_note="已处理" if spec.resolved else None,
    )
    if spec.resolved:
        case.state = "resolved"
    elif spec.ack:
        case.state = "acknowledged"
    apply_deadlines(case, settings.policy)
    s.add(case)
    s.flush()
    assert case.id is not None
    post = PostRow(
        source=spec.source,
        kind="heimao" if spec.source == "heimao" else "appstore",
        external_id=f"k{n}",
        url="https://x/r",
        title=spec.title,
        body="投诉内容",
        rating=1 if spec.source == "appstore-cn" else None,
        content_hash=f"k{n}",
        published_at=spec.filed,
        fetched_at=spec.opened,
        updated_at=spec.opened,
        case_id=case.id,
    )
    s.add(post)
    s.flush()
    assert post.id is not None
    s.add(
        VerdictRow(
            post_id=post.id,
            content_hash=f"k{n}",
            model="test",
            sentiment="negative",
            sentiment_score=0.9,
            severity=spec.grade,
            categories=[spec.category],
            signals=[],
            reasons=[],
            created_at=spec.opened,
        )
    )
    s.add(CaseEventRow(case_id=case.id, kind="opened", at=spec.opened))
    if spec.resolved:
        s.add(CaseEventRow(case_id=case.id, kind="resolved", at=spec.resolved))
    return case.id


@pytest.fixture
def first_month(engine: Engine, settings: Settings) -> dict[str, int]:
    with Session(engine) as s, s.begin():
        ids = {name: add_case(s, settings, n, spec) for n, (name, spec) in enumerate(SPECS.items())}
        run_at = MONITORING_START
        while run_at < AFTER:
            s.add(
                SourceRunRow(
                    source="appstore-cn",
                    started_at=run_at,
                    finished_at=run_at,
                    status="ok",
                    fetched=1,
                )
            )
            run_at += timedelta(minutes=30)
    return ids


def test_a_first_month_worked_by_hand(
    engine: Engine, settings: Settings, first_month: dict[str, int]
) -> None:
    f = compute(engine, settings, month("2026-11"), AFTER)
    s = f["summary"]
    assert s["cases"] == 6 and s["posts_collected"] == 6 and s["case_posts"] == 6
    assert (s["responded"], s["response_rate"]) == (4, round(4 / 6, 4))
    assert (s["resolved"], s["handling_rate"]) == (3, 0.5)
    assert s["on_time_rate"] == round(2 / 6, 4)
    assert s["fifteen_day_rate"] == round(2 / 6, 4)  # K6: 8 days after opening, 18 after filing
    assert (s["rated"], s["satisfaction_rate"]) == (3, round(2 / 3, 4))
    assert f["response_time"] == {
        "count": 4,
        "mean_h": 3.0,
        "median_h": 3.0,
        "p90_h": 6.0,
        "clamped": 1,
    }
    assert f["resolution_time"] == {
        "count": 3,
        "mean_h": 168.0,
        "median_h": 48.0,
        "p90_h": 432.0,
        "clamped": 0,
    }
    sla = {g: {k: v for k, v in b.items() if k != "breaches"} for g, b in f["sla"].items()}
    assert sla == {
        "P1": {"cases": 2, "met": 1, "breached": 1, "open": 0, "rate": 0.5},
        "P2": {"cases": 1, "met": 1, "breached": 0, "open": 0, "rate": 1.0},
        "P3": {"cases": 3, "met": 0, "breached": 2, "open": 1, "rate": 0.0},
    }
    ids = first_month
    missed = {b["case_id"]: b["missed"] for g in f["sla"].values() for b in g["breaches"]}
    assert missed == {ids["K3"]: ["确认"], ids["K6"]: ["确认", "解决"], ids["K7"]: ["解决"]}
    assert f["by_category"] == {"collection": 2, "fees": 1, "app": 1, "deduction": 1, "service": 1}
    assert f["satisfaction"]["by_source"] == {
        "appstore-cn": {"rated": 1, "satisfied": 0, "rate": 0.0},
        "heimao": {"rated": 2, "satisfied": 2, "rate": 1.0},
    }
    october = compute(engine, settings, month("2026-10"), AFTER)
    # K5 belongs to the month its customer filed it in, with its own post.
    assert october["summary"]["cases"] == 1 and october["summary"]["posts_collected"] == 1
    assert october["summary"]["resolved"] == 0  # completed on 11-21, after October ended


def test_the_report_shows_times_from_filing_and_no_comparison_before_monitoring(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    result = make_report(engine, settings, month("2026-11"), AFTER, out_root=tmp_path)
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    html = result.written.html.read_text(encoding="utf-8")
    assert figures["response_time"]["mean_h"] == 3.0
    assert 'data-figure="response_time.mean_h">3<' in html
    assert 'data-figure="resolution_time.mean_h">168<' in html
    # October had no monitoring at all: no month-on-month change is claimed.
    assert figures["previous"]["comparable"] is False
    changes = re.findall(r'<div class="d">环比 ([^<]+)</div>', html)
    assert changes and set(changes) == {"无可比数据"}
    assert all("环比 无可比数据" in line for line in result.summary.splitlines() if "：" in line)
    # Monitoring began mid-month: that is said, and the weeks before are no coverage gap.
    health = figures["source_health"][0]
    assert health["source"] == "appstore-cn" and health["gap"] is False
    assert datetime.fromisoformat(health["monitored_from"]) == MONITORING_START
    assert "数据缺口" not in html and "数据缺口" not in result.summary
    assert "监测自 2026-11-20 10:00 起" in html and "监测自 2026-11-20 10:00 起" in result.summary
    # Section 七 shows the counts, not a Python method.
    row = re.search(r'<tr data-source="appstore-cn">(.*?)</tr>', html)
    assert row is not None and "built-in" not in html
    # 10 days 14 hours of runs every 30 minutes, one item each.
    cells = re.findall(r'<td class="n">([^<]+)</td>', row.group(1))
    assert cells == ["508", "508", "0", "508", "0.5"]
    assert "归属规则" in html  # the one rule is stated in the report's own notes


def test_a_real_outage_after_monitoring_began_is_still_a_gap(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    with Session(engine) as s, s.begin():
        s.execute(
            delete(SourceRunRow).where(
                col(SourceRunRow.started_at) >= at("11-25", "00:00"),
                col(SourceRunRow.started_at) < at("11-25", "06:00"),
            )
        )
    f = compute(engine, settings, month("2026-11"), AFTER)
    assert f["source_health"][0]["gap"] is True
    assert f["source_health"][0]["longest_gap_h"] == 6.5  # 11-24 23:30 to 11-25 06:00


def test_a_month_without_cases_has_no_satisfaction(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    # K7, a November case, was rated 5 stars on 12-02: that rating is November's.
    result = make_report(engine, settings, month("2026-12"), AFTER, out_root=tmp_path)
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert figures["summary"]["cases"] == 0 and figures["summary"]["satisfaction_rate"] is None
    html = result.written.html.read_text(encoding="utf-8")
    shown = dict(
        re.findall(r'data-figure="(\w+)"><div>[^<]+</div><div class="v">([^<]+)</div>', html)
    )
    assert shown["satisfaction_rate"] == "无评价"
    assert "满意度：无评价" in result.summary


def test_a_running_month_is_partial_and_running_deadlines_are_open(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    now = at("11-30", "22:20")  # K3 opened at 22:10: its 15 minutes are still running
    result = make_report(engine, settings, month("2026-11"), now, out_root=tmp_path)
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert figures["period"]["partial"] is True
    p1 = figures["sla"]["P1"]
    assert (p1["met"], p1["breached"], p1["open"]) == (1, 0, 1)  # K2 met, K3 not yet due
    k3 = next(c for c in figures["cases"] if c["case_id"] == first_month["K3"])
    assert k3["sla"] == "open" and k3["open_deadlines"] == ["确认", "首次回应", "解决"]
    html = result.written.html.read_text(encoding="utf-8")
    assert "本期未结束" in html and "截至 2026-11-30 22:20" in html
    assert 'data-figure="sla.P1.open">1<' in html
    assert "截至 2026-11-30 22:20，本期未结束" in result.summary.splitlines()[0]


def test_a_future_month_is_refused(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    with pytest.raises(FuturePeriod, match="2026-12"):
        make_report(engine, settings, month("2026-12"), at("11-30", "22:20"), out_root=tmp_path)
    assert not (tmp_path / "2026-12").exists()


def test_the_cli_refuses_a_future_month_with_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "report", "--month", "2099-01", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "KOUBEI_CONFIG": str(config)},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "2099-01" in result.stderr and "nothing to report yet" in result.stderr
    assert not (tmp_path / "2099-01").exists()


def test_cases_csv_cannot_run_formulas_and_shows_owner_and_deadlines(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    result = make_report(engine, settings, month("2026-11"), AFTER, out_root=tmp_path)
    assert result.written.csv is not None
    with result.written.csv.open(encoding="utf-8-sig") as fh:
        rows = {int(r["case_id"]): r for r in csv.DictReader(fh)}
    ids = first_month
    assert rows[ids["K3"]]["title"] == '\'=HYPERLINK("http://evil.example","点我")'
    assert rows[ids["K4"]]["title"] == "'@SUM(A1)"
    assert rows[ids["K6"]]["title"] == "'-1+1 扣款"
    assert rows[ids["K7"]]["title"] == "'+86 客服不理人"
    k2 = rows[ids["K2"]]
    assert k2["owner"] == "U0LINA0001"
    assert k2["filed_at"] == "2026-11-21T08:00:00+08:00"
    assert (k2["ack_due"], k2["response_due"], k2["resolve_due"]) == (
        "2026-11-21T08:45:00+08:00",
        "2026-11-21T12:30:00+08:00",
        "2026-11-22T08:30:00+08:00",
    )
    no_formula = ("=", "+", "-", "@", "\t", "\r")
    assert not any(v.startswith(no_formula) for r in rows.values() for v in r.values() if v)


def test_the_public_version_is_a_disclosure(
    engine: Engine, settings: Settings, first_month: dict[str, int], tmp_path: Path
) -> None:
    with Session(engine) as s, s.begin():  # a real outage: the internal report shows it
        s.execute(
            delete(SourceRunRow).where(
                col(SourceRunRow.started_at) >= at("11-25", "00:00"),
                col(SourceRunRow.started_at) < at("11-25", "06:00"),
            )
        )
    result = make_report(engine, settings, month("2026-11"), AFTER, public=True, out_root=tmp_path)
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert set(figures) == {
        "period",
        "monitoring",
        "summary",
        "by_category",
        "response_time",
        "resolution_time",
        "satisfaction",
        "previous",
    }
    assert figures["summary"]["cases"] == 6 and figures["summary"]["handling_rate"] == 0.5
    assert figures["by_category"]["collection"] == 2
    assert set(figures["satisfaction"]) == {"all"}
    html = result.written.html.read_text(encoding="utf-8")
    text = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    for internal in ("P1", "P2", "P3", "appstore-cn", "heimao", "数据缺口", "SLA", "按时办结率"):
        assert internal not in text, internal
        assert internal not in result.summary, internal
    assert "催收" in text and "办结率" in text and "满意度" in text
    assert "地区" in text  # it says why there is no region breakdown
