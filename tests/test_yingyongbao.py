"""Tencent 应用宝 reviews from the page's __NEXT_DATA__."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import SourceConfig
from monitor.fakes.yingyongbao import Comment, FakeYingyongbao
from monitor.pipeline import Services, fetch_posts

CREATED = int(datetime(2026, 11, 27, 3, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/k.db"


def test_reviews_and_a_changed_page(svc: Services) -> None:
    comments = [
        Comment("c1", "安卓用户", "一直闪退，登录不了", CREATED, 1.0, praise=3),
        Comment("c2", "小米用户", "放款快", CREATED - 60, 5.0),
    ]
    with FakeYingyongbao("com.example.loan", comments) as fake:
        source = SourceConfig(
            name="yyb",
            kind="yingyongbao",
            base_url=fake.url,
            options={"package": "com.example.loan"},
        )
        posts, error = fetch_posts(svc.http, svc.clock, source)
        assert error is None
        assert [(p.external_id, p.rating, p.author, p.votes) for p in posts] == [
            ("c1", 1, "安卓用户", 3),
            ("c2", 5, "小米用户", 0),
        ]
        assert posts[0].published_at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
        fake.changed_layout = True
        posts, error = fetch_posts(svc.http, svc.clock, source)
        assert posts == [] and error is not None and "__NEXT_DATA__" in str(error)
