"""The App Store collector against a local fake feed: formats and every quirk in SOURCES.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.clock import FakeClock
from monitor.collectors.http import HttpClient
from monitor.errors import FetchError, ParseError
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.server import FakeServer, Request, Response
from monitor.pipeline import Services, fetch_posts, run_source
from tests.conftest import RecordingSleep, reviews

FIXTURES = Path(__file__).parent / "fixtures" / "appstore"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Collector behaviour does not depend on the database: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'koubei.db'}"


class RecordedFeed(FakeServer):
    """Serves one recorded page as page 1; later pages answer Apple's depth error."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def handle(self, request: Request) -> Response:
        if "page=1/" in request.path:
            return Response(200, self.body, {"Content-Type": "application/json"})
        return Response(400, "CustomerReviews RSS page depth is limited to 10")


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_recorded_pages_parse_to_expected_posts(name: str, svc: Services, clock: FakeClock) -> None:
    expected = yaml.safe_load((FIXTURES / f"{name}.expected.yaml").read_text(encoding="utf-8"))
    with RecordedFeed((FIXTURES / f"{name}.json").read_bytes()) as server:
        source = svc.settings.app.sources[0].model_copy(update={"base_url": server.url})
        posts, error = fetch_posts(svc.http, clock, source)
    assert error is None
    got = [
        {
            "external_id": p.external_id,
            "author": p.author,
            "rating": p.rating,
            "app_version": p.app_version,
            "title": p.title,
            "body": p.body,
            "published_at": p.as_json()["published_at"],
            **({"votes": p.votes} if p.votes else {}),
        }
        for p in posts
    ]
    assert got == expected


def test_pages_through_the_feed_and_stops_at_depth_ten(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(620)  # more than Apple will ever show (10 pages x 50)
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.ok and result.fetched == 500 and result.new == 500
    pages = [r.path for r in appstore.requests]
    assert len(pages) == 10 and all("page=11" not in p for p in pages)


def test_http_400_past_the_last_page_ends_the_run_cleanly(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(120)
    appstore.quirks.statuses[3] = [400]  # what Apple answers past its depth
    posts, error = fetch_posts(svc.http, svc.clock, svc.settings.app.sources[0])
    assert error is None and len(posts) == 100  # pages 1-2, then a clean end


def test_transient_empty_page_is_retried_not_taken_as_no_reviews(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(80)
    appstore.quirks.empty_pages[1] = 2
    appstore.quirks.empty_pages[2] = 1
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.ok and result.new == 80
    assert len(appstore.requests) == 5  # page 1 three times, page 2 twice


def test_an_empty_page_that_stays_empty_is_an_error_and_loses_nothing(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(120)
    appstore.quirks.empty_pages[2] = 99
    source = svc.settings.app.sources[0]
    first = run_source(svc, source)
    assert not first.ok and "page 2 came back without entries" in (first.error or "")
    assert first.new == 50  # page 1 was kept
    # The next run pages back fully instead of stopping at what is stored.
    appstore.quirks.empty_pages.clear()
    second = run_source(svc, source)
    assert second.ok and second.new == 70


def test_single_review_arrives_as_an_object(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(1)
    posts, error = fetch_posts(svc.http, svc.clock, svc.settings.app.sources[0])
    assert error is None and [p.external_id for p in posts] == ["12000000001"]


def test_entries_without_rating_are_skipped(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(3)
    appstore.quirks.app_metadata_entry = True
    posts, _ = fetch_posts(svc.http, svc.clock, svc.settings.app.sources[0])
    assert len(posts) == 3 and all(p.rating == 1 for p in posts)


def test_incremental_run_stops_at_stored_reviews(svc: Services, appstore: FakeAppStore) -> None:
    appstore.reviews = reviews(300)
    source = svc.settings.app.sources[0]
    assert run_source(svc, source).new == 300
    appstore.requests.clear()
    appstore.add_newer(reviews(7, start=301))
    second = run_source(svc, source)
    assert second.ok and second.new == 7
    assert len(appstore.requests) == 1  # page 1 held stored reviews: no need to go deeper


def test_server_errors_and_429_are_retried_honouring_retry_after(
    svc: Services, appstore: FakeAppStore, sleeps: RecordingSleep
) -> None:
    appstore.reviews = reviews(10)
    appstore.quirks.statuses[1] = [503, 429]
    appstore.quirks.retry_after = "7"
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.ok and result.new == 10
    assert 7.0 in sleeps.calls  # waited as long as the server asked


def test_gives_up_after_bounded_retries_with_a_clear_error(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(10)
    appstore.quirks.statuses[1] = [503] * 10
    result = run_source(svc, svc.settings.app.sources[0])
    assert not result.ok
    assert "appstore-cn" in (result.error or "") and "HTTP 503" in (result.error or "")
    assert "gave up after 3 tries" in (result.error or "")
    assert len(appstore.requests) == 3


def test_retry_after_beyond_the_cap_is_not_waited_for(
    svc: Services, appstore: FakeAppStore, sleeps: RecordingSleep
) -> None:
    appstore.reviews = reviews(10)
    appstore.quirks.statuses[1] = [429]
    appstore.quirks.retry_after = "86400"
    posts, error = fetch_posts(svc.http, svc.clock, svc.settings.app.sources[0])
    assert posts == [] and error is not None and "max_retry_after_s" in str(error)
    assert sleeps.calls == []


def test_malformed_json_is_a_parse_error_naming_source_and_url(svc: Services) -> None:
    with RecordedFeed(b'{"feed": {"entry": [') as server:
        source = svc.settings.app.sources[0].model_copy(update={"base_url": server.url})
        posts, error = fetch_posts(svc.http, svc.clock, source)
    assert posts == []
    assert error is not None
    assert isinstance(error, ParseError)
    assert "appstore-cn" in str(error) and server.url in str(error) and "not JSON" in str(error)


def test_every_request_names_us_and_uses_the_documented_url(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(2)
    fetch_posts(svc.http, svc.clock, svc.settings.app.sources[0])
    request = appstore.requests[0]
    assert request.headers["user-agent"] == svc.settings.app.http.user_agent
    assert request.path == "/cn/rss/customerreviews/page=1/id=1440195432/sortby=mostrecent/json"


def test_connection_refused_is_a_fetch_error(svc: Services, sleeps: RecordingSleep) -> None:
    source = svc.settings.app.sources[0].model_copy(update={"base_url": "http://127.0.0.1:9"})
    with pytest.raises(FetchError, match="connection failed"):
        client = HttpClient(svc.settings.app.http, sleep=sleeps)
        client.get("http://127.0.0.1:9/cn/rss", source=source.name)
