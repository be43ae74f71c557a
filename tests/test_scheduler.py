"""The scheduler's wiring, and `koubei run` as a real process against the fakes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitor.alerting.sinks import ConsoleSink
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services
from monitor.scheduler import build_scheduler, jobs
from tests.conftest import SLACK_TOKEN, reviews, write_config


def test_jobs_per_source_outbox_and_digest_in_shanghai_time(svc: Services, tmp_path: Path) -> None:
    scheduler = build_scheduler(svc, ConsoleSink(tmp_path / "a.jsonl"))
    looked_at = {job.id: job for job in scheduler.get_jobs()}
    specs = {job.name: job for job in jobs(svc, ConsoleSink(tmp_path / "a.jsonl"), "me")}
    assert set(specs) == {
        "source:appstore-cn",
        "outbox",
        "digest",
        "sla",
        "surge",
        "watchdog",
        "report:month",
        "report:week",
        "stories:week",
    }
    # Every job is looked at on every instance, the lease renewal too, at most a tick apart.
    assert set(looked_at) == set(specs) | {"leases"}
    for job in looked_at.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.trigger.interval.total_seconds() <= 60 / 4
    assert str(scheduler.timezone) == "Asia/Shanghai"
    source = specs["source:appstore-cn"].every
    assert source is not None and source.total_seconds() == 30 * 60
    digest = specs["digest"].cron
    assert digest is not None and str(digest.timezone) == "Asia/Shanghai"
    assert "hour='9'" in str(digest)


def test_koubei_run_collects_delivers_and_stops_on_sigterm(
    tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    appstore.reviews = reviews(5, content="催收威胁要上门")
    config = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    env = {**os.environ, "KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": SLACK_TOKEN}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(slack.messages) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slack.messages) == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "koubei stopping (SIGTERM)" in output
    assert SLACK_TOKEN not in output
