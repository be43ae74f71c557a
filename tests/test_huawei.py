"""Huawei AppGallery: old GET form, token flow with refresh, dedupe across pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import SourceConfig
from monitor.fakes.huawei import Comment, FakeHuawei
from monitor.pipeline import Services, fetch_posts


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/k.db"


def comments(n: int) -> list[Comment]:
    return [
        Comment(f"hw{i}", f"华为用户{i}", f"第{i}条：一直闪退", 1 + i % 5, "2026-11-27 10:23")
        for i in range(n)
    ]


@pytest.mark.parametrize("old_api", [True, False])
def test_comments_deduplicated_across_pages(svc: Services, old_api: bool) -> None:
    with FakeHuawei("C100148961", comments(60)) as fake:
        fake.old_api = old_api
        fake.expire_next = 0 if old_api else 1  # the token flow refreshes an expired code
        source = SourceConfig(
            name="huawei", kind="huawei", base_url=fake.url, options={"appid": "C100148961"}
        )
        posts, error = fetch_posts(svc.http, svc.clock, source)
    assert error is None
    assert [p.external_id for p in posts] == [f"hw{i}" for i in range(60)]  # repeats dropped
    assert posts[0].published_at == datetime(2026, 11, 27, 2, 23, tzinfo=UTC)  # Beijing time
    assert posts[0].rating == 1 and posts[0].author == "华为用户0"
    assert posts[0].app_version == "5.3.0"
    if not old_api:
        assert fake.tokens_issued == 2
