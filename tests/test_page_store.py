"""Posts stored a page per transaction: all of a page or none of it, graded in one batch,
and a run cut short mid-page loses nothing and alerts nothing twice on the next run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from monitor import page_store, pipeline
from monitor.cases import attach_to_case
from monitor.classify import GradeInput, Grader
from monitor.collectors.appstore import AppStore
from monitor.domain import Post, Rejected, Verdict
from monitor.fakes.appstore import FakeAppStore
from monitor.normalize import normalize
from monitor.page_writer import PageWriter
from monitor.pipeline import RunResult, Services, run_source, store_posts
from monitor.store.tables import AlertRow, CaseRow, PostRow, SourceStateRow, VerdictRow
from tests.conftest import review, reviews


def count(engine: Engine, table: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


class Counting:
    """The real grader, recording the size of each batch it is handed."""

    def __init__(self, inner: Grader) -> None:
        self.inner = inner
        self.name = inner.name
        self.batches: list[int] = []

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        self.batches.append(len(items))
        return self.inner.grade_many(items, batch_size)

    def grade(self, text: str, **kwargs: Any) -> Verdict:
        return self.grade_many([GradeInput(text, **kwargs)])[0]


@pytest.fixture
def commits(svc: Services) -> Iterator[list[int]]:
    seen: list[int] = []

    def on_commit(_conn: Any) -> None:
        seen.append(1)

    event.listen(svc.engine, "commit", on_commit)
    yield seen
    event.remove(svc.engine, "commit", on_commit)


def posts(svc: Services, n: int, **kwargs: Any) -> list[Post]:
    app_id = svc.settings.app.sources[0].options["app_id"]
    collector = AppStore(svc.settings.app.sources[0])
    raw = [collector.parse_entry(r.entry(app_id), "test") for r in reviews(n, **kwargs)]
    return [normalize(r, svc.clock.now()) for r in raw if r is not None]


def test_a_page_is_one_transaction_and_one_grading_batch(svc: Services, commits: list[int]) -> None:
    grader = Counting(svc.grader)
    svc.grader = grader
    result = RunResult(source="appstore-cn")
    rejected: list[Rejected] = []
    page = posts(svc, 2 * page_store.PAGE + 50, content="重复扣款，不退钱")
    store_posts(svc, page, result, rejected)
    assert result.new == 2 * page_store.PAGE + 50 and rejected == []
    assert len(commits) == 3  # two full pages and the rest
    assert grader.batches == [page_store.PAGE, page_store.PAGE, 50]
    assert count(svc.engine, VerdictRow) == count(svc.engine, PostRow) == result.new
    assert count(svc.engine, AlertRow) == count(svc.engine, CaseRow) == result.alerts > 0


def test_identical_texts_in_a_page_are_graded_once(svc: Services) -> None:
    grader = Counting(svc.grader)
    svc.grader = grader
    same = [replace(p, title="", body="放款很快，体验不错") for p in posts(svc, 3)]
    verdicts = page_store.grade_page(grader, same, 64)
    assert grader.batches == [1] and len(verdicts) == 3 and len(set(verdicts)) == 1


def test_a_page_cut_short_stores_none_of_it_and_the_next_run_everything_once(
    svc: Services, appstore: FakeAppStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away at the 120th post of a page: the page is rolled back whole,
    the run is not complete, and the next run stores all of it with one alert per case."""
    source = svc.settings.app.sources[0]
    appstore.reviews = reviews(150, content="砍头息，服务费太高")
    real = attach_to_case
    calls = {"n": 0}

    def dies_at_120(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 120:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr("monitor.page_store.attach_to_case", dies_at_120)
    cut = run_source(svc, source)
    assert not cut.ok and cut.new == 0 and cut.alerts == 0
    assert count(svc.engine, PostRow) == count(svc.engine, AlertRow) == 0
    with Session(svc.engine) as s:
        state = s.get_one(SourceStateRow, source.name)
        assert not state.last_run_complete  # the next run pages back fully

    monkeypatch.setattr("monitor.page_store.attach_to_case", real)
    again = run_source(svc, source)
    assert again.ok and again.new == 150
    assert count(svc.engine, PostRow) == count(svc.engine, VerdictRow) == 150
    with Session(svc.engine) as s:
        keys = s.execute(select(col(AlertRow.dedup_key))).scalars().all()
    assert len(keys) == len(set(keys)) == count(svc.engine, CaseRow) == again.alerts > 0
    assert run_source(svc, source).new == 0 and count(svc.engine, AlertRow) == len(keys)


def test_two_posts_of_one_author_in_one_page_share_a_case_and_one_alert(
    svc: Services, appstore: FakeAppStore
) -> None:
    appstore.reviews = [
        *reviews(30, start=3, content="重复扣款，不退钱"),
        review(2, author="阿强", content="还是没到账，客服电话打不通"),
        review(1, author="阿强", content="放款慢，迟迟不放款"),
    ]
    result = run_source(svc, svc.settings.app.sources[0])
    assert result.new == 32
    with Session(svc.engine) as s:
        cases = s.execute(
            select(col(PostRow.case_id)).where(col(PostRow.author) == "阿强")
        ).scalars()
        [case_id] = set(cases)
        alerts = s.execute(
            select(func.count()).select_from(AlertRow).where(col(AlertRow.case_id) == case_id)
        ).scalar_one()
    assert case_id is not None and alerts == 1


def test_the_model_grades_a_page_outside_the_databases_write_lock(svc: Services) -> None:
    """While a page is graded, the board (another connection) can still write: on SQLite a
    page's transaction holds the only write lock, so grading inside it would stall every
    acknowledgement for as long as the model takes."""
    if svc.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single writer lock; PostgreSQL locks rows")
    path = str(svc.engine.url.database)
    writes: list[str] = []

    class Writing(Counting):
        def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
            other = sqlite3.connect(path, timeout=2)
            try:
                other.execute("CREATE TABLE IF NOT EXISTS board_write (n INTEGER)")
                other.execute("INSERT INTO board_write VALUES (1)")
                other.commit()
                writes.append("ok")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
            finally:
                other.close()
            return super().grade_many(items, batch_size)

    svc.grader = Writing(svc.grader)
    result = RunResult(source="appstore-cn")
    store_posts(svc, posts(svc, 30, content="重复扣款，不退钱"), result, [])
    assert result.new == 30 and writes == ["ok"]


def test_a_post_edited_between_the_read_ahead_and_its_page_is_graded_as_it_is(
    svc: Services,
) -> None:
    """Grades are worked out ahead from the posts as stored before the page's transaction;
    a post another run edits in between is graded inside it, on the text being stored."""
    first, second = posts(svc, 2, content="重复扣款，不退钱")
    store_posts(svc, [first], RunResult(source="appstore-cn"), [])
    grader = Counting(svc.grader)
    svc.grader = grader
    result = RunResult(source="appstore-cn")
    rejected: list[Rejected] = []
    with PageWriter(svc, result, rejected, pipeline._announce) as writer:
        writer.add([first, second])  # read ahead: `first` is stored as it is, not graded
        edited = replace(first, body="客服态度很好，问题解决了")
        store_posts(svc, [edited], RunResult(source="appstore-cn"), [])  # another run's edit
        writer.finish()
    assert rejected == [] and result.new == 1 and result.edited == 1
    # `second` graded once, ahead; `first` inside its page, where it turned out edited back
    assert grader.batches[0] == 1 and grader.batches[-1] == 1 and len(grader.batches) == 3
    with Session(svc.engine) as s:
        row = s.execute(select(PostRow).where(col(PostRow.external_id) == first.external_id))
        stored = row.scalar_one()
        latest = s.execute(
            select(VerdictRow)
            .where(col(VerdictRow.post_id) == stored.id)
            .order_by(col(VerdictRow.id).desc())
        ).scalars()
        assert stored.content_hash == first.content_hash
        assert next(iter(latest)).content_hash == first.content_hash


def test_a_text_met_again_in_a_later_page_of_the_run_is_not_graded_again(svc: Services) -> None:
    """Three App Store reviews in ten repeat an earlier one word for word; a backfill meets
    each of them in page after page."""
    grader = Counting(svc.grader)
    svc.grader = grader
    many = [replace(p, title="", body="垃圾") for p in posts(svc, page_store.PAGE + 10)]
    result = RunResult(source="appstore-cn")
    store_posts(svc, many, result, [])
    assert result.new == page_store.PAGE + 10 and grader.batches == [1]
    assert count(svc.engine, VerdictRow) == page_store.PAGE + 10
