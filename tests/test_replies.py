"""Public replies: to an App Store review through Apple's API (once, through the outbox),
and recorded by hand for platforms without one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, col, select

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.review_replies import AppStoreReplySink, RoutingSink
from monitor.alerting.sinks import ConsoleSink
from monitor.case_actions import ActionRefused, Actor
from monitor.clock import FakeClock
from monitor.config import SourceConfig
from monitor.fakes.appstoreconnect import FakeAppStoreConnect
from monitor.pipeline import Services, run_source
from monitor.replies import MAX_REPLY_CHARS, PENDING, record_reply
from monitor.store.tables import CaseEventRow, CaseRow, DeliveryRow, PostRow
from tests.test_appstoreconnect import APP_ID, ENV, ISSUER, KEY_ID, _pem, _public, connect_review

AGENT = Actor("U0PRLEAD01")
REPLY = "您好，提前还款违约金已为您退回，给您带来不便深表歉意。"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'koubei.db'}"


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def asc(
    key: ec.EllipticCurvePrivateKey, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeAppStoreConnect]:
    monkeypatch.setenv(ENV, _pem(key))
    fake = FakeAppStoreConnect(
        public_key_pem=_public(key),
        key_id=KEY_ID,
        issuer_id=ISSUER,
        app_id=APP_ID,
        # Apple's clock and Koubei's agree (to the second, as Apple stamps its dates).
        clock=lambda: clock.now().timestamp(),
        reviews=[connect_review(1, body="提前还款还收违约金，合同里根本没写，要求退还")],
    )
    with fake:
        yield fake


@pytest.fixture
def source(asc: FakeAppStoreConnect) -> SourceConfig:
    return SourceConfig(
        name="asc",
        kind="appstoreconnect",
        base_url=asc.url,
        options={"app_id": APP_ID, "issuer_id": ISSUER, "key_id": KEY_ID, "private_key_env": ENV},
    )


@pytest.fixture
def connect_svc(svc: Services, source: SourceConfig) -> Services:
    app = svc.settings.app.model_copy(update={"sources": [source]})
    svc.settings = svc.settings.model_copy(update={"app": app})
    return svc


def sink(svc: Services, source: SourceConfig, tmp_path: Path) -> RoutingSink:
    return RoutingSink(
        ConsoleSink(tmp_path / "alerts.jsonl"), AppStoreReplySink([source], svc.http)
    )


def the_case(svc: Services) -> CaseRow:
    with Session(svc.engine) as s:
        case: CaseRow = s.execute(select(CaseRow)).scalars().one()
        return case


def reply(svc: Services, text: str = REPLY, link: str | None = None) -> str:
    with Session(svc.engine) as s, s.begin():
        case = s.execute(select(CaseRow)).scalars().one()
        return record_reply(s, svc.settings, case, AGENT, svc.clock.now(), text=text, link=link)


def events(svc: Services) -> list[str]:
    with Session(svc.engine) as s:
        return list(
            s.execute(select(col(CaseEventRow.kind)).order_by(col(CaseEventRow.id))).scalars()
        )


def test_a_reply_to_an_app_store_review_goes_to_apple_once_and_is_the_first_response(
    connect_svc: Services, asc: FakeAppStoreConnect, source: SourceConfig, tmp_path: Path
) -> None:
    svc = connect_svc
    assert run_source(svc, source).cases_opened == 1
    said = reply(svc)
    assert PENDING in said
    case = the_case(svc)
    assert case.first_response_at == svc.clock.now()
    assert "first_response" in events(svc)

    report = drain_outbox(
        svc.engine, sink(svc, source, tmp_path), svc.settings.app.outbox, svc.clock
    )
    assert report.failed == 0 and asc.reply_posts == 1
    answered = asc.reviews[0].response
    assert answered is not None and answered.body == REPLY and answered.state == "PENDING_PUBLISH"

    # Apple publishes it; the collector's next run reads that into the case's timeline.
    asc.publish()
    assert isinstance(svc.clock, FakeClock)
    svc.clock.advance(timedelta(minutes=30))
    run_source(svc, source)
    with Session(svc.engine) as s:
        post = s.execute(select(PostRow)).scalars().one()
        changes = (
            s.execute(select(CaseEventRow).where(col(CaseEventRow.kind) == "platform_status"))
            .scalars()
            .all()
        )
    assert post.platform_status == "已回复"
    assert any(e.detail.get("old") == PENDING and e.detail.get("new") == "已回复" for e in changes)


def test_a_reply_whose_answer_was_lost_is_not_posted_again(
    connect_svc: Services, asc: FakeAppStoreConnect, source: SourceConfig, tmp_path: Path
) -> None:
    svc = connect_svc
    run_source(svc, source)
    reply(svc)
    asc.drop_reply_answers = 1  # Apple stores it, the answer never arrives
    routed = sink(svc, source, tmp_path)
    first = drain_outbox(svc.engine, routed, svc.settings.app.outbox, svc.clock)
    assert first.failed == 1
    assert isinstance(svc.clock, FakeClock)
    svc.clock.advance(timedelta(minutes=5))
    second = drain_outbox(svc.engine, routed, svc.settings.app.outbox, svc.clock)
    assert second.found_already_sent == 1  # looked up, not posted again
    assert asc.reply_posts == 1
    with Session(svc.engine) as s:
        row = (
            s.execute(
                select(DeliveryRow).where(col(DeliveryRow.channel).startswith("appstoreconnect:"))
            )
            .scalars()
            .one()
        )
    assert row.status == "sent"


def test_a_reply_with_personal_data_or_over_apples_length_is_refused_before_sending(
    connect_svc: Services, asc: FakeAppStoreConnect, source: SourceConfig
) -> None:
    svc = connect_svc
    run_source(svc, source)
    with pytest.raises(ActionRefused, match="个人信息"):
        reply(svc, text="请拨打 13900002368 联系我们")
    with pytest.raises(ActionRefused, match="回复过长"):
        reply(svc, text="抱" * (MAX_REPLY_CHARS + 1))
    with Session(svc.engine) as s:
        to_apple = s.execute(
            select(DeliveryRow).where(col(DeliveryRow.channel).startswith("appstoreconnect:"))
        ).all()
    assert to_apple == []
    assert the_case(svc).first_response_at is None


def test_a_platform_without_a_reply_api_records_the_reply_made_there(
    svc: Services, appstore: object, clock: FakeClock
) -> None:
    from monitor.fakes.appstore import FakeAppStore
    from tests.conftest import review

    assert isinstance(appstore, FakeAppStore)
    appstore.reviews = [review(1, content="提前还款还收违约金，要求退还")]
    run_source(svc, svc.settings.source("appstore-cn"))
    with pytest.raises(ActionRefused, match="附上回复的链接"):
        reply(svc)
    said = reply(svc, link="https://tousu.example.com/complaint/view/1/")
    assert "已记录" in said
    case = the_case(svc)
    assert case.public_reply_url == "https://tousu.example.com/complaint/view/1/"
    assert case.first_response_at == clock.now()
