"""The demo's first-party channels: App Store Connect, the app's own feedback, follow-ups.

Reviews written for this demo are read through a local fake of Apple's App Store Connect
API (which checks the ES256 token as Apple does), the app backend sends in-app ratings to
`koubei serve`'s signed endpoint, and customer service calls back customers of resolved
cases (回访), so the month's report has follow-up satisfaction and a follow-up rate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, col, select

from monitor.alerting.outbox import drain_outbox
from monitor.alerting.review_replies import AppStoreReplySink
from monitor.case_actions import Actor
from monitor.clock import FakeClock
from monitor.config import Settings, SourceConfig
from monitor.domain import Sink
from monitor.fakes.app_backend import FakeAppBackend
from monitor.fakes.appstoreconnect import ConnectReview, FakeAppStoreConnect, ReviewResponse
from monitor.followups import record_followup
from monitor.pipeline import Services, run_source
from monitor.replies import REPLY_SINK, record_reply
from monitor.store.tables import CaseRow, PostRow
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.ingest import Ingestor
from monitor.web.interactions import Interactions

KEY_ID = "DEMO4KEY01"
ISSUER = "69a6de70-03db-47e3-e053-5b8c7c11a4d1"
APP_ID = "1440195432"
KEY_ENV = "KOUBEI_DEMO_ASC_KEY"
INGEST_SECRET = "demo-ingest-secret-not-real"
# Follow-ups in the demo fall due two hours after resolution (the shipped policy: days),
# so the afternoon it plays out has some due, some made and one missed.
DEMO_FOLLOWUP_DAYS = 2 / 24

CONNECT_REVIEWS = [
    (
        "评分",
        1,
        "提前还款还要收手续费",
        "提前还清了还被收了违约金，合同里根本没写，要求退还",
        "Hk小白",
    ),
    (
        "登录",
        2,
        "升级后登录不了",
        "更新到新版本以后一直登录失败，人脸识别转圈，急着还款",
        "四月的风",
    ),
    ("好评", 5, "放款很快", "审核半小时就到账了，客服解释得也很清楚，点赞", "山川"),
    ("弹窗", 3, "广告太多", "每次打开都有三四个弹窗，关都关不掉，影响使用", "阿杰"),
]
FEEDBACK = [
    {
        "id": "fb-1001",
        "rating": 1,
        "text": "还款日前一天就开始打电话催，一天七八个，太烦了",
        "channel": "feedback_form",
    },
    {"id": "fb-1002", "rating": 5, "text": "额度提升了，谢谢", "channel": "rating_prompt"},
    {
        "id": "fb-1003",
        "rating": 2,
        "text": "银行卡绑定一直失败，提示系统繁忙",
        "channel": "feedback_form",
    },
]


def demo_policy(settings: Settings) -> Settings:
    grades = {
        g: p.model_copy(update={"followup_days": DEMO_FOLLOWUP_DAYS}) if p.followup_days else p
        for g, p in settings.policy.grades.items()
    }
    policy = settings.policy.model_copy(update={"grades": grades})
    return settings.model_copy(update={"policy": policy})


def connect_reviews(start: datetime) -> list[ConnectReview]:
    out = []
    for i, (_kind, rating, title, body, nick) in enumerate(CONNECT_REVIEWS):
        created = start - timedelta(hours=3 * (i + 1))
        out.append(
            ConnectReview(
                id=f"00000031-d2aa-0001-{i:04x}-fbd500000000",
                rating=rating,
                title=title,
                body=body,
                nickname=nick,
                created=created.isoformat(),
                territory="CHN",
                response=(
                    ReviewResponse("8a11", "感谢认可，我们会继续努力", created.isoformat())
                    if rating == 5
                    else None
                ),
            )
        )
    return out


@contextmanager
def app_store_connect(clock: FakeClock) -> Iterator[tuple[FakeAppStoreConnect, SourceConfig]]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    fake = FakeAppStoreConnect(
        public_key_pem=public,
        key_id=KEY_ID,
        issuer_id=ISSUER,
        app_id=APP_ID,
        reviews=connect_reviews(clock.now()),
    )
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = pem  # the collector reads its key from the environment, as in production
    try:
        with fake:
            yield (
                fake,
                SourceConfig(
                    name="appstore-connect",
                    kind="appstoreconnect",
                    base_url=fake.url,
                    options={
                        "app_id": APP_ID,
                        "issuer_id": ISSUER,
                        "key_id": KEY_ID,
                        "private_key_env": KEY_ENV,
                    },
                ),
            )
    finally:
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous


def collect_connect(svc: Services, fake: FakeAppStoreConnect, source: SourceConfig) -> str:
    got = run_source(svc, source)
    answered = sum(1 for r in fake.reviews if r.response is not None)
    return (
        f"Collected {source.name} (App Store Connect API, ES256 token checked by the fake): "
        f"{got.fetched} reviews, {got.new} new, {got.cases_opened} cases opened; "
        f"{answered} already answered in App Store Connect"
    )


def reply_to_a_review(
    svc: Services, fake: FakeAppStoreConnect, source: SourceConfig, sinks: Mapping[str, Sink]
) -> str:
    """PR answers the fee complaint on the App Store, through the outbox and Apple's API."""
    with Session(svc.engine) as s:
        post = (
            s.execute(
                select(PostRow).where(
                    col(PostRow.source) == source.name, col(PostRow.case_id).is_not(None)
                )
            )
            .scalars()
            .first()
        )
    if post is None or post.case_id is None:
        return "App Store Connect: no case to reply to"
    text = "您好，提前还款的违约金已为您全额退回，给您带来不便深表歉意。"
    with Session(svc.engine) as s, s.begin():
        case = s.get_one(CaseRow, post.case_id)
        said = record_reply(s, svc.settings, case, Actor("U0PRLEAD01"), svc.clock.now(), text=text)
    routed = {**sinks, REPLY_SINK: AppStoreReplySink([source], svc.http)}
    drain_outbox(svc.engine, routed, svc.settings.app.outbox, svc.clock, limit=10_000)
    review = next(r for r in fake.reviews if r.id == post.external_id)
    state = review.response.state if review.response else "none"
    fake.publish()
    again = run_source(svc, source)
    return (
        f"Public reply on 工单 #{post.case_id}: {said}; Apple holds it as {state} "
        f"({fake.reply_posts} POST); once published the next collection reads it "
        f"({again.status_changes} status change: 回复待发布 → 已回复)"
    )


def send_in_app_feedback(svc: Services, clock: FakeClock, signing_secret: str) -> str:
    interactions = Interactions(svc.engine, svc.settings, clock, None)
    ingestor = Ingestor(lambda: svc, INGEST_SECRET, clock)
    with BackgroundServer(create_app(interactions, signing_secret, ingestor=ingestor)) as url:
        backend = FakeAppBackend(url, INGEST_SECRET)
        events = [
            {
                **e,
                "user_id": f"user-{i}",
                "app_version": "5.3.0",
                "created_at": clock.now().isoformat(),
            }
            for i, e in enumerate(FEEDBACK)
        ]
        first = backend.send(events, int(clock.now().timestamp()))
        again = backend.send(events[:1], int(clock.now().timestamp()) + 1)
    body, repeat = first.json(), again.json()
    return (
        f"In-app feedback: HTTP {first.status_code}, {body['accepted']} events accepted, "
        f"{body['cases_opened']} cases opened; the app resending one: HTTP "
        f"{again.status_code}, {repeat['duplicates']} duplicate, nothing stored twice"
    )


def follow_up(svc: Services, settings: Settings, clock: FakeClock) -> str:
    """Customer service calls back the customers of the first resolved cases."""
    with Session(svc.engine) as s:
        ids = list(
            s.execute(
                select(col(CaseRow.id))
                .where(col(CaseRow.state) == "resolved")
                .order_by(col(CaseRow.resolved_at))
            ).scalars()
        )
    calls = [  # reached, satisfaction, settled
        (True, 5, True),
        (True, 4, True),
        (True, 2, False),
        (False, None, None),
    ]
    said = []
    caller = Actor("U0KEFU0001")
    for case_id, (reached, stars, settled) in zip(ids, calls, strict=False):
        with Session(svc.engine) as s, s.begin():
            case = s.get_one(CaseRow, case_id)
            said.append(
                record_followup(
                    s,
                    settings,
                    case,
                    caller,
                    clock.now(),
                    reached=reached,
                    satisfaction=stars,
                    settled=settled,
                    note="" if reached else "无人接听",
                )
            )
    return "Follow-up calls (回访): " + "; ".join(said)
