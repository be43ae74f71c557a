"""The outbox's claims under slow sends and robots: a superseded claim changes nothing, a
robot's unconfirmed delivery is told to ops once, and a case's event on a robot waits for
the group message that carries the case."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.outbox import (
    DrainReport,
    _claim_next,
    _fail,
    _finish,
    drain_outbox,
    ops_target,
    retry_failed,
)
from monitor.alerting.sinks import SlackSink
from monitor.alerting.wecom import WeComSink
from monitor.case_actions import Actor, acknowledge
from monitor.clock import FakeClock
from monitor.config import load_settings
from monitor.domain import AlertKind, DeliveryStatus, Outgoing, Sink, SinkRef
from monitor.errors import SinkError
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.fakes.wecom import FakeWeCom
from monitor.pipeline import Services, run_source
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow
from tests.conftest import SLACK_TOKEN, review, reviews, write_config
from tests.test_sinks import Robot

CRY = "催收威胁要上门，我要打12378"


def _rows(svc: Services) -> list[DeliveryRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(DeliveryRow).order_by(col(DeliveryRow.id))).scalars())


def _ops_alerts(svc: Services) -> list[AlertRow]:
    with Session(svc.engine) as s:
        found = s.execute(
            select(AlertRow).where(col(AlertRow.kind) == AlertKind.DELIVERY_FAILED.value)
        )
        return list(found.scalars())


def test_a_claim_superseded_after_its_lease_changes_nothing_when_it_ends(
    svc: Services, appstore: FakeAppStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    (queued,) = _rows(svc)
    outbox = svc.settings.app.outbox
    ops = ops_target(svc.settings)
    sink = cast(
        Sink, SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    )
    slow = _claim_next(svc.engine, outbox, clock.now(), set(), None, sink)
    assert slow is not None and slow.delivery_id == queued.id
    # The first sender is still waiting on the sink when its lease runs out: another
    # drain (another instance) claims the same delivery.
    clock.advance(timedelta(seconds=outbox.lease_seconds + 1))
    second = _claim_next(svc.engine, outbox, clock.now(), set(), None, sink)
    assert second is not None and second.delivery_id == slow.delivery_id
    # The slow one gives up with a transient error while the second is sending: the
    # second's lease stands, so a third drain cannot claim the row meanwhile.
    _fail(svc.engine, outbox, slow, SinkError("timed out", definite=False), clock.now(), ops)
    (row,) = _rows(svc)
    assert row.claimed_until is not None and row.claimed_until > clock.now()
    assert row.last_error is None and row.attempts == 2
    assert _claim_next(svc.engine, outbox, clock.now(), set(), None, sink) is None
    _finish(svc.engine, second, SinkRef("C0CRISIS01", "1700000000.000200"), clock.now())
    # The slow one's late answers: refused for good, then a success. Neither lands.
    _fail(
        svc.engine,
        outbox,
        slow,
        SinkError("refused", definite=True, permanent=True),
        clock.now(),
        ops,
    )
    _finish(svc.engine, slow, SinkRef("C0CRISIS01", "1700000000.000100"), clock.now())
    (row,) = _rows(svc)
    assert row.status == DeliveryStatus.SENT.value
    assert row.ref == "1700000000.000200" and row.last_error is None
    assert not _ops_alerts(svc)  # nobody is told a sent alert failed
    assert "superseded" in caplog.text


class OutlastsItsLease:
    """A sink whose first send hangs past the lease, while another instance drains the
    outbox, and then comes back refused for good."""

    def __init__(self, inner: Sink, svc: Services, clock: FakeClock) -> None:
        self.inner, self.svc, self.clock = inner, svc, clock
        self.name = inner.name
        for attr in ("kind", "threads", "edits", "buttons", "files", "mentions", "lookup"):
            setattr(self, attr, getattr(inner, attr))
        self.rate_per_minute = inner.rate_per_minute
        self.other: DrainReport | None = None

    def send(self, out: Outgoing) -> SinkRef:
        if self.other is None:
            outbox = self.svc.settings.app.outbox
            self.clock.advance(timedelta(seconds=outbox.lease_seconds + 1))
            self.other = drain_outbox(self.svc.engine, self.inner, outbox, self.clock)
            raise SinkError("invalid_blocks", definite=True, permanent=True)
        return self.inner.send(out)

    def find(self, out: Outgoing) -> SinkRef | None:
        return self.inner.find(out)


def test_a_drain_whose_send_outlasts_its_lease_leaves_the_other_instances_delivery(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock
) -> None:
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    slack_sink = cast(
        Sink, SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
    )
    slow = OutlastsItsLease(slack_sink, svc, clock)
    report = drain_outbox(
        svc.engine, cast(Sink, slow), svc.settings.app.outbox, clock, ops=ops_target(svc.settings)
    )
    assert slow.other is not None and slow.other.sent == 1
    (row,) = _rows(svc)
    assert row.status == DeliveryStatus.SENT.value and row.last_error is None
    assert not _ops_alerts(svc) and not slack.posts_in("#koubei-ops")
    assert report.superseded == 1
    assert len(slack.posts_in("#pr-crisis")) == 1


def _robot_settings(
    svc: Services, tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack, wecom_url: str
) -> None:
    sinks: list[dict[str, Any]] = [
        {"name": "slack", "kind": "slack"},
        {"name": "pr-wecom", "kind": "wecom", "url_env": "PR_WECOM_URL", "grades": ["P1", "P2"]},
    ]
    path = write_config(
        tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/", sinks=sinks
    )
    svc.settings = load_settings(
        path, env={"SLACK_BOT_TOKEN": SLACK_TOKEN, "PR_WECOM_URL": wecom_url}
    )


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


def test_a_robot_answering_502_is_told_to_ops_once_to_check_the_group(
    svc: Services,
    appstore: FakeAppStore,
    slack: FakeSlack,
    clock: FakeClock,
    tmp_path: Path,
    wecom: FakeWeCom,
) -> None:
    _robot_settings(svc, tmp_path, appstore, slack, wecom.webhook)
    appstore.reviews = [review(1, content=CRY)]
    run_source(svc, svc.settings.app.sources[0])
    sinks: dict[str, Sink] = {
        "slack": cast(
            Sink, SlackSink.from_config(SLACK_TOKEN, svc.settings.app.slack, svc.settings.policy)
        ),
        "pr-wecom": WeComSink.connect("pr-wecom", wecom.webhook),
    }
    outbox = svc.settings.app.outbox
    ops = ops_target(svc.settings)
    wecom.faults.server_error = 1  # the gateway answers 502: the message may have arrived
    try:
        drain_outbox(svc.engine, sinks, outbox, clock, ops=ops)
        for _ in range(3):
            clock.advance(timedelta(minutes=5))
            drain_outbox(svc.engine, sinks, outbox, clock, ops=ops)
        robot_row = next(d for d in _rows(svc) if d.sink == "pr-wecom")
        assert robot_row.status == "sent" and (robot_row.last_error or "").startswith(
            "sent-unconfirmed"
        )
        assert wecom.calls == 1  # never sent again
        told = slack.posts_in("#koubei-ops")
        assert len(told) == 1, [m.text for m in told]
        text = told[0].text
        assert "pr-wecom" in text and "工单 #1" in text and "HTTP 502" in text
        assert f"告警 #{robot_row.alert_id}" in text and f"投递 #{robot_row.id}" in text
        assert "确认" in text and f"koubei deliveries --retry {robot_row.id}" in text
        assert len(_ops_alerts(svc)) == 1
        # Ops looked: it is not in the group. Only that id is sent again, not on --retry-all.
        assert retry_failed(svc.engine, None) == 0
        assert retry_failed(svc.engine, [robot_row.id or 0]) == 1
        wecom.faults.server_error = 1  # the resend goes unanswered too: told again, once
        for _ in range(3):
            drain_outbox(svc.engine, sinks, outbox, clock, ops=ops)
            clock.advance(timedelta(minutes=5))
        assert len(slack.posts_in("#koubei-ops")) == 2 and wecom.calls == 2
        assert retry_failed(svc.engine, [robot_row.id or 0]) == 1
        drain_outbox(svc.engine, sinks, outbox, clock, ops=ops)
    finally:
        sinks["pr-wecom"].close()  # type: ignore[attr-defined]
    assert len(wecom.received) == 1 and wecom.calls == 3
    robot_row = next(d for d in _rows(svc) if d.sink == "pr-wecom")
    assert robot_row.status == "sent" and robot_row.last_error is None
    assert len(slack.posts_in("#koubei-ops")) == 2


def test_a_case_event_on_a_robot_waits_for_the_group_that_carries_the_case(
    svc: Services, appstore: FakeAppStore, slack: FakeSlack, clock: FakeClock, tmp_path: Path
) -> None:
    robot_sink = [{"name": "robot", "kind": "wecom", "url_env": "ROBOT_URL"}]
    path = write_config(
        tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/", sinks=robot_sink
    )
    svc.settings = load_settings(path, env={})
    robot = Robot()
    outbox = svc.settings.app.outbox
    appstore.reviews = reviews(5, content="一直闪退，登录不了")  # P3s: a burst, grouped
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        grouped = (
            s.execute(select(col(AlertRow.case_id)).where(col(AlertRow.group_id).is_not(None)))
            .scalars()
            .all()
        )
    assert len(grouped) == 3
    member = grouped[0]
    assert member is not None
    # Someone acknowledges a grouped case on the board before the group went out.
    with Session(svc.engine) as s, s.begin():
        case = s.get_one(CaseRow, member)
        acknowledge(s, svc.settings, case, Actor("web:lihua", "李华"), clock.now())
    drain_outbox(svc.engine, {"robot": robot}, outbox, clock)
    clock.advance(timedelta(seconds=61))
    drain_outbox(svc.engine, {"robot": robot}, outbox, clock)
    kinds = [(o.notice.kind.value, o.notice.case_id, o.adapted_from) for o in robot.got]
    group_at = next(i for i, o in enumerate(robot.got) if o.notice.kind is AlertKind.GROUP)
    about_member = [i for i, o in enumerate(robot.got) if o.notice.case_id == member]
    assert about_member and min(about_member) > group_at, kinds
    assert {o.adapted_from for o in robot.got if o.notice.case_id == member} == {
        "reply",
        "update",
    }
    assert all(d.status == "sent" for d in _rows(svc))
