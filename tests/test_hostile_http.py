"""Hostile sources over real HTTP: slow drips, redirects into our network, ids that are paths."""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.collectors.http import HttpClient
from monitor.collectors.redirects import refusal
from monitor.config import HttpConfig, Settings, SourceConfig
from monitor.errors import FetchError
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.heimao import Complaint, FakeHeimao
from monitor.fakes.jutousu import FakeJutousu, Post
from monitor.pipeline import Services, fetch_posts, run_source
from monitor.store.tables import PostRow, SourceRunRow, SourceStateRow
from tests.conftest import reviews

FEED = "/cn/rss/customerreviews/page=1/id=1440195432/sortby=mostrecent/json"


class Drip(socketserver.ThreadingTCPServer):
    """Answers every connection one byte every `every` seconds, `total` bytes at most.

    `phase="headers"` drips the status line and headers too; `phase="body"` sends
    the headers at once and drips the body. The drip ends (the answer completes)
    after `total` bytes, so code without a total deadline gets a full answer late.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, phase: str, every: float = 0.1, total: int = 60) -> None:
        self.phase, self.every, self.total = phase, every, total
        self.connections = 0
        self.stopped = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                self.request.recv(65536)
                body = b"x" * server.total
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                )
                slow = head + body if server.phase == "headers" else body
                if server.phase == "body":
                    self.request.sendall(head)
                for i in range(len(slow)):
                    if server.stopped.wait(server.every):
                        return
                    try:
                        self.request.sendall(slow[i : i + 1])
                    except OSError:
                        return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Drip:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.shutdown()
        self.server_close()


def quick(**update: object) -> HttpConfig:
    base = {"timeout_s": 5, "deadline_s": 1, "max_retries": 1, "backoff_base_s": 0}
    return HttpConfig.model_validate({**base, **update})


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_source_dripping_bytes_fails_at_the_deadline_and_is_retried(phase: str) -> None:
    with Drip(phase, every=0.1, total=60) as drip, HttpClient(quick()) as http:
        began = time.monotonic()
        with pytest.raises(FetchError) as caught:
            http.get(drip.url + "/feed", source="slowpoke")
        took = time.monotonic() - began
    # Each byte comes well inside the 5 s read timeout; only the 1 s deadline stops it,
    # once per try (two tries), instead of the 6 s the whole drip takes.
    assert took < 3.5, f"took {took:.1f}s"
    assert drip.connections == 2
    message = str(caught.value)
    assert "slowpoke" in message and "http.deadline_s=1s" in message
    assert "gave up after 2 tries" in message


def test_a_dripping_source_fails_its_run_and_counts_as_a_failure(
    svc: Services, settings: Settings
) -> None:
    with Drip("body", every=0.1, total=60) as drip:
        app = settings.app.model_copy(
            update={
                "http": quick(max_retries=0),
                "sources": [settings.app.sources[0].model_copy(update={"base_url": drip.url})],
            }
        )
        svc.settings = settings.model_copy(update={"app": app})
        with HttpClient(app.http) as http:
            svc.http = http
            began = time.monotonic()
            result = run_source(svc, app.sources[0])
            took = time.monotonic() - began
    assert took < 3 and result.error is not None and "deadline" in result.error
    with Session(svc.engine) as s:
        run = s.execute(select(SourceRunRow)).scalar_one()
        state = s.get_one(SourceStateRow, "appstore-cn")
    assert run.status == "failed" and run.finished_at is not None
    assert state.consecutive_failures == 1 and "deadline" in (state.last_error or "")


# --- redirects -----------------------------------------------------------------


@pytest.fixture
def inner() -> Iterator[FakeAppStore]:
    """Something on our own network that answers like the store (e.g. an internal service)."""
    with FakeAppStore(reviews(3, start=500, content="内部服务的数据")) as server:
        yield server


def stored(svc: Services) -> list[PostRow]:
    with Session(svc.engine) as s:
        return list(s.execute(select(PostRow)).scalars().all())


def test_a_redirect_to_another_host_is_refused_and_nothing_is_stored(
    svc: Services, appstore: FakeAppStore, inner: FakeAppStore
) -> None:
    appstore.reviews = reviews(2)
    appstore.quirks.redirects = [inner.url + FEED]
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.error is not None and "refused a redirect to another host" in result.error
    assert "http.redirect_hosts" in result.error  # says what to do if it is genuine
    assert inner.requests == [] and stored(svc) == []
    with Session(svc.engine) as s:
        assert s.execute(select(col(SourceRunRow.status))).scalar_one() == "failed"


def test_a_redirect_on_the_sources_own_host_is_followed(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(2)
    appstore.quirks.redirects = [appstore.url + FEED.replace("sortby", "sortBy")]
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.error is None and len(stored(svc)) == 2


def with_redirect_hosts(svc: Services, hosts: dict[str, list[str]]) -> HttpConfig:
    return svc.settings.app.http.model_copy(update={"redirect_hosts": hosts})


def test_a_listed_host_is_followed_from_a_source_on_the_same_network(
    svc: Services, appstore: FakeAppStore, inner: FakeAppStore
) -> None:
    port = inner.url.rsplit(":", 1)[1]
    appstore.quirks.redirects = [f"http://localhost:{port}{FEED}"]
    config = with_redirect_hosts(svc, {"127.0.0.1": [f"localhost:{port}"]})
    source = svc.settings.app.sources[0]
    with HttpClient(config) as http:
        posts, error = fetch_posts(http, svc.clock, source)
    assert error is None and len(posts) == 3 and len(inner.requests) == 1


def test_a_listed_host_on_a_private_address_is_refused_from_a_public_source(
    svc: Services, appstore: FakeAppStore, inner: FakeAppStore
) -> None:
    """The store's host resolves to a public address here; the listed host to loopback."""
    port = appstore.url.rsplit(":", 1)[1]
    appstore.quirks.redirects = [inner.url + FEED]
    config = with_redirect_hosts(svc, {"localhost": ["127.0.0.1"]})
    public = {"localhost": ["17.253.144.10"], "127.0.0.1": ["127.0.0.1"]}
    source = svc.settings.app.sources[0].model_copy(update={"base_url": f"http://localhost:{port}"})
    with HttpClient(config, resolve=lambda host: public.get(host, [])) as http:
        posts, error = fetch_posts(http, svc.clock, source)
    assert posts == [] and error is not None
    assert "resolves to a non-public address (127.0.0.1)" in str(error)
    assert inner.requests == []


@pytest.mark.parametrize(
    ("target", "addresses"),
    [
        ("http://metadata.internal/latest", ["169.254.169.254"]),
        ("https://intranet.example/", ["10.1.2.3"]),
        ("https://v6.example/", ["::1"]),
        ("https://mapped.example/", ["::ffff:192.168.1.9"]),
        ("https://nowhere.example/", []),
    ],
)
def test_redirects_into_private_address_space_are_refused(
    target: str, addresses: list[str]
) -> None:
    host = httpx.URL(target).host
    names = {"itunes.apple.com": ["17.253.144.10"], host: addresses}
    allowed = {"itunes.apple.com": [host]}
    why = refusal(
        httpx.URL("https://itunes.apple.com/cn/rss"),
        httpx.URL(target),
        allowed,
        lambda h: names.get(h, []),
    )
    assert why is not None and host in why


def test_redirects_to_other_schemes_are_refused() -> None:
    origin = httpx.URL("http://127.0.0.1:8080/a")
    assert refusal(origin, httpx.URL("file:///etc/passwd"), {}) is not None
    assert refusal(origin, httpx.URL("http://127.0.0.1:8081/a"), {}) is not None
    assert refusal(httpx.URL("http://x.example/"), httpx.URL("https://x.example/b"), {}) is None


# --- ids from the payload that go into URLs ---------------------------------------

HOSTILE_IDS = ["../../redirect?to=http://127.0.0.1:9/", "1%2F..%2F..%2Fadmin", "12#frag", "a b"]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_heimao_skips_a_complaint_whose_sn_is_not_an_id(
    svc: Services, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    filed = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    complaints = [
        Complaint(sn="17380002000", title="乱收费", text="会员费乱收费，要求退款", filed=filed),
        Complaint(sn="17380001000", title="暴力催收", text="催收打电话骚扰家人", filed=filed),
    ]
    with FakeHeimao(complaints=complaints) as fake:
        fake.faults.first_sn = bad
        source = SourceConfig(
            name="heimao", kind="heimao", base_url=fake.url, options={"couid": fake.couid}
        )
        with caplog.at_level(logging.WARNING, logger="monitor.collectors"):
            posts, error = fetch_posts(svc.http, svc.clock, source)
        paths = [r.path for r in fake.requests]
    assert error is None
    assert [p.external_id for p in posts] == ["17380001000"]  # the rest of the page is kept
    assert set(paths) == {"/api/company/received_complaints", "/complaint/view/17380001000/"}
    assert any("skipped an item whose sn" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_jutousu_skips_a_post_whose_id_is_not_an_id(svc: Services, bad: str) -> None:
    at = int(datetime(2026, 11, 26, 8, 0, tzinfo=UTC).timestamp())
    posts = [
        Post(bad, "扣款", "摘要", "重复扣款", "甲", at),
        Post("9001", "催收", "摘要", "催收骚扰", "乙", at - 60),
    ]
    with FakeJutousu(posts) as fake:
        source = SourceConfig(
            name="jts", kind="jutousu", base_url=fake.url, options={"keyword": "借款App"}
        )
        got, error = fetch_posts(svc.http, svc.clock, source)
    assert error is None and [p.external_id for p in got] == ["9001"]
    assert got[0].body == "催收骚扰"


def test_a_resolver_failure_is_not_a_crash() -> None:
    """A real lookup of a name that cannot exist answers no addresses, not an exception."""
    from monitor.collectors.redirects import resolve_host

    assert resolve_host("no-such-host.invalid") == []
    assert resolve_host("127.0.0.1") == ["127.0.0.1"]
