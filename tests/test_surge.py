"""Surge alerts need a real baseline, count posts by publish time, and alert once per burst."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.alerting.surge import check_surge
from monitor.clock import FakeClock
from monitor.domain import AlertKind
from monitor.fakes.appstore import FakeAppStore, Review
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import AlertRow
from tests.conftest import SLACK_TOKEN, review

CUPERTINO = timezone(timedelta(hours=-8))
DEDUCTION = "重复扣款，扣了我两次钱"
COLLECTION = "催收天天打电话骚扰我家人和同事"


def published(n: int, at: datetime, content: str = DEDUCTION, rating: int = 1) -> Review:
    return dataclasses.replace(
        review(n, content=content, rating=rating), updated=at.astimezone(CUPERTINO).isoformat()
    )


def collect(svc: Services, appstore: FakeAppStore, new: list[Review]) -> None:
    appstore.add_newer(sorted(new, key=lambda r: r.updated, reverse=True))
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.error is None


def monitored_for(svc: Services, appstore: FakeAppStore, clock: FakeClock, days: int) -> None:
    """Collect calm posts for `days` days, one run a day: a source with a real history."""
    for day in range(days):
        collect(svc, appstore, [published(day + 1, clock.now(), "很好用，审批很快", rating=5)])
        clock.advance(timedelta(days=1))


def burst(start: int, count: int, at: datetime, content: str = DEDUCTION) -> list[Review]:
    """`count` complaints published over the 20 minutes before `at`."""
    return [
        published(
            start + i, at - timedelta(minutes=20) + timedelta(minutes=i * 20 // count), content
        )
        for i in range(count)
    ]


def surge_alerts(svc: Services) -> list[AlertRow]:
    with Session(svc.engine) as s:
        rows = s.execute(select(AlertRow).where(col(AlertRow.kind) == AlertKind.SURGE.value))
        return list(rows.scalars().all())


def test_a_cold_start_surges_nothing(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    """A first run reads a busy feed: everything was published lately and never seen before."""
    now = clock.now()
    collect(svc, appstore, burst(100, 8, now) + burst(200, 8, now, COLLECTION))
    assert check_surge(svc.engine, svc.settings, clock.now()) == []
    clock.advance(timedelta(days=2))  # still under history_days of collecting
    collect(svc, appstore, burst(300, 8, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == []
    assert surge_alerts(svc) == []


def test_a_backfill_of_old_posts_is_no_surge(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    """Posts fetched now but published three weeks ago are history, not a burst."""
    monitored_for(svc, appstore, clock, 8)
    collect(svc, appstore, burst(100, 8, clock.now() - timedelta(days=21)))
    assert check_surge(svc.engine, svc.settings, clock.now()) == []


def test_a_new_source_backfilling_is_no_surge(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    """The store was read for the first time today: its last hour has no baseline yet."""
    clock.advance(timedelta(days=10))
    collect(svc, appstore, burst(100, 8, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == []


def test_a_real_surge_alerts_once_across_the_hour_boundary(
    svc: Services, appstore: FakeAppStore, clock: FakeClock, slack: FakeSlack
) -> None:
    monitored_for(svc, appstore, clock, 8)
    clock.advance(timedelta(minutes=59))  # 02:59 UTC
    collect(svc, appstore, burst(100, 6, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == ["deduction"]
    assert check_surge(svc.engine, svc.settings, clock.now()) == []
    for _ in range(4):  # the burst goes on past 03:00 and for the next half hour
        clock.advance(timedelta(minutes=8))
        collect(svc, appstore, burst(200 + clock.now().minute, 2, clock.now()))
        assert check_surge(svc.engine, svc.settings, clock.now()) == []
    assert len(surge_alerts(svc)) == 1
    sink = SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    drain_outbox(svc.engine, sink, svc.settings.app.outbox, clock, limit=100)
    posts = [m.text for m in slack.posts_in("#complaints") if "激增" in m.text]
    assert len(posts) == 1 and "扣款" in posts[0] and "发布 6 条" in posts[0]


def test_a_later_burst_alerts_again(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    monitored_for(svc, appstore, clock, 8)
    collect(svc, appstore, burst(100, 6, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == ["deduction"]
    clock.advance(timedelta(hours=6))  # quiet in between
    assert check_surge(svc.engine, svc.settings, clock.now()) == []
    collect(svc, appstore, burst(200, 6, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == ["deduction"]
    assert len({a.dedup_key for a in surge_alerts(svc)}) == 2


def test_a_category_at_its_usual_volume_does_not_surge(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    """Six complaints an hour is a surge only where that is far above the category's usual."""
    start = clock.now()
    for day in range(8):
        at = start + timedelta(days=day)
        clock.advance(at - clock.now())
        # Five an hour, through the day (posted each day in one run).
        collect(
            svc,
            appstore,
            [published(1000 * (day + 1) + i, at - timedelta(minutes=12 * i)) for i in range(120)],
        )
    clock.advance(timedelta(hours=1))
    collect(svc, appstore, burst(50_000, 12, clock.now()))
    assert check_surge(svc.engine, svc.settings, clock.now()) == []
