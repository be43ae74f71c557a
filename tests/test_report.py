"""The monthly report: every figure checked against values worked out by hand.

The month (2026-11, Asia/Shanghai) holds these cases; times are Shanghai local
and are when Koubei opened the case. Each case's first post was published 20
minutes earlier: that is its filing time, which places it in a month and
starts its response and resolution times.
  A P1 11-03 10:00  ack +10 min, reply +2 h, resolved +20 h, 5 stars      SLA met
  B P2 11-05 09:00  ack +30 min, reply +10 h (due 8 h), resolved +2 days, 2 stars
  C P2 11-10 12:00  ack +2 h (due 1 h), no reply, not resolved (due 11-13)
  D P3 11-20 08:00  ack +1 h, reply +10 h, resolved +10 h, reopened 11-22: not resolved
  E P1 11-01 00:30  (16:30 UTC on 10-31: November in Shanghai) public reply and
                    resolution +3 h, 4 stars                              SLA met
  F P2 10-31 23:30  (October in Shanghai) resolved 11-02 10:00, 5 stars
  G P1 11-15        marked false positive: excluded
  H P2 11-25 09:00  two posts (App Store and 黑猫) merged into one case, ack +20 min,
                    no reply, not resolved (due 11-28)
  I P3 11-30 23:00  an hour before the month ends: nothing due yet (SLA open)
Every source has run since 09-30, so October is a month that can be compared.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.alerting.wecom import WeComSink
from monitor.cases import apply_deadlines
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.domain import MARK, Notice, Outgoing
from monitor.fakes.slack import FakeSlack
from monitor.reports import charts
from monitor.reports.figures import compute
from monitor.reports.period import iso_week, last_complete, month
from monitor.reports.run import make_report, queue_report_post
from monitor.store.tables import (
    AlertRow,
    CaseEventRow,
    CaseRow,
    DeliveryRow,
    PostRow,
    SourceRunRow,
    VerdictRow,
)
from tests.conftest import SLACK_TOKEN

SH = ZoneInfo("Asia/Shanghai")
AFTER_MONTH = datetime(2026, 12, 5, 9, 0, tzinfo=SH)


def local(month_day: str, hm: str = "00:00") -> datetime:
    mo, d = (int(x) for x in month_day.split("-"))
    h, mi = (int(x) for x in hm.split(":"))
    return datetime(2026, mo, d, h, mi, tzinfo=SH)


class Builder:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings, self.n = engine, settings, 0

    def post(
        self,
        s: Session,
        case_id: int | None,
        at: datetime,
        source: str,
        rating: int | None,
        categories: list[str],
        sentiment: str = "negative",
        text: str = "投诉内容",
    ) -> None:
        self.n += 1
        post = PostRow(
            source=source,
            kind="appstore",
            external_id=str(self.n),
            url="https://x/r",
            title=f"标题{self.n}",
            body=f"{text}，电话13812345678",
            rating=rating,
            app_version="5.2.0" if self.n % 2 else "5.3.0",
            content_hash=str(self.n),
            published_at=at,
            fetched_at=at,
            updated_at=at,
            case_id=case_id,
        )
        s.add(post)
        s.flush()
        assert post.id is not None
        s.add(
            VerdictRow(
                post_id=post.id,
                content_hash=str(self.n),
                model="test",
                sentiment=sentiment,
                sentiment_score=0.9,
                severity="P2",
                categories=categories,
                signals=[],
                reasons=[],
                created_at=at,
            )
        )

    def case(
        self,
        grade: str,
        opened: datetime,
        categories: list[str],
        *,
        source: str = "appstore-cn",
        ack: timedelta | None = None,
        reply: timedelta | None = None,
        resolved: timedelta | None = None,
        stars: int | None = None,
        reopened: timedelta | None = None,
        false_positive: bool = False,
        extra_post: tuple[str, list[str]] | None = None,
        rating: int = 1,
    ) -> int:
        with Session(self.engine) as s, s.begin():
            case = CaseRow(
                severity=grade,
                state="open",
                title=f"{grade} 工单",
                source=source,
                opened_at=opened,
                updated_at=opened,
            )
            apply_deadlines(case, self.settings.policy)
            s.add(case)
            s.flush()
            assert case.id is not None
            self.post(s, case.id, opened - timedelta(minutes=20), source, rating, categories)
            if extra_post:
                self.post(
                    s, case.id, opened + timedelta(hours=1), extra_post[0], None, extra_post[1]
                )
            if ack:
                case.acknowledged_at, case.state = opened + ack, "acknowledged"
            if reply:
                case.first_response_at = opened + reply
            if resolved:
                case.resolved_at, case.state = opened + resolved, "resolved"
                case.satisfaction = stars
                case.resolution_note = f"{grade} 已处理，回访客户 13912345678"
                s.add(CaseEventRow(case_id=case.id, kind="resolved", at=opened + resolved))
            if reopened:
                case.state, case.resolved_at = "reopened", None
                s.add(CaseEventRow(case_id=case.id, kind="reopened", at=opened + reopened))
            if false_positive:
                case.state = "false_positive"
            return case.id


@pytest.fixture
def month_of_cases(engine: Engine, settings: Settings) -> dict[str, int]:
    b = Builder(engine, settings)
    ids = {
        "A": b.case(
            "P1",
            local("11-03", "10:00"),
            ["collection"],
            ack=timedelta(minutes=10),
            reply=timedelta(hours=2),
            resolved=timedelta(hours=20),
            stars=5,
        ),
        "B": b.case(
            "P2",
            local("11-05", "09:00"),
            ["fees"],
            ack=timedelta(minutes=30),
            reply=timedelta(hours=10),
            resolved=timedelta(days=2),
            stars=2,
        ),
        "C": b.case("P2", local("11-10", "12:00"), ["deduction"], ack=timedelta(hours=2), rating=2),
        "D": b.case(
            "P3",
            local("11-20", "08:00"),
            ["app"],
            ack=timedelta(hours=1),
            reply=timedelta(hours=10),
            resolved=timedelta(hours=10),
            reopened=timedelta(days=2),
            rating=2,
        ),
        "E": b.case(
            "P1",
            local("11-01", "00:30"),
            ["collection", "privacy"],
            ack=timedelta(minutes=5),
            reply=timedelta(hours=3),
            resolved=timedelta(hours=3),
            stars=4,
        ),
        "F": b.case(
            "P2",
            local("10-31", "23:30"),
            ["fees"],
            ack=timedelta(minutes=20),
            reply=timedelta(hours=2),
            resolved=local("11-02", "10:00") - local("10-31", "23:30"),
            stars=5,
        ),
        "G": b.case("P1", local("11-15", "12:00"), ["collection"], false_positive=True, rating=3),
        "H": b.case(
            "P2",
            local("11-25", "09:00"),
            ["fees"],
            source="heimao",
            ack=timedelta(minutes=20),
            extra_post=("heimao", ["fees", "fraud"]),
        ),
        "I": b.case("P3", local("11-30", "23:00"), ["approval"], rating=2),
    }
    with Session(engine) as s, s.begin():
        b.post(s, None, local("11-12", "15:00"), "appstore-cn", 5, [], sentiment="positive")
        for source in settings.app.sources:
            at = local("09-30", "12:00")
            s.add(SourceRunRow(source=source.name, started_at=at, finished_at=at, status="ok"))
    return ids


def test_every_figure_matches_the_hand_worked_values(
    engine: Engine, settings: Settings, month_of_cases: dict[str, int]
) -> None:
    f = compute(engine, settings, month("2026-11"), AFTER_MONTH)
    s = f["summary"]
    assert s["cases"] == 7  # A B C D E H I; F is October's, G a false positive
    assert s["case_posts"] == 8  # H's two posts are one case
    assert s["posts_collected"] == 10 and s["negative_posts"] == 9
    assert (s["responded"], s["response_rate"]) == (4, round(4 / 7, 4))
    assert (s["resolved"], s["handling_rate"]) == (3, round(3 / 7, 4))  # D was reopened
    assert s["on_time_rate"] == round(3 / 7, 4) and s["fifteen_day_rate"] == round(3 / 7, 4)
    # Ratings belong with their case's month: A 5, B 2, E 4 (F's 5 stars are October's).
    assert (s["rated"], s["satisfaction_rate"]) == (3, round(2 / 3, 4))
    # Posts are numbered as built; odd ones are on app 5.2.0: A (post 1, 5 stars) and
    # E (post 5, 4 stars); B (post 2, 2 stars) is on 5.3.0.
    assert f["satisfaction"]["by_app_version"] == {
        "5.2.0": {"rated": 2, "satisfied": 2, "rate": 1.0},
        "5.3.0": {"rated": 1, "satisfied": 0, "rate": 0.0},
    }
    assert f["by_grade"] == {"P1": 2, "P2": 3, "P3": 2}
    assert f["by_source"] == {"appstore-cn": 6, "heimao": 1}
    assert f["by_category"] == {
        "collection": 2,
        "fees": 2,
        "deduction": 1,
        "app": 1,
        "privacy": 1,
        "fraud": 1,
        "approval": 1,
    }
    sla = f["sla"]
    assert (sla["P1"]["met"], sla["P1"]["breached"], sla["P1"]["rate"]) == (2, 0, 1.0)
    assert (sla["P2"]["met"], sla["P2"]["breached"], sla["P2"]["rate"]) == (0, 3, 0.0)
    # I has nothing due yet: open, neither met nor breached; D missed its resolution.
    assert (sla["P3"]["met"], sla["P3"]["breached"], sla["P3"]["open"]) == (0, 1, 1)
    assert sla["P3"]["rate"] == 0.0
    breaches = {b["case_id"]: b["missed"] for g in sla.values() for b in g["breaches"]}
    ids = month_of_cases
    assert breaches == {
        ids["B"]: ["首次回应"],
        ids["C"]: ["确认", "首次回应", "解决"],
        ids["D"]: ["解决"],
        ids["H"]: ["首次回应", "解决"],
    }
    # From filing (20 min before opening): A 2h20, B 10h20, D 10h20, E 3h20.
    assert f["response_time"] == {
        "count": 4,
        "mean_h": 6.58,
        "median_h": 6.83,
        "p90_h": 10.33,
        "clamped": 0,
    }
    # A 20h20, B 48h20, E 3h20.
    assert f["resolution_time"] == {
        "count": 3,
        "mean_h": 24.0,
        "median_h": 20.33,
        "p90_h": 48.33,
        "clamped": 0,
    }
    assert f["ratings"]["all"] == {"count": 9, "average": 2.0, "share_4_5": round(1 / 9, 4)}
    day1 = next(d for d in f["daily"] if d["day"] == "2026-11-01")
    assert day1 == {"day": "2026-11-01", "posts": 1, "negative_share": 1.0, "average_rating": 1.0}
    assert len(f["daily"]) == 30
    assert {a["case_id"] for a in f["actions"]} == {ids["A"], ids["B"], ids["E"]}
    assert all("13912345678" not in a["note"] for a in f["actions"])  # masked
    examples = [e for t in f["top_causes"] for e in t["examples"]]
    assert examples and all("138****5678" in e for e in examples)


def test_previous_month_and_change(
    engine: Engine, settings: Settings, month_of_cases: dict[str, int]
) -> None:
    october = compute(engine, settings, month("2026-10"), AFTER_MONTH)["summary"]
    assert october["cases"] == 1 and october["handling_rate"] == 0.0  # F was open at October's end
    assert october["rated"] == 0 and october["satisfaction_rate"] is None


def test_report_files_reconcile(
    engine: Engine, settings: Settings, month_of_cases: dict[str, int], tmp_path: Path
) -> None:
    result = make_report(engine, settings, month("2026-11"), AFTER_MONTH, out_root=tmp_path)
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert result.written.csv is not None
    with result.written.csv.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    html = result.written.html.read_text(encoding="utf-8")
    s = figures["summary"]
    assert len(rows) == s["cases"] == len(figures["cases"])
    assert sum(r["resolved"] == "True" for r in rows) == s["resolved"]
    assert sum(r["on_time"] == "True" for r in rows) == round(s["on_time_rate"] * s["cases"])
    assert {int(r["case_id"]) for r in rows} == {c["case_id"] for c in figures["cases"]}
    shown = dict(
        re.findall(r'data-figure="(\w+)"><div>[^<]+</div><div class="v">([^<]+)</div>', html)
    )
    assert shown["cases"] == str(s["cases"])
    assert shown["handling_rate"] == f"{s['handling_rate'] * 100:.1f}%"
    assert shown["satisfaction_rate"] == f"{s['satisfaction_rate'] * 100:.1f}%"
    assert "环比 +42.9 个百分点" in html  # handling rate: October 0%, November 42.9%
    assert result.written.pdf.read_bytes().startswith(b"%PDF")
    assert "13812345678" not in html and "13812345678" not in result.written.csv.read_text(
        "utf-8-sig"
    )


def test_public_version_has_aggregates_only(
    engine: Engine, settings: Settings, month_of_cases: dict[str, int], tmp_path: Path
) -> None:
    result = make_report(
        engine, settings, month("2026-11"), AFTER_MONTH, public=True, out_root=tmp_path
    )
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert "cases" not in figures and "top_causes" not in figures and "actions" not in figures
    assert "sla" not in figures and "by_grade" not in figures  # internal grades and deadlines
    html = result.written.html.read_text(encoding="utf-8")
    assert "公开版" in html and "标题" not in html and "工单 #" not in html and "已处理" not in html
    assert result.written.csv is None and not (tmp_path / "2026-11" / "cases.csv").exists()


def test_an_empty_period_says_so(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    result = make_report(engine, settings, month("2025-01"), AFTER_MONTH, out_root=tmp_path)
    assert result.empty
    figures = json.loads(result.written.figures.read_text(encoding="utf-8"))
    assert figures["summary"]["handling_rate"] is None
    assert "本期无投诉工单" in result.written.html.read_text(encoding="utf-8")


def test_report_goes_to_the_executives_channel_with_the_pdf(
    engine: Engine,
    settings: Settings,
    month_of_cases: dict[str, int],
    tmp_path: Path,
    slack: FakeSlack,
    clock: FakeClock,
) -> None:
    result = make_report(engine, settings, month("2026-11"), AFTER_MONTH, out_root=tmp_path)
    assert queue_report_post(engine, settings, result, clock.now())
    assert not queue_report_post(engine, settings, result, clock.now())  # once
    drain_outbox(
        engine,
        SlackSink.from_config(SLACK_TOKEN, settings.app.slack, settings.policy),
        settings.app.outbox,
        clock,
    )
    assert len(slack.uploads) == 1
    upload = slack.uploads[0]
    assert upload["channel"] == "C0EXECRE01" and upload["bytes"].startswith(b"%PDF")
    assert "办结率：42.9%" in upload["initial_comment"]
    # The title is marked bold in the notice; each sink writes bold its own way.
    assert upload["initial_comment"].startswith("*消费者权益保护报告 · 2026年11月*")
    assert MARK not in upload["initial_comment"]
    with Session(engine) as s:
        alert = s.execute(
            select(AlertRow).where(col(AlertRow.dedup_key).startswith("report:"))
        ).scalar_one()
        delivery = s.execute(
            select(DeliveryRow).where(col(DeliveryRow.alert_id) == alert.id)
        ).scalar_one()
    notice = Notice.from_json(alert.payload)
    out = Outgoing(delivery.id or 0, alert.id or 0, "post", "pr-wecom", notice, clock.now())
    wecom = WeComSink.connect("pr-wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")
    content = str(wecom.render(out)["markdown"])
    assert "消费者权益保护报告 · 2026年11月" in content and MARK not in content
    assert "*消费者" not in content  # no Slack bold leaking into the robot's markdown
    # The title line is the report's title; the figures follow in the body.
    markdown = wecom.render(out)["markdown"]
    assert isinstance(markdown, dict)
    title, _, body = str(markdown["content"]).partition("\n")
    assert "2026年11月" in title and "办结率" not in title and "办结率" in body


def test_chinese_labels_render_with_a_cjk_font() -> None:
    assert charts.cjk_font()  # raises with the install command when missing
    svg = charts.bar_chart("投诉分类", {"催收": 3, "息费": 2})  # warnings are errors here:
    assert svg.startswith("<svg")  # a missing glyph would have failed the test


def test_periods_in_shanghai_time() -> None:
    nov = month("2026-11")
    assert nov.start.isoformat() == "2026-10-31T16:00:00+00:00"
    assert nov.previous().key == "2026-10" and month("2026-01").previous().key == "2025-12"
    w = iso_week("2026-W48")
    assert w.start_local.date().isoformat() == "2026-11-23" and len(w.days) == 7
    assert w.previous().key == "2026-W47"
    assert last_complete("month", datetime(2026, 12, 1, 9, 0, tzinfo=SH)).key == "2026-11"
    assert last_complete("week", datetime(2026, 11, 30, 9, 0, tzinfo=SH)).key == "2026-W48"
    with pytest.raises(ValueError, match="2026-11"):
        month("2026-13")
