"""The Slack message rendered from a notice at delivery is the message Koubei built
before notices: same blocks, text, colour, buttons, mentions and metadata."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.alerting.render import render_case
from monitor.alerting.slack.render import SlackRenderer
from monitor.clock import FakeClock
from monitor.domain import Notice, Outgoing
from monitor.fakes.appstore import FakeAppStore
from monitor.pipeline import Services, run_source
from monitor.store.tables import AlertRow, CaseRow, DeliveryRow
from tests.conftest import review


def test_a_case_message_from_its_notice_is_the_block_kit_message_of_before(
    svc: Services, appstore: FakeAppStore, clock: FakeClock
) -> None:
    appstore.reviews = [
        review(
            1,
            content="催收威胁要上门 <!channel> <https://evil.example|银行> 电话13812345678 &&",
            title="标题 <b>",
        )
    ]
    run_source(svc, svc.settings.app.sources[0])
    with Session(svc.engine) as s:
        case = s.execute(select(CaseRow)).scalar_one()
        alert = s.execute(select(AlertRow).where(col(AlertRow.case_id) == case.id)).scalar_one()
        delivery = s.execute(select(DeliveryRow)).scalar_one()
        assert alert.id is not None and delivery.id is not None
        before = render_case(
            s,
            svc.settings.policy,
            case,
            alert_id=alert.id,
            headline="新投诉",
            tz=ZoneInfo(svc.settings.app.timezone),
            now=clock.now(),
        )
    notice = Notice.from_json(alert.payload)
    out = Outgoing(delivery.id, alert.id, "post", delivery.channel, notice, delivery.created_at)
    now = SlackRenderer(svc.settings.policy).render(out)
    assert now == before
    assert "13812345678" not in str(now) and "&lt;!channel&gt;" in str(now)
