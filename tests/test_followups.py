"""Follow-up calls (回访): what is due, what a call records, and what the report counts.

The month worked by hand (November 2026, Shanghai), P2 follow-ups due 2 days after
resolution, P3 after 3:

  F1 P2 resolved 11-10 10:00 by an agent who entered 2 stars; the follow-up on 11-12 reached
         the customer: 5 stars, settled -> its satisfaction is 5 (the follow-up outranks)
  F2 P2 completed on 黑猫 11-20 10:00 with 4 stars; follow-up due 11-22, never made
  F3 P3 resolved 11-15 10:00 with 3 stars; one call on 11-18 did not reach the customer
  F4 P2 resolved 11-29 12:00, no rating; its follow-up falls due 12-01 12:00, after November

  satisfaction: F1 5, F2 4, F3 3 -> 2 of 3 rated satisfied
  by channel: 回访 1 of 1; 平台评价 1 of 1; 办结时登记 F1's 2 and F3's 3 -> 0 of 2
  follow-ups due by the month's end: F1 F2 F3 = 3; customer reached: F1 -> rate 1/3
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from monitor import case_actions
from monitor.case_actions import ActionRefused, Actor
from monitor.cases import apply_deadlines
from monitor.config import Settings
from monitor.domain import PlatformState
from monitor.followups import followups_due, record_followup
from monitor.platform import apply_platform
from monitor.reports.figures import compute
from monitor.reports.period import month
from monitor.store.tables import AlertRow, CaseEventRow, CaseRow, PostRow, VerdictRow
from tests.conftest import write_config

SH = ZoneInfo("Asia/Shanghai")
AGENT = Actor("U0KEFU0001")


def at(day: int, hour: int = 10, mon: int = 11) -> datetime:
    return datetime(2026, mon, day, hour, 0, tzinfo=SH)


def open_case(s: Session, settings: Settings, n: int, grade: str, opened: datetime) -> CaseRow:
    case = CaseRow(
        severity=grade,
        state="acknowledged",
        title=f"投诉{n}",
        source="heimao",
        opened_at=opened,
        updated_at=opened,
        acknowledged_at=opened,
    )
    apply_deadlines(case, settings.policy)
    s.add(case)
    s.flush()
    assert case.id is not None
    post = PostRow(
        source="heimao",
        kind="heimao",
        external_id=f"f{n}",
        url="https://x/r",
        title=case.title,
        body="投诉内容",
        content_hash=f"f{n}",
        published_at=opened,
        fetched_at=opened,
        updated_at=opened,
        case_id=case.id,
    )
    s.add(post)
    s.flush()
    assert post.id is not None
    s.add(
        VerdictRow(
            post_id=post.id,
            content_hash=f"f{n}",
            model="test",
            sentiment="negative",
            sentiment_score=0.9,
            severity=grade,
            categories=["fees"],
            signals=[],
            reasons=[],
            created_at=opened,
        )
    )
    s.add(CaseEventRow(case_id=case.id, kind="opened", at=opened))
    return case


def resolved_case(
    s: Session, settings: Settings, n: int, grade: str, resolved: datetime, stars: int | None
) -> CaseRow:
    case = open_case(s, settings, n, grade, resolved - timedelta(hours=5))
    case_actions.resolve(s, settings, case, AGENT, resolved, note="已处理", satisfaction=stars)
    return case


def test_a_follow_up_is_due_days_after_resolution_and_overdue_later(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as s, s.begin():
        case_id = resolved_case(s, settings, 1, "P2", at(10), stars=None).id
    with Session(engine) as s:
        assert followups_due(s, settings, at(12, 9)) == []  # P2: due two days on
        upcoming = followups_due(s, settings, at(12, 9), upcoming=True)
        assert [(f.case_id, f.due_at) for f in upcoming] == [(case_id, at(12))]
        (due,) = followups_due(s, settings, at(12, 11))
        assert not due.overdue
        (late,) = followups_due(s, settings, at(14, 11))  # two more days (policy) and past
        assert late.overdue


def test_a_follow_up_sets_satisfaction_and_clears_the_list(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as s, s.begin():
        case = resolved_case(s, settings, 1, "P2", at(10), stars=2)
        said = record_followup(
            s, settings, case, AGENT, at(12, 11), reached=True, satisfaction=5, settled=True
        )
        case_id = case.id
    assert "回访已记录" in said
    with Session(engine) as s:
        got = s.get_one(CaseRow, case_id)
        assert got.state == "resolved" and got.satisfaction == 5
        assert followups_due(s, settings, at(13)) == []
        kinds = s.execute(
            select(col(CaseEventRow.kind)).where(col(CaseEventRow.case_id) == case_id)
        ).scalars()
        assert "followup" in list(kinds)
        # the case's Slack thread is told
        assert s.execute(select(AlertRow).where(col(AlertRow.case_id) == case_id)).first()


def test_a_customer_who_is_not_satisfied_reopens_the_case(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as s, s.begin():
        case = resolved_case(s, settings, 1, "P2", at(10), stars=4)
        record_followup(
            s, settings, case, AGENT, at(12, 11), reached=True, satisfaction=1, settled=False
        )
        case_id = case.id
    with Session(engine) as s:
        got = s.get_one(CaseRow, case_id)
        assert got.state == "reopened" and got.resolved_at is None
        assert got.resolve_due is not None and got.resolve_due > at(12, 11)
        events = s.execute(
            select(CaseEventRow)
            .where(col(CaseEventRow.case_id) == case_id)
            .order_by(col(CaseEventRow.id))
        ).scalars()
        assert [e.kind for e in events][-2:] == ["followup", "reopened"]
        assert followups_due(s, settings, at(20)) == []  # open again: not for a call


def test_a_call_that_does_not_reach_the_customer_keeps_it_due(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as s, s.begin():
        case = resolved_case(s, settings, 1, "P3", at(10), stars=None)
        record_followup(s, settings, case, AGENT, at(13, 11), reached=False, note="无人接听")
        with pytest.raises(ActionRefused):
            record_followup(s, settings, case, AGENT, at(13, 12), reached=False, satisfaction=3)
    with Session(engine) as s:
        (due,) = followups_due(s, settings, at(13, 12))
        assert due.attempts == 1


def test_only_a_resolved_case_takes_a_follow_up(engine: Engine, settings: Settings) -> None:
    with Session(engine) as s, s.begin():
        case = open_case(s, settings, 1, "P2", at(10))
        with pytest.raises(ActionRefused, match="尚未解决"):
            record_followup(s, settings, case, AGENT, at(11), reached=True, satisfaction=5)


def test_the_report_counts_follow_ups_first_and_each_channel_apart(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as s, s.begin():
        f1 = resolved_case(s, settings, 1, "P2", at(10), stars=2)
        record_followup(
            s, settings, f1, AGENT, at(12, 11), reached=True, satisfaction=5, settled=True
        )
        f2 = open_case(s, settings, 2, "P2", at(19))
        post = s.execute(select(PostRow).where(col(PostRow.case_id) == f2.id)).scalars().one()
        done = PlatformState(
            status="已完成", final=True, resolved=True, completed_at=at(20), satisfaction=4
        )
        apply_platform(s, settings, post, done, "处理中", at(20))
        f3 = resolved_case(s, settings, 3, "P3", at(15), stars=3)
        record_followup(s, settings, f3, AGENT, at(18, 11), reached=False)
        resolved_case(s, settings, 4, "P2", at(29, 12), stars=None)

    figures = compute(engine, settings, month("2026-11"), at(5, mon=12))
    sat = figures["satisfaction"]
    assert (sat["all"]["rated"], sat["all"]["satisfied"]) == (3, 2)
    channels = {k: (v["rated"], v["satisfied"]) for k, v in sat["by_channel"].items()}
    assert channels == {"followup": (1, 1), "platform": (1, 1), "resolve": (2, 0)}
    summary = figures["summary"]
    assert (summary["followup_due"], summary["followed_up"]) == (3, 1)
    assert summary["followup_rate"] == pytest.approx(1 / 3, abs=1e-4)


def test_the_cli_lists_due_follow_ups_and_records_one(tmp_path: Path) -> None:
    from monitor.config import load_settings
    from monitor.store.engine import make_engine, migrate
    from tests.test_cli import koubei

    config = write_config(tmp_path)
    settings = load_settings(config, env={})
    engine = make_engine(f"sqlite:///{tmp_path / 'koubei.db'}")
    migrate(engine)
    long_ago = datetime.now(SH) - timedelta(days=10)
    with Session(engine) as s, s.begin():
        case_id = resolved_case(s, settings, 1, "P2", long_ago, stars=None).id
    engine.dispose()
    env = {"KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": "", "DATABASE_URL": ""}
    listed = koubei("followups", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"#{case_id:>5}" in listed.stdout and "已逾期" in listed.stdout
    done = koubei(
        "followup",
        str(case_id),
        "--satisfaction",
        "4",
        "--settled",
        "--by",
        "U0KEFU0001",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "没有待回访的工单" in koubei("followups", env=env).stdout
    refused = koubei("followup", "999", env=env)
    assert refused.returncode == 2 and "没有工单 #999" in refused.stderr
