"""run_source end to end on SQLite and PostgreSQL: posts, verdicts, cases, alerts, no duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from monitor.alerting.slack.render import SlackRenderer
from monitor.clock import FakeClock
from monitor.domain import CaseState, Notice, Outgoing
from monitor.fakes.appstore import FakeAppStore
from monitor.page_store import PAGE
from monitor.pipeline import Services, run_source
from monitor.store.tables import (
    AlertRow,
    CaseEventRow,
    CaseRow,
    DeliveryRow,
    PostRow,
    SourceRunRow,
    SourceStateRow,
    VerdictRow,
)
from tests.conftest import review, reviews, write_config


def count(engine: Engine, table: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def posts_stored(db_url: str, engine: Engine) -> int:
    """Count without taking SQLite's write lock, so polling never waits behind the writer."""
    if db_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute("SELECT count(*) FROM posts").fetchone()[0])
    return count(engine, PostRow)


def test_a_complaint_becomes_a_case_with_deadlines_and_one_queued_alert(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    appstore.reviews = [review(1, content="催收威胁要上门，我要打12378投诉")]
    result = run_source(svc, svc.settings.app.sources[0])
    assert (result.new, result.cases_opened, result.alerts) == (1, 1, 1)
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        assert case.severity == "P1" and case.state == CaseState.OPEN
        assert case.ack_due is not None and case.ack_due - case.opened_at == (
            clock.now() - clock.now()
        ).__class__(minutes=15)
        assert s.execute(select(col(CaseEventRow.kind))).scalars().all() == ["opened"]
        delivery = s.execute(select(DeliveryRow)).scalar_one()
        assert delivery.channel == "#pr-crisis" and delivery.status == "pending"
        alert = s.execute(select(AlertRow)).scalar_one()
        # The queued notice is rendered at delivery; what Slack gets carries the alert id.
        assert alert.id is not None and delivery.id is not None
        out = Outgoing(
            delivery.id,
            alert.id,
            "post",
            delivery.channel,
            Notice.from_json(alert.payload),
            delivery.created_at,
        )
        message = SlackRenderer(svc.settings.policy).render(out)
        assert message["metadata"]["event_payload"]["alert_id"] == alert.id


def test_rerunning_stores_and_alerts_nothing_twice(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(120, content="客服电话打不通，还款失败")
    source = svc.settings.app.sources[0]
    first = run_source(svc, source)
    second = run_source(svc, source)
    assert first.new == 120 and second.new == 0 and second.alerts == 0
    assert count(svc.engine, PostRow) == 120
    assert count(svc.engine, VerdictRow) == 120
    with Session(svc.engine) as s:
        kinds = s.execute(select(col(AlertRow.kind))).scalars().all()
    # A burst of P3 cases rides in group messages: one alert per case all the same.
    assert kinds.count("new_case") == count(svc.engine, CaseRow) == 120
    assert set(kinds) == {"new_case", "group"}
    with Session(svc.engine) as s:
        runs = s.execute(select(col(SourceRunRow.status))).scalars().all()
        assert runs == ["ok", "ok"]
        state = s.get(SourceStateRow, "appstore-cn")
        assert state is not None and state.last_run_complete and state.consecutive_failures == 0


def test_concurrent_runs_of_one_source_store_one_row_per_post(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(150, content="重复扣款，不退钱")
    source = svc.settings.app.sources[0]
    errors: list[BaseException] = []

    def go() -> None:
        try:
            run_source(svc, source)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(svc.engine, PostRow) == 150
    assert count(svc.engine, VerdictRow) == 150
    assert count(svc.engine, AlertRow) == count(svc.engine, DeliveryRow) == 150


def test_an_edited_review_is_regraded_and_its_case_raised(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = [review(1, content="客服电话打不通")]
    source = svc.settings.app.sources[0]
    run_source(svc, source)
    appstore.reviews = [review(1, content="客服电话打不通，我已经向银保监会投诉了")]
    result = run_source(svc, source)
    assert result.edited == 1 and result.new == 0
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        assert case.severity == "P1"
        verdicts = (
            s.execute(select(col(VerdictRow.severity)).order_by(col(VerdictRow.id))).scalars().all()
        )
        assert verdicts == ["P3", "P1"]
        kinds = s.execute(select(col(AlertRow.kind)).order_by(col(AlertRow.id))).scalars().all()
        assert kinds == ["new_case", "regraded"]
    assert count(svc.engine, PostRow) == 1


def test_the_same_author_again_joins_the_open_case(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = [
        review(2, author="阿强", content="还是没到账，客服电话打不通"),
        review(1, author="阿强", content="放款慢，迟迟不放款"),
    ]
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.new == 2 and result.cases_opened == 1 and result.alerts == 1
    with Session(svc.engine) as s:
        case_ids = set(s.execute(select(col(PostRow.case_id))).scalars().all())
        assert len(case_ids) == 1


def test_praise_and_questions_open_no_case(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = [
        review(3, rating=5, content="催收很有礼貌，放款也快"),
        review(2, rating=3, content="请问12378是什么电话？"),
        review(1, rating=2, content="广告太多了"),
    ]
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.new == 3 and result.cases_opened == 0 and result.alerts == 0
    assert result.by_severity == {"none": 2, "P4": 1}


def test_a_process_killed_mid_run_loses_no_post_and_alerts_once(
    db_url: str, tmp_path: Path, appstore: FakeAppStore
) -> None:
    """SIGKILL while posts are being stored; the restarted run finishes the job."""
    appstore.reviews = reviews(100, content="砍头息，服务费太高")
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {**os.environ, "DATABASE_URL": db_url, "KOUBEI_CONFIG": str(config)}
    env.pop("SLACK_BOT_TOKEN", None)
    cmd = [sys.executable, "-m", "monitor", "collect", "appstore-cn"]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0

    from monitor.store.engine import make_engine

    engine = make_engine(db_url)
    appstore.add_newer(reviews(500, start=101, content="重复扣款，不退"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while posts_stored(db_url, engine) < 150 and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stored_at_kill = count(engine, PostRow)
    assert 150 <= stored_at_kill < 600, "the kill should land mid-run"
    assert (stored_at_kill - 100) % PAGE == 0, "a page is stored whole or not at all"

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert count(engine, PostRow) == 600
    cases, deliveries = count(engine, CaseRow), count(engine, DeliveryRow)
    with Session(engine) as s:
        alerts = s.execute(select(col(AlertRow.case_id))).scalars().all()
        assert len(alerts) == len(set(alerts)) == cases == deliveries
        statuses = (
            s.execute(select(col(SourceRunRow.status)).order_by(col(SourceRunRow.id)))
            .scalars()
            .all()
        )
        assert statuses == ["ok", "running", "ok"]  # the killed run is visible as such
    engine.dispose()
