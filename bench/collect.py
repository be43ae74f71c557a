"""Collection throughput: parse and store 10,000 posts through the real pipeline.

Prints posts per second for (1) parsing App Store feed entries into normalised
posts, (2) storing them with grading, cases and outbox rows (one transaction
per post, as production does), and, as a baseline measured in the same run,
(3) a bare bulk INSERT of the same rows. Usage:

    .venv/bin/python bench/collect.py [--posts 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from monitor.classify.rules import RulesGrader
from monitor.clock import FakeClock
from monitor.collectors import collector_class
from monitor.collectors.http import HttpClient
from monitor.config import load_settings
from monitor.fakes.appstore import Review
from monitor.normalize import normalize
from monitor.pipeline import RunResult, Services, process_post
from monitor.store.engine import make_engine, migrate
from monitor.store.tables import PostRow

TEXTS = [
    "一直闪退，登录不了，还款失败",
    "砍头息太狠了，服务费会员费一大堆",
    "催收天天打电话骚扰我家人",
    "放款很快，体验不错",
    "广告太多了，不推荐",
    "客服电话打不通，等了一天",
    "额度太低，没什么用",
]
# Customers word things their own way: each review mixes a complaint with its own details.
DETAILS = [
    "上个月",
    "借了三千",
    "周末",
    "晚上十点",
    "在地铁上",
    "第二次了",
    "朋友推荐的",
    "用了半年",
    "刚更新完",
    "月底发工资前",
    "找了好几次",
    "真的很着急",
    "老用户了",
]


def reviews(n: int) -> list[Review]:
    return [
        Review(
            id=str(20_000_000 + i),
            author=f"用户{i}",
            rating=1 + i % 5,
            title=f"标题{i}",
            content=f"{DETAILS[i % 13]}{TEXTS[i % len(TEXTS)]}，{DETAILS[(i * 7) % 11]}，"
            f"{DETAILS[(i * 5 + 3) % 13]}（订单{i * 7919 % 100000}）",
            updated=f"2026-11-{1 + i % 27:02d}T{i % 24:02d}:{i % 60:02d}:00-08:00",
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    settings = load_settings(env={})
    source = settings.app.sources[0]
    entries = [r.entry(source.options["app_id"]) for r in reviews(args.posts)]
    collector = collector_class("appstore")(source)
    now = datetime(2026, 11, 28, 2, tzinfo=UTC)

    started = time.perf_counter()
    raw = [collector.parse_entry(e, "bench") for e in entries]  # type: ignore[attr-defined]
    posts = [normalize(r, now) for r in raw if r is not None]
    parse_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        migrate(engine)
        svc = Services(
            settings,
            engine,
            HttpClient(settings.app.http),
            RulesGrader(settings.lexicon, settings.policy.raise_one_step),
            FakeClock(now),
        )
        result = RunResult(source=source.name)
        started = time.perf_counter()
        for post in posts:
            process_post(svc, post, result)
        store_s = time.perf_counter() - started

        baseline_engine = make_engine(
            f"sqlite:///{Path(tmp) / 'baseline.db'}" if not args.database_url else url
        )
        migrate(baseline_engine)
        rows: list[dict[str, object]] = [
            {
                "source": "baseline",
                "kind": p.kind,
                "external_id": p.external_id,
                "url": p.url,
                "author": p.author,
                "title": p.title,
                "body": p.body,
                "rating": p.rating,
                "app_version": p.app_version,
                "votes": 0,
                "extra": {},
                "content_hash": p.content_hash,
                "published_at": p.published_at,
                "fetched_at": now,
                "updated_at": now,
            }
            for p in posts
        ]
        started = time.perf_counter()
        with baseline_engine.begin() as conn:
            conn.execute(insert(PostRow.__table__), rows)  # type: ignore[attr-defined]
        bulk_s = time.perf_counter() - started
        database = engine.dialect.name

    n = len(posts)
    print(f"posts: {n}  database: {database}")
    print(f"parse (feed entry -> normalised post):   {n / parse_s:10,.0f} posts/s")
    print(
        f"store (grade, case, outbox; 1 txn/post): {n / store_s:10,.0f} posts/s "
        f"({result.cases_opened} cases, {result.alerts} alerts)"
    )
    print(f"baseline (bulk INSERT, no grading):      {n / bulk_s:10,.0f} posts/s")
    print(f"store / baseline: {bulk_s / store_s:.3f}x")


if __name__ == "__main__":
    main()
