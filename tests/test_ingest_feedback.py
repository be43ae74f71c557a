"""In-app feedback over real HTTP: signed by the app's backend, stored once, graded, cased."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from monitor.clock import FakeClock
from monitor.fakes.app_backend import FakeAppBackend
from monitor.pipeline import Services
from monitor.store.tables import CaseRow, PostRow
from monitor.web.app import create_app
from monitor.web.background import BackgroundServer
from monitor.web.ingest import Ingestor
from monitor.web.interactions import Interactions
from tests.test_web import SECRET

INGEST_SECRET = "ingest-test-secret-not-real"


def event(n: int, **kw: object) -> dict[str, object]:
    return {
        "id": f"fb-{n}",
        "rating": 1,
        "text": "借款一直审核中，客服也联系不上",
        "user_id": "13900002368",
        "app_version": "5.2.0",
        "created_at": "2026-11-28T10:00:00+08:00",
        "channel": "rating_prompt",
        **kw,
    }


@pytest.fixture
def backend(svc: Services, clock: FakeClock) -> Iterator[FakeAppBackend]:
    interactions = Interactions(svc.engine, svc.settings, clock, None)
    ingestor = Ingestor(lambda: svc, INGEST_SECRET, clock)
    with BackgroundServer(create_app(interactions, SECRET, ingestor=ingestor)) as url:
        yield FakeAppBackend(url, INGEST_SECRET)


def now_ts(clock: FakeClock) -> int:
    return int(clock.now().timestamp())


def posts(svc: Services) -> list[PostRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(PostRow).where(col(PostRow.source) == "inapp")).scalars())


def test_a_signed_event_is_stored_graded_and_cased_with_the_user_hashed(
    backend: FakeAppBackend, svc: Services, clock: FakeClock
) -> None:
    response = backend.send(event(1), now_ts(clock))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1 and response.json()["cases_opened"] == 1
    (post,) = posts(svc)
    assert post.rating == 1 and post.app_version == "5.2.0" and post.case_id is not None
    assert post.author.startswith("u_") and "13900002368" not in post.author
    with Session(svc.engine) as s:
        case = s.get_one(CaseRow, post.case_id)
    assert case.severity in ("P1", "P2", "P3")


def test_a_repeated_id_answers_202_and_stores_nothing_new(
    backend: FakeAppBackend, svc: Services, clock: FakeClock
) -> None:
    assert backend.send(event(1), now_ts(clock)).status_code == 202
    clock.advance(timedelta(seconds=5))
    again = backend.send(event(1, text="改过的内容"), now_ts(clock))
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
    (post,) = posts(svc)
    assert "改过的内容" not in post.body


def test_a_batch_backfills_many_events_at_once(
    backend: FakeAppBackend, svc: Services, clock: FakeClock
) -> None:
    batch = [event(n, text="很好用，放款快", rating=5) for n in range(1, 6)] + [event(1)]
    response = backend.send(batch, now_ts(clock))
    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["duplicates"]) == (5, 1)
    assert len(posts(svc)) == 5


def test_a_replayed_request_is_refused(
    backend: FakeAppBackend, svc: Services, clock: FakeClock
) -> None:
    body = json.dumps(event(9, text="闪退")).encode()
    headers = backend.signed(body, now_ts(clock))
    assert backend.post(body, headers).status_code == 202
    replay = backend.post(body, headers)
    assert replay.status_code == 409 and "replay" in replay.json()["error"]
    assert len(posts(svc)) == 1


@pytest.mark.parametrize("how", ["stale", "future", "bad-signature", "other-secret", "missing"])
def test_a_stale_or_bad_signature_is_refused_and_nothing_stored(
    backend: FakeAppBackend, svc: Services, clock: FakeClock, how: str
) -> None:
    body = json.dumps(event(1)).encode()
    t = now_ts(clock)
    headers = {
        "stale": backend.signed(body, t - 301),
        "future": backend.signed(body, t + 301),
        "bad-signature": {
            **backend.signed(body, t),
            "X-Koubei-Signature": f"t={t},v1={'0' * 64}",
        },
        "other-secret": FakeAppBackend(backend.url, "another-secret").signed(body, t),
        "missing": {"Content-Type": "application/json"},
    }[how]
    response = backend.post(body, headers)
    assert response.status_code == 401
    assert posts(svc) == []


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"rating": 6}, "rating"),
        ({"id": "../../x"}, "id"),
        ({"created_at": "2026-11-28T10:00:00"}, "time zone"),
        ({"text": "长" * 10_001}, "text"),
    ],
)
def test_a_malformed_event_is_refused_with_what_is_wrong(
    backend: FakeAppBackend, svc: Services, clock: FakeClock, bad: dict[str, object], says: str
) -> None:
    response = backend.send([event(1), event(2, **bad)], now_ts(clock))
    assert response.status_code == 400
    assert "event 1" in response.json()["error"] and says in response.json()["error"]
    assert posts(svc) == []  # the batch is refused whole: the backend fixes and resends


def test_without_a_secret_the_endpoint_says_it_is_off(svc: Services, clock: FakeClock) -> None:
    import httpx

    interactions = Interactions(svc.engine, svc.settings, clock, None)
    with BackgroundServer(create_app(interactions, SECRET)) as url:
        response = httpx.post(f"{url}/ingest/feedback", content=b"{}")
    assert response.status_code == 503 and "KOUBEI_INGEST_SECRET" in response.json()["error"]
