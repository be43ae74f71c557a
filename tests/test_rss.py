"""RSS/Atom with keyword filters and conditional GET, against a local fake feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.config import SourceConfig
from monitor.fakes.rss import FakeRss, Item
from monitor.pipeline import Services, fetch_posts, run_source
from monitor.store.tables import PostRow, SourceRunRow

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def feed() -> Iterator[FakeRss]:
    items = [
        Item(
            "w1",
            "借款App暴力催收",
            "<p>借款App的催收天天打电话<b>威胁</b>我，已经报警</p>",
            AT,
            author="微博用户A",
        ),
        Item("w2", "今天天气不错", "和借款无关的内容", AT - timedelta(hours=1)),
        Item("w3", "借款App 招聘", "借款App 招聘客服，广告", AT - timedelta(hours=2)),
        Item("w4", "借款App放款快", "借款App 审批很快，点赞", AT - timedelta(hours=3)),
    ]
    with FakeRss(items) as server:
        yield server


@pytest.fixture
def source(feed: FakeRss) -> SourceConfig:
    return SourceConfig(
        name="weibo-rss",
        kind="rss",
        base_url=feed.url,
        options={"path": feed.path, "include": ["借款App"], "exclude": ["招聘"]},
    )


def test_entries_are_filtered_and_normalized(
    svc: Services, feed: FakeRss, source: SourceConfig
) -> None:
    posts, error = fetch_posts(svc.http, svc.clock, source)
    assert error is None
    assert [p.external_id for p in posts] == ["w1", "w4"]  # w2 not about us, w3 excluded
    assert posts[0].body == "借款App的催收天天打电话 威胁 我，已经报警"
    assert posts[0].published_at == AT and posts[0].author == "微博用户A"
    assert posts[0].kind == "rss" and posts[0].url == "https://weibo.example/w1"


def test_conditional_get_stores_nothing_on_304(
    svc: Services, feed: FakeRss, source: SourceConfig
) -> None:
    first = run_source(svc, source)
    assert first.new == 2 and first.cases_opened == 1
    second = run_source(svc, source)
    assert second.fetched == 0 and second.new == 0 and second.ok and second.health is None
    assert feed.not_modified == 1 and "if-none-match" in feed.requests[-1].headers
    with Session(svc.engine) as s:
        statuses = (
            s.execute(select(col(SourceRunRow.status)).order_by(col(SourceRunRow.id)))
            .scalars()
            .all()
        )
        assert statuses == ["ok", "unchanged"]
        assert s.execute(select(PostRow)).scalars().all().__len__() == 2
    feed.items.insert(
        0, Item("w5", "借款App乱扣款", "借款App重复扣款不退", AT + timedelta(hours=1))
    )
    third = run_source(svc, source)
    assert third.new == 1


def test_a_feed_that_stopped_being_a_feed_is_a_parse_error(
    svc: Services, feed: FakeRss, source: SourceConfig
) -> None:
    feed.broken = True
    result = run_source(svc, source)
    assert not result.ok and "not an RSS or Atom feed" in (result.error or "")


def test_zero_items_against_a_baseline_makes_the_source_blind(
    svc: Services, feed: FakeRss, source: SourceConfig
) -> None:
    for i in range(3):  # a few good runs build the baseline
        feed.items.insert(
            0, Item(f"n{i}", f"借款App 新帖{i}", f"借款App 第{i}条", AT + timedelta(hours=i))
        )
        assert run_source(svc, source).ok
    feed.items = [Item("x", "别的话题", "与我们无关", AT)]  # a changed query: nothing matches
    result = run_source(svc, source)
    assert result.ok and result.fetched == 0
    assert result.health is not None and "0 条" in result.health
    assert run_source(svc, source).health is None  # said once, not every run
