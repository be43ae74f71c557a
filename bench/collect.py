"""Collection throughput: parse, grade and store App Store posts through the real pipeline.

Prints, side by side in one run: parsing feed entries into normalised posts;
the shipped model's inference alone (ONNX Runtime, the page's batch) and the
shipped grader alone (the cascade's two models and the policy); storing
(grade, near-duplicate lookup, case, outbox; a page per transaction, as
production does) with the rules grader and with the shipped model, on SQLite
and on PostgreSQL; a bare bulk INSERT of the same rows on the same database in
the same run; and the ratio of the two. PostgreSQL comes from --pg-url or
KOUBEI_TEST_PG_URL, in a schema of its own dropped afterwards; without one, or
when it cannot be reached, its column says why. Usage:

    .venv/bin/python bench/collect.py [--posts 10000] [--pg-url URL] [--threads N]
    .venv/bin/python bench/collect.py --backfill 100000 [--database-url URL]

--backfill N stores N posts page by page as a backfill does (posts generated,
parsed and stored a page at a time, never all held at once) with the model
grader, and reports the time and the process's peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import OperationalError

from monitor.classify import GradeInput, Grader
from monitor.classify.factory import build_grader, load_classifier
from monitor.classify.rules import RulesGrader
from monitor.clock import FakeClock
from monitor.collectors import collector_class
from monitor.collectors.http import HttpClient
from monitor.config import Settings, load_settings
from monitor.domain import Post, Rejected
from monitor.fakes.appstore import Review
from monitor.normalize import normalize
from monitor.page_store import PAGE
from monitor.pipeline import RunResult, Services, page_writer, store_posts
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
NOW = datetime(2026, 11, 28, 2, tzinfo=UTC)


def reviews(n: int, start: int = 0) -> list[Review]:
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
        for i in range(start, start + n)
    ]


def parsed(settings: Settings, batch: list[Review]) -> list[Post]:
    source = settings.app.sources[0]
    collector = collector_class("appstore")(source)
    entries = [r.entry(source.options["app_id"]) for r in batch]
    raw = [collector.parse_entry(e, "bench") for e in entries]  # type: ignore[attr-defined]
    return [normalize(r, NOW) for r in raw if r is not None]


def baseline_rows(posts: list[Post]) -> list[dict[str, object]]:
    return [
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
            "fetched_at": NOW,
            "updated_at": NOW,
        }
        for p in posts
    ]


@contextmanager
def fresh_database(kind: str, pg_url: str | None, tmp: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
        yield url
        return
    assert pg_url is not None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pg_problem(pg_url: str | None) -> str | None:
    """Why PostgreSQL cannot be measured, or None when it can."""
    if not pg_url:
        return "skipped: no --pg-url or KOUBEI_TEST_PG_URL"
    try:
        engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return f"skipped: cannot reach PostgreSQL ({str(exc.orig).splitlines()[0]})"
    return None


class Running(FakeClock):
    """NOW, moving on with the bench's own time: windows (case joins, P3 groups) pass as in
    production instead of every case of the run counting as opened this instant."""

    def __init__(self) -> None:
        super().__init__(NOW)
        self.started = time.perf_counter()

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=time.perf_counter() - self.started)


@dataclass
class Stored:
    seconds: float
    result: RunResult


def store(settings: Settings, url: str, grader: Grader, posts: list[Post]) -> Stored:
    engine = make_engine(url)
    migrate(engine)
    svc = Services(settings, engine, HttpClient(settings.app.http), grader, Running())
    result = RunResult(source=settings.app.sources[0].name)
    rejected: list[Rejected] = []
    started = time.perf_counter()
    store_posts(svc, posts, result, rejected)
    seconds = time.perf_counter() - started
    engine.dispose()
    if rejected or result.new != len(posts):
        raise SystemExit(f"the bench stored {result.new} of {len(posts)}: {rejected[:1]}")
    return Stored(seconds, result)


def bulk_insert(url: str, posts: list[Post]) -> float:
    engine = make_engine(url)
    migrate(engine)
    rows = baseline_rows(posts)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(PostRow.__table__), rows)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def side_by_side(args: argparse.Namespace, settings: Settings) -> None:
    batch = reviews(args.posts)
    started = time.perf_counter()
    posts = parsed(settings, batch)
    parse_s = time.perf_counter() - started
    n = len(posts)
    classifier = load_classifier(settings.model_dir(), args.threads)
    graders: dict[str, Grader] = {
        "rules": RulesGrader(settings.lexicon, settings.policy.raise_one_step),
        "model": build_grader(settings, args.threads),
    }
    batch_size = settings.app.classifier.batch_size
    texts = [p.text for p in posts]
    classifier.logits(texts[:batch_size], batch_size)  # warm up: the first run allocates
    infer_s = timed(lambda: classifier.logits(texts, batch_size))
    items = [GradeInput(t) for t in texts]
    graded_s = timed(lambda: graders["model"].grade_many(items, batch_size))
    pg_url = args.pg_url or os.environ.get("KOUBEI_TEST_PG_URL")
    skipped = {"sqlite": None, "postgresql": pg_problem(pg_url)}

    threads = classifier.session.get_session_options().intra_op_num_threads
    print(
        f"posts: {n}  cores: {os.cpu_count()}  ONNX threads: {threads}  page: {PAGE}  "
        f"model batch: {batch_size}  load: {os.getloadavg()[0]:.2f}"
    )
    print(f"parse (feed entry -> normalised post)  {n / parse_s:10,.0f} posts/s")
    print(f"model inference alone (ONNX, batched)  {n / infer_s:10,.0f} posts/s")
    print(f"shipped grader alone (models + policy) {n / graded_s:10,.0f} posts/s")
    print()
    print(f"{'':40}{'sqlite':>14}{'postgresql':>14}")
    figures: dict[tuple[str, str], float] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, why in skipped.items():
            if why is not None:
                continue
            with fresh_database(kind, pg_url, Path(tmp)) as url:
                figures[("baseline", kind)] = n / bulk_insert(url, posts)
            for name, grader in graders.items():
                with fresh_database(kind, pg_url, Path(tmp)) as url:
                    done = store(settings, url, grader, posts)
                figures[(name, kind)] = n / done.seconds
                r = done.result
                notes.append(
                    f"{name} on {kind}: {r.cases_opened} cases, {r.alerts} alerts, "
                    f"{len(r.by_severity)} grades {dict(sorted(r.by_severity.items()))}"
                )

    def row(label: str, key: str, ratio: bool = False) -> None:
        cells = []
        for kind, why in skipped.items():
            if why is not None:
                cells.append(f"{'-':>14}")
            elif ratio:
                cells.append(f"{figures[(key, kind)] / figures[('baseline', kind)]:13.3f}x")
            else:
                cells.append(f"{figures[(key, kind)]:14,.0f}")
        print(f"{label:40}{''.join(cells)}")

    row("store, rules grader (posts/s)", "rules")
    row("store, shipped model (posts/s)", "model")
    row("baseline: bulk INSERT (posts/s)", "baseline")
    row("store, model / baseline", "model", ratio=True)
    print()
    for kind, why in skipped.items():
        if why is not None:
            print(f"{kind}: {why}")
    for note in notes:
        print(note)


def backfill(args: argparse.Namespace, settings: Settings) -> None:
    grader = build_grader(settings, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'backfill.db'}"
        engine = make_engine(url)
        migrate(engine)
        svc = Services(settings, engine, HttpClient(settings.app.http), grader, Running())
        result = RunResult(source=settings.app.sources[0].name)
        rejected: list[Rejected] = []
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        # One writer for the run, as `koubei backfill` has: a page is graded while the
        # one before it is stored.
        with page_writer(svc, result, rejected) as writer:
            last = 0.0
            for start in range(0, args.backfill, PAGE):
                writer.add(parsed(settings, reviews(min(PAGE, args.backfill - start), start)))
                if (start + PAGE) % 10_000 == 0:  # how the rate holds up as the tables grow
                    so_far = time.perf_counter() - started
                    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    print(
                        f"  {start + PAGE:>7,} posts  {so_far:7.0f} s  "
                        f"(last 10,000: {so_far - last:5.0f} s)  max RSS {rss:,.0f} MiB",
                        flush=True,
                    )
                    last = so_far
            writer.finish()
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        database = engine.dialect.name
        engine.dispose()
    print(
        f"backfill: {result.new:,} posts stored on {database} with the shipped model in "
        f"{seconds:,.0f} s ({result.new / seconds:,.0f} posts/s, parsing included); "
        f"{result.cases_opened:,} cases, {result.alerts:,} alerts, {len(rejected)} quarantined"
    )
    print(
        f"peak memory (max RSS): {peak / 1024:,.0f} MiB "
        f"({rss_before / 1024:,.0f} MiB with the model loaded, before storing)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--pg-url", default=None, help="default: $KOUBEI_TEST_PG_URL")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--backfill", type=int, default=None, metavar="N")
    parser.add_argument(
        "--database-url", default=None, help="--backfill only; default: a temporary SQLite file"
    )
    args = parser.parse_args()
    settings = load_settings(env={})
    if args.backfill:
        backfill(args, settings)
    else:
        side_by_side(args, settings)


if __name__ == "__main__":
    main()
