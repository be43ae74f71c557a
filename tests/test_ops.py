"""Operations: `koubei backup` and its restore, `koubei status`, the logging set-up."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.case_actions import Actor, acknowledge, resolve
from monitor.clock import FakeClock
from monitor.fakes.appstore import FakeAppStore
from monitor.logs import setup_logging
from monitor.pipeline import Services, run_source
from monitor.reports.figures import compute, jsonable
from monitor.reports.period import month
from monitor.store.backup import backup_sqlite
from monitor.store.engine import make_engine
from monitor.store.leases import Leases
from monitor.store.tables import CaseRow
from tests.conftest import SLACK_TOKEN, reviews, write_config


def test_a_restored_backup_gives_the_same_months_report_figure_for_figure(
    svc: Services, appstore: FakeAppStore, clock: FakeClock, tmp_path: Path
) -> None:
    if svc.engine.dialect.name != "sqlite":
        pytest.skip("koubei backup copies SQLite; PostgreSQL uses pg_dump (README)")
    appstore.reviews = reviews(4, content="催收威胁要上门") + reviews(
        3, start=20, content="一直闪退"
    )
    run_source(svc, svc.settings.source("appstore-cn"))
    clock.advance(timedelta(minutes=20))
    with Session(svc.engine) as session, session.begin():
        cases = session.execute(select(CaseRow).order_by(col(CaseRow.id))).scalars().all()
        acknowledge(session, svc.settings, cases[0], Actor("U0ALICE001"), clock.now())
        resolve(
            session,
            svc.settings,
            cases[1],
            Actor("U0BOB0001"),
            clock.now(),
            note="已退还费用",
            satisfaction=4,
        )
    db = Path(svc.engine.url.database or "")
    copy = tmp_path / "backup" / "koubei-copy.db"
    assert backup_sqlite(db, copy) > 0  # while the service's engine is open
    with pytest.raises(Exception, match="exists already"):
        backup_sqlite(db, copy)

    # Restore: the copy put back in place of a lost database.
    # The reviews were published in October: their cases are October's (the report's rule).
    period, now = month("2026-10"), clock.now()
    before = jsonable(compute(svc.engine, svc.settings, period, now))
    svc.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, db)
    restored = make_engine(f"sqlite:///{db}")
    after = jsonable(compute(restored, svc.settings, period, now))
    restored.dispose()
    assert before["summary"]["cases"] >= 2
    assert after == before


def test_koubei_status_shows_which_instance_holds_each_job(
    tmp_path: Path, appstore: FakeAppStore
) -> None:
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {**os.environ, "KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": SLACK_TOKEN}
    env.pop("DATABASE_URL", None)
    koubei = [sys.executable, "-m", "monitor"]
    subprocess.run([*koubei, "migrate"], env=env, check=True, capture_output=True)
    engine = make_engine(f"sqlite:///{tmp_path / 'koubei.db'}")
    leases = Leases(engine, "box-a:4242:9f9f9f", ttl=60)
    lease = leases.acquire("source:appstore-cn", datetime.now(UTC))
    assert lease is not None and leases.start(lease, datetime.now(UTC))
    engine.dispose()
    out = subprocess.run([*koubei, "status"], env=env, check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("source:appstore-cn"))
    assert "box-a:4242:9f9f9f" in line and "running" in line


def test_json_logs_are_one_object_per_line_with_secrets_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", "json")
    try:
        logging.getLogger("monitor.test").warning("token %s in use", "xoxb-123-secret")
        try:
            raise RuntimeError("postgresql://koubei:hunter2@db/koubei unreachable")
        except RuntimeError:
            logging.getLogger("monitor.test").exception("store down")
    finally:
        setup_logging()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "monitor.test"
    assert lines[0]["message"] == "token xox*-*** in use"
    assert "hunter2" not in lines[1]["exception"] and "RuntimeError" in lines[1]["exception"]
