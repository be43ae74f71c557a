"""The App Store Connect source against a local fake that verifies tokens as Apple does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from monitor.classify.rules import RulesGrader
from monitor.clock import FakeClock
from monitor.collectors.appstoreconnect import AppStoreConnect
from monitor.collectors.http import HttpClient
from monitor.config import SourceConfig, load_settings
from monitor.errors import SourceBlocked
from monitor.fakes.appstoreconnect import ConnectReview, FakeAppStoreConnect, ReviewResponse
from monitor.pipeline import Services, run_source
from monitor.store.tables import PostRow, QuarantineRow, SourceRunRow, SourceStateRow
from tests.conftest import RecordingSleep, write_config

KEY_ID = "2X9R4HXF34"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
APP_ID = "1440195432"
ENV = "KOUBEI_TEST_ASC_KEY"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The collector's behaviour does not depend on the database: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'koubei.db'}"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def connect_review(n: int, **kw: object) -> ConnectReview:
    """Review n; higher numbers are newer."""
    day, rest = divmod(n, 1440)
    values: dict[str, object] = {
        "id": f"00000028-b08c-0014-{n:04x}-fbd500000000",
        "rating": 1,
        "title": f"标题{n}",
        "body": f"第{n}次登录失败，一直闪退",
        "nickname": f"用户{n}",
        "created": f"2026-10-{1 + day:02d}T{rest // 60:02d}:{rest % 60:02d}:00-07:00",
        **kw,
    }
    return ConnectReview(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.t = 1_790_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def asc_clock() -> Clock:
    return Clock()


@pytest.fixture
def asc(key: ec.EllipticCurvePrivateKey, asc_clock: Clock) -> Iterator[FakeAppStoreConnect]:
    fake = FakeAppStoreConnect(
        public_key_pem=_public(key), key_id=KEY_ID, issuer_id=ISSUER, app_id=APP_ID, clock=asc_clock
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
def services(
    tmp_path: Path, source: SourceConfig, engine: Engine, clock: FakeClock
) -> Iterator[Services]:
    settings = load_settings(write_config(tmp_path), env={})
    app = settings.app.model_copy(update={"sources": [source]})
    settings = settings.model_copy(update={"app": app})
    http = HttpClient(settings.app.http, sleep=RecordingSleep())
    yield Services(
        settings=settings,
        engine=engine,
        http=http,
        grader=RulesGrader(settings.lexicon, settings.policy.raise_one_step),
        clock=clock,
    )
    http.close()


def test_pages_through_links_next_to_the_end_then_stops_at_what_is_stored(
    asc: FakeAppStoreConnect,
    key: ec.EllipticCurvePrivateKey,
    services: Services,
    source: SourceConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, _pem(key))
    asc.reviews = [connect_review(n) for n in range(1, 451)]
    first = run_source(services, source)
    assert first.ok, first.error
    assert (first.fetched, first.new) == (450, 450)
    lists = [r for r in asc.requests if r.endswith("sort=-createdDate") or "cursor=" in r]
    assert len(lists) == 3  # 200 + 200 + 50, following links.next
    assert all("limit=200" in r for r in lists)

    asc.reviews += [connect_review(n) for n in range(451, 456)]
    before = len(asc.requests)
    second = run_source(services, source)
    assert (second.fetched, second.new) == (200, 5)  # one page: it reached stored reviews
    assert len(asc.requests) - before == 1
    with Session(services.engine) as s:
        stored = s.execute(select(col(PostRow.id)).where(col(PostRow.source) == "asc")).all()
    assert len(stored) == 455


def test_a_token_is_renewed_before_apple_would_refuse_it(
    asc: FakeAppStoreConnect,
    key: ec.EllipticCurvePrivateKey,
    asc_clock: Clock,
    source: SourceConfig,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(ENV, _pem(key))
    asc.reviews = [connect_review(n) for n in range(1, 601)]
    settings = load_settings(write_config(tmp_path), env={})
    collector = AppStoreConnect(source)
    collector.clock = asc_clock
    got = 0
    with HttpClient(settings.app.http, sleep=RecordingSleep()) as http:
        for _post in collector.fetch(http):
            got += 1
            if got % 200 == 0:
                asc_clock.t += 25 * 60  # a slow page: the first token is long expired
    assert got == 600
    assert asc.tokens.refused == []  # renewed in time, not after a 401
    assert len(set(asc.tokens.seen)) == 3


def test_a_bad_key_is_a_source_block_never_no_reviews(
    asc: FakeAppStoreConnect,
    services: Services,
    source: SourceConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv(ENV, _pem(wrong))
    asc.reviews = [connect_review(n) for n in range(1, 4)]
    result = run_source(services, source)
    assert not result.ok and result.blocked
    assert "refused the API key" in (result.error or "") and ENV in (result.error or "")
    assert "PRIVATE KEY" not in (result.error or "")
    assert len(asc.tokens.refused) == 2  # the first token, then one fresh try
    with Session(services.engine) as s:
        state = s.get(SourceStateRow, "asc")
        run = s.execute(select(SourceRunRow).where(SourceRunRow.source == "asc")).scalars().one()
    assert state is not None and state.blind and run.status != "ok"


def test_a_missing_key_names_the_variable_to_set(
    source: SourceConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SourceBlocked, match=f"set {ENV}"):
        AppStoreConnect(source).token()


def test_reviews_carry_territory_and_the_published_response(
    asc: FakeAppStoreConnect,
    key: ec.EllipticCurvePrivateKey,
    services: Services,
    source: SourceConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, _pem(key))
    answered = connect_review(
        2,
        territory="HKG",
        response=ReviewResponse("6c7a1", "您好，已为您处理", "2026-10-01T09:00:00-07:00"),
    )
    asc.reviews = [connect_review(1), answered]
    asc.rate_limited = 1  # Apple's 429 is waited out as for any source
    assert run_source(services, source).ok
    with Session(services.engine) as s:
        rows = {r.external_id: r for r in s.execute(select(PostRow)).scalars()}
    got = rows[answered.id]
    assert got.extra["territory"] == "HKG"
    assert got.extra["response"]["body"] == "您好，已为您处理"
    assert got.platform_status == "已回复"
    assert rows[connect_review(1).id].platform_status is None


def test_the_source_needs_no_base_url() -> None:
    from monitor.collectors import validate_source_options

    bare = SourceConfig(
        name="asc",
        kind="appstoreconnect",
        options={"app_id": APP_ID, "issuer_id": ISSUER, "key_id": KEY_ID},
    )
    assert validate_source_options(bare) == []
    assert AppStoreConnect(bare).list_url().startswith("https://api.appstoreconnect.apple.com/v1/")
    rss = SourceConfig(name="news", kind="rss", options={"path": "/feed"})
    assert any(".base_url" in p for p in validate_source_options(rss))


def test_a_review_with_a_bad_date_is_quarantined_and_the_page_stored(
    asc: FakeAppStoreConnect,
    key: ec.EllipticCurvePrivateKey,
    services: Services,
    source: SourceConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, _pem(key))
    asc.reviews = [connect_review(1), connect_review(2, created="yesterday"), connect_review(3)]
    result = run_source(services, source)
    assert result.ok and result.new == 2 and result.quarantined == 1
    with Session(services.engine) as s:
        held = s.execute(select(QuarantineRow)).scalars().all()
    assert [q.external_id for q in held] == [connect_review(2).id]
    assert "createdDate" in held[0].error
