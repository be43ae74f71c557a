"""Two real `koubei run` processes on one PostgreSQL database, the fake App Store and Slack.

Each job runs on one of them at a time: the source is collected once per
interval in total, no Slack message goes out twice, a reminder and an
escalation go once per case. SIGKILL the holder and the other takes its jobs
within scheduler.failover_seconds; kill the next one during delivery, start
a new one, and every alert arrives exactly once.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.domain import AlertKind, DeliveryStatus
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.store.engine import make_engine, migrate
from monitor.store.leases import all_leases
from monitor.store.tables import AlertRow, DeliveryRow, SourceRunRow
from tests.conftest import CONFIG_DIR, SLACK_TOKEN, reviews, write_config

pytestmark = pytest.mark.postgres

INTERVAL_S = 3.0  # the source's interval
FAILOVER_S = 4.0  # leases last 3 s, each instance looks every second


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack) -> Path:
    path = write_config(
        tmp_path,
        appstore_url=appstore.url,
        slack_url=slack.url + "/api/",
        outbox={"interval_seconds": 0.5, "lease_seconds": 2, "per_channel_per_second": 2},
    )
    policy = yaml.safe_load((CONFIG_DIR / "policy.yaml").read_text(encoding="utf-8"))
    p1 = policy["grades"]["P1"]
    # Acknowledge within 6 s: a reminder at 80% (4.8 s), one escalation step at 6 s.
    p1["ack_minutes"] = 0.1
    p1["escalation"] = [{"after_minutes": 0.1, "notify": ["cs_lead"]}]
    policy["watchdog"] = {"heartbeat_seconds": 1, "stale_after_seconds": 60}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True), "utf-8")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["policy_file"] = str(tmp_path / "policy.yaml")
    data["classifier"] = {"kind": "rules"}
    data["scheduler"] = {"failover_seconds": FAILOVER_S, "sweep_seconds": 1}
    data["sources"][0]["interval_minutes"] = INTERVAL_S / 60
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Instance:
    def __init__(self, config: Path, db_url: str, log: Path) -> None:
        self.port = _free_port()
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["scheduler"]["metrics_port"] = self.port
        own = config.with_name(f"koubei-{self.port}.yaml")
        own.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "KOUBEI_CONFIG": str(own),
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
        }
        self.log = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--log-format", "json"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return dict(json.loads(r.read()))
        except OSError:
            return None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _wait(what: str, check: Callable[[], bool], timeout: float = 30) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def _holders(engine: Engine) -> dict[str, str]:
    now = datetime.now(UTC)
    return {lease.job: lease.holder for lease in all_leases(engine) if lease.live(now)}


def _run_starts(engine: Engine) -> list[datetime]:
    with Session(engine) as s:
        return list(
            s.execute(
                select(col(SourceRunRow.started_at)).order_by(col(SourceRunRow.started_at))
            ).scalars()
        )


def _alert_ids(slack: FakeSlack) -> list[int]:
    return [int((m.metadata or {})["event_payload"]["alert_id"]) for m in slack.messages]


def _posted_alerts(engine: Engine) -> dict[int, str]:
    """Alerts that are Slack posts (new messages or thread replies), not edits."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(AlertRow.id), col(AlertRow.kind))
            .join(DeliveryRow, col(DeliveryRow.alert_id) == col(AlertRow.id))
            .where(col(DeliveryRow.method).in_(["post", "reply"]))
        ).all()
    return {int(i): str(k) for i, k in rows}


def _undelivered(engine: Engine) -> int:
    with Session(engine) as s:
        return len(
            s.execute(
                select(col(DeliveryRow.id)).where(
                    col(DeliveryRow.status) == DeliveryStatus.PENDING.value
                )
            ).all()
        )


@pytest.fixture
def pg_engine(db_url: str) -> Iterator[Engine]:
    if not db_url.startswith("postgresql"):
        pytest.skip("failover needs PostgreSQL: SQLite serves one process")
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_two_instances_share_the_jobs_and_survive_sigkill(
    db_url: str,
    pg_engine: Engine,
    tmp_path: Path,
    appstore: FakeAppStore,
    slack: FakeSlack,
) -> None:
    appstore.reviews = reviews(3, content="催收威胁要上门")
    config = _config(tmp_path, appstore, slack)
    instances = [Instance(config, db_url, tmp_path / f"run-{i}.log") for i in range(2)]
    try:
        _wait(
            "both instances healthy", lambda: all((i.health() or {}).get("ok") for i in instances)
        )
        by_pid = {str(i.proc.pid): i for i in instances}

        # Both running: one holder per job; three cases, each reminded and escalated once.
        _wait("reminders and escalations", lambda: _kinds_sent(slack, pg_engine) >= 9, 40)
        holders = _holders(pg_engine)
        assert "source:appstore-cn" in holders and "outbox" in holders and "sla" in holders
        sent = Counter(_alert_ids(slack))
        assert sent and max(sent.values()) == 1, "a Slack message went out twice"
        kinds = Counter(_posted_alerts(pg_engine)[a] for a in sent)
        assert kinds[AlertKind.NEW_CASE] == 3
        assert kinds[AlertKind.REMINDER] == 3 and kinds[AlertKind.ESCALATION] == 3
        _once_per_interval(_run_starts(pg_engine))

        # SIGKILL the source's holder: the other takes it within the bound and collects on.
        first = by_pid[holders["source:appstore-cn"].split(":")[1]]
        survivor = next(i for i in instances if i is not first)
        runs_before = len(_run_starts(pg_engine))
        first.kill()
        killed_at = time.monotonic()
        survivor_id = str((survivor.health() or {}).get("instance"))
        took = _wait(
            "the survivor to hold the source",
            lambda: _holders(pg_engine).get("source:appstore-cn") == survivor_id,
        )
        assert took <= FAILOVER_S + 1.5, f"takeover took {took:.1f}s"
        _wait("a run by the survivor", lambda: len(_run_starts(pg_engine)) > runs_before)
        assert time.monotonic() - killed_at <= FAILOVER_S + INTERVAL_S + 2.0
        assert set(_holders(pg_engine).values()) == {survivor_id}

        # A new instance joins; new complaints; kill the survivor while it delivers them.
        instances.append(Instance(config, db_url, tmp_path / "run-2.log"))
        _wait("the new instance healthy", lambda: bool((instances[2].health() or {}).get("ok")))
        before = len(slack.messages)
        appstore.reviews = reviews(8, start=100, content="催收威胁要上门") + appstore.reviews
        _wait("delivery of the new cases to start", lambda: len(slack.messages) > before)
        survivor.kill()
        _wait("every alert delivered", lambda: _undelivered(pg_engine) == 0, 60)
        _wait("the last reminders", lambda: _kinds_sent(slack, pg_engine) >= 33, 40)
        _wait("every alert delivered", lambda: _undelivered(pg_engine) == 0, 30)
    finally:
        for instance in instances:
            if instance.proc.poll() is None:
                instance.kill()

    posted = _posted_alerts(pg_engine)
    sent = Counter(_alert_ids(slack))
    assert max(sent.values()) == 1, "a Slack message went out twice"
    assert set(sent) == set(posted), "an alert was lost"
    kinds = Counter(posted.values())
    assert kinds[AlertKind.NEW_CASE] + kinds[AlertKind.GROUP] >= 1
    assert kinds[AlertKind.REMINDER] == 11 and kinds[AlertKind.ESCALATION] == 11
    _once_per_interval(_run_starts(pg_engine))
    for instance in instances:
        log = instance.log.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in log]  # --log-format json: every line
        assert not [r for r in records if r["logger"].startswith("alembic")]
        assert SLACK_TOKEN not in "\n".join(log)


def _kinds_sent(slack: FakeSlack, engine: Engine) -> int:
    posted = _posted_alerts(engine)
    wanted = {AlertKind.NEW_CASE.value, AlertKind.REMINDER.value, AlertKind.ESCALATION.value}
    return sum(1 for a in set(_alert_ids(slack)) if posted.get(a) in wanted)


def _once_per_interval(starts: list[datetime]) -> None:
    """One run per interval in total: never two close together, never a long gap.

    Two instances each collecting on their own (the bug) alternate gaps of d
    and INTERVAL_S - d, one of them at most half the interval; a second of
    slack covers a loaded machine's delays between the lease and the run.
    """
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps, "the source never ran twice"
    assert min(gaps) >= INTERVAL_S - 1.0, f"runs too close: {gaps}"
    assert max(gaps) < INTERVAL_S + FAILOVER_S + 3, f"a gap too long: {gaps}"
    span = (starts[-1] - starts[0]).total_seconds()
    assert len(starts) <= span / (INTERVAL_S - FAILOVER_S / 8) + 1.5, f"too many runs: {gaps}"
