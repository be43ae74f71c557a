"""Backfill: walk back to a date, storing as it goes; an interrupted one resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from monitor.fakes.appstore import FakeAppStore
from monitor.pipeline import Services, backfill
from monitor.store.tables import PostRow, SourceStateRow
from tests.conftest import reviews, write_config


def stored(svc: Services) -> int:
    with Session(svc.engine) as s:
        return int(s.execute(select(func.count()).select_from(PostRow)).scalar_one())


def test_backfill_stops_at_the_date_and_resumes_after_a_failure(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(480)  # n minutes past 2026-10-01 00:00 Cupertino (07:00 UTC)
    source = svc.settings.app.sources[0]
    since = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)  # = review 180: older ones are left out
    appstore.quirks.statuses[4] = [503] * 10  # page 4 fails: the backfill is cut short
    first = backfill(svc, source, since)
    assert not first.ok and first.new == 150 and stored(svc) == 150
    appstore.quirks.statuses.clear()
    seen: list[str] = []
    second = backfill(svc, source, since, progress=lambda post: seen.append(post.external_id))
    assert second.ok and second.new == 301 - 150 and stored(svc) == 301
    assert len(seen) == 301  # the bar counts every post read, stored before or not
    with Session(svc.engine) as s:
        state = s.get_one(SourceStateRow, "appstore-cn")
        assert state.memory["backfill"]["complete"] is True
        assert state.memory["backfill"]["oldest"] == "2026-10-01T10:00:00+00:00"
        assert state.last_run_complete is False  # the next scheduled run pages back fully


def test_collect_since_from_the_command_line(tmp_path: Path, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(120)
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {**os.environ, "KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": ""}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "collect", "appstore-cn", "--since", "2026-10-01"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "backfill read 120 posts back to 2026-10-01, new 120" in result.stdout
    assert "backfilling appstore-cn" in result.stderr  # the progress bar
    bad = subprocess.run(
        [sys.executable, "-m", "monitor", "collect", "appstore-cn", "--since", "yesterday"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "2026-10-01" in bad.stderr
