"""聚投诉 search API and pages, with the login wall reported as a block."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import SourceConfig
from monitor.errors import SourceBlocked
from monitor.fakes.jutousu import FakeJutousu, Post
from monitor.pipeline import Services, fetch_posts, run_source

AT = int(datetime(2026, 11, 26, 8, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/k.db"


def test_search_and_full_text_then_a_login_wall(svc: Services) -> None:
    posts = [
        Post(
            str(900 + i),
            f"借款App<em>投诉</em>{i}",
            "摘要",
            f"借款App重复扣款第{i}次，要求退款",
            f"用户{i}",
            AT - i * 60,
        )
        for i in range(12)
    ]
    with FakeJutousu(posts) as fake:
        source = SourceConfig(
            name="jts",
            kind="jutousu",
            base_url=fake.url,
            options={"keyword": "借款App", "max_pages": 3},
        )
        got, error = fetch_posts(svc.http, svc.clock, source)
        assert error is None and len(got) == 12 and fake.queries[0] == "借款App"
        assert got[0].title == "借款App投诉0" and got[0].body == "借款App重复扣款第0次，要求退款"
        assert got[0].published_at == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
        fake.login_wall = True
        got, error = fetch_posts(svc.http, svc.clock, source)
        assert got == [] and isinstance(error, SourceBlocked)
        result = run_source(svc, source)
        assert result.blocked and result.health is not None
