"""Job leases: one holder at a time, takeover after expiry, fencing, and when a job is due."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, create_engine

from monitor.clock import FakeClock
from monitor.fakes.appstore import FakeAppStore
from monitor.pipeline import Services
from monitor.scheduler import Job, JobRunner
from monitor.store.leases import Lease, Leases
from monitor.store.ratelimit import SharedHostRateLimiter
from tests.conftest import SLACK_TOKEN, write_config

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def test_one_holder_until_expiry_then_a_takeover_with_a_higher_token(engine: Engine) -> None:
    a, b = Leases(engine, "a", ttl=30), Leases(engine, "b", ttl=30)
    first = a.acquire("source:x", T0)
    assert first is not None and first.holder == "a" and first.token == 1
    assert b.acquire("source:x", T0 + timedelta(seconds=29)) is None
    renewed = a.acquire("source:x", T0 + timedelta(seconds=20))
    assert renewed is not None and renewed.token == 1  # renewing keeps the token
    assert b.acquire("source:x", T0 + timedelta(seconds=49)) is None  # renewed to 50 s
    taken = b.acquire("source:x", T0 + timedelta(seconds=50))
    assert taken is not None and taken.holder == "b" and taken.token == 2


def test_a_holder_that_lost_its_lease_can_neither_renew_nor_start_nor_finish(
    engine: Engine,
) -> None:
    a, b = Leases(engine, "a", ttl=10), Leases(engine, "b", ttl=10)
    old = a.acquire("outbox", T0)
    assert old is not None and a.start(old, T0)
    later = T0 + timedelta(seconds=11)  # a stalled past its expiry
    new = b.acquire("outbox", later)
    assert new is not None and new.token == 2
    assert a.renew_all(later) == set()
    assert not a.start(old, later)
    assert not a.finish(old, later, "ok")
    assert a.acquire("outbox", later) is None
    assert b.renew_all(later) == {"outbox"}


def test_release_lets_another_instance_take_the_job_at_once(engine: Engine) -> None:
    a, b = Leases(engine, "a", ttl=60), Leases(engine, "b", ttl=60)
    assert a.acquire("sla", T0) is not None
    a.release("sla", T0 + timedelta(seconds=1))
    taken = b.acquire("sla", T0 + timedelta(seconds=1))
    assert taken is not None and taken.holder == "b"


def _lease(last: datetime | None, created: datetime = T0) -> Lease:
    return Lease("j", "a", 1, T0, T0, created, last, None, None)


def test_an_interval_job_is_due_an_interval_after_its_last_start_on_any_instance() -> None:
    job = Job("source:x", lambda: None, every=timedelta(minutes=30))
    tick = timedelta(seconds=15)
    assert job.due(_lease(None), T0, tick)
    assert not job.due(_lease(T0), T0 + timedelta(minutes=29), tick)
    assert job.due(_lease(T0), T0 + timedelta(minutes=30), tick)


def test_a_cron_job_missed_during_a_takeover_runs_once_after_it() -> None:
    # 09:00 Shanghai is 01:00 UTC; the holder died at 08:59, the lease moved at 09:00:40.
    job = Job(
        "digest",
        lambda: None,
        cron=CronTrigger(hour=9, minute=0, timezone="Asia/Shanghai"),
        grace=timedelta(hours=1),
    )
    tick = timedelta(seconds=15)
    yesterday = datetime(2026, 11, 27, 1, 0, 1, tzinfo=UTC)
    at = datetime(2026, 11, 28, 1, 0, 40, tzinfo=UTC)
    assert job.due(_lease(yesterday, created=yesterday), at, tick)
    ran = datetime(2026, 11, 28, 1, 0, 41, tzinfo=UTC)
    assert not job.due(_lease(ran, created=yesterday), at + timedelta(minutes=5), tick)
    # First start ever, after today's time: no catch-up run of a digest never scheduled.
    assert not job.due(_lease(None, created=at), at + timedelta(seconds=15), tick)
    # Past the grace, a missed run is not made late.
    late = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert not job.due(_lease(yesterday, created=yesterday), late, tick)


def test_two_runners_run_a_job_once_per_interval_and_the_survivor_takes_over(
    svc: Services, clock: FakeClock
) -> None:
    ran: list[tuple[str, datetime]] = []
    a, b = (
        JobRunner(svc, Leases(svc.engine, "a", ttl=45)),
        JobRunner(svc, Leases(svc.engine, "b", ttl=45)),
    )

    def job_for(name: str) -> Job:
        return Job("source:x", lambda: ran.append((name, clock.now())), every=timedelta(minutes=1))

    ja, jb = job_for("a"), job_for("b")
    for _ in range(20):  # five minutes of looks every 15 s, both instances alive
        a.look(ja)
        b.look(jb)
        a.renew()
        b.renew()
        clock.advance(timedelta(seconds=15))
    assert [who for who, _ in ran] == ["a"] * 5
    # a dies (no more looks or renewals): b runs it within the failover bound (60 s).
    died = clock.now()
    while b.look(jb) != "ok":
        clock.advance(timedelta(seconds=15))
    assert clock.now() - died <= timedelta(seconds=60)
    assert ran[-1][0] == "b"
    starts = [at for _, at in ran]
    assert all(
        later - earlier >= timedelta(minutes=1) for earlier, later in itertools.pairwise(starts)
    )


@pytest.mark.postgres
def test_the_per_host_rate_limit_holds_across_instances(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the shared rate limit is PostgreSQL's; SQLite serves one process")
    engines = [create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))]
    engines.append(create_engine(engines[0].url))
    from monitor.store.engine import migrate

    migrate(engines[0])
    waits: list[float] = []
    limiters = [SharedHostRateLimiter(e, 2.0, {}, sleep=waits.append) for e in engines]
    for i in range(6):  # two instances, alternately, to one host at 2 requests/s
        limiters[i % 2].wait("itunes.apple.com")
    assert len(waits) == 5  # the first goes at once
    for n, wait in enumerate(waits, start=1):
        assert wait == pytest.approx(0.5 * n, abs=0.15)
    for e in engines:
        e.dispose()


def test_a_second_koubei_run_on_one_sqlite_file_is_refused(
    tmp_path: Path, appstore: FakeAppStore
) -> None:
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {**os.environ, "KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": SLACK_TOKEN}
    env.pop("DATABASE_URL", None)
    first = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / "koubei.db.run-lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "monitor", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.terminate()
        first.communicate(timeout=20)
    assert second.returncode == 1
    assert "another `koubei run`" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert "DATABASE_URL" in second.stderr


def test_the_only_process_on_sqlite_takes_a_dead_predecessors_leases_at_once(
    engine: Engine,
) -> None:
    dead, me = Leases(engine, "old:1:aaaaaa", ttl=45), Leases(engine, "new:2:bbbbbb", ttl=45)
    assert dead.acquire("outbox", T0) is not None
    assert me.acquire("outbox", T0 + timedelta(seconds=1)) is None
    me.expire_others(T0 + timedelta(seconds=1))
    taken = me.acquire("outbox", T0 + timedelta(seconds=1))
    assert taken is not None and taken.holder == "new:2:bbbbbb" and taken.token == 2
