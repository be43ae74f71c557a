"""Source health: a blind source alerts the ops channel once, and its recovery once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.health import table
from monitor.pipeline import Services, run_source
from tests.conftest import SLACK_TOKEN, reviews, write_config


def deliver(svc: Services) -> None:
    drain_outbox(
        svc.engine,
        SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy),
        svc.settings.app.outbox,
        svc.clock,
    )


def test_failing_runs_alert_once_and_recovery_once(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack
) -> None:
    source = svc.settings.app.sources[0]
    appstore.reviews = reviews(5)
    assert run_source(svc, source).ok
    appstore.quirks.statuses[1] = [503] * 100
    raised = [run_source(svc, source).health for _ in range(5)]
    assert [h is not None for h in raised] == [False, False, True, False, False]
    deliver(svc)
    ops = slack.posts_in("#koubei-ops")
    assert len(ops) == 1 and "连续 3 次采集失败" in ops[0].text and "HTTP 503" in ops[0].text
    assert slack.posts_in("#complaints") == [] or all(
        "失明" not in m.text for m in slack.posts_in("#complaints")
    )
    [health] = table(svc.engine, svc.settings)
    assert health.blind and health.consecutive_failures == 5 and health.baseline == 5
    appstore.quirks.statuses.clear()
    recovered = run_source(svc, source)
    assert recovered.ok and recovered.health is not None and "已恢复" in recovered.health
    assert run_source(svc, source).health is None
    deliver(svc)
    assert [("失明" in m.text, "已恢复" in m.text) for m in slack.posts_in("#koubei-ops")] == [
        (True, False),
        (False, True),
    ]
    assert not table(svc.engine, svc.settings)[0].blind


def test_koubei_sources_prints_the_health_table(tmp_path: Path, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(3)
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {**os.environ, "KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": ""}
    env.pop("DATABASE_URL", None)
    koubei = [sys.executable, "-m", "monitor"]
    subprocess.run([*koubei, "collect", "appstore-cn"], env=env, check=True, capture_output=True)
    out = subprocess.run([*koubei, "sources"], env=env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("appstore-cn"))
    assert "appstore" in line and line.split()[-1] == "ok" and " 3 " in line
