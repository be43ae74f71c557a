"""Hostile input through the real pipeline: the fake App Store serves each bad
payload in Apple's RSS JSON format, `run_source` reads it, and the tests check
what a user would notice: the good reviews on the page are stored, the bad one
is quarantined (listed, counted in `koubei sources`), and a run that cannot go
on is recorded as failed, never left `running`.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col
from typer.testing import CliRunner

from monitor.classify import GradeInput, Grader
from monitor.cli import app
from monitor.collectors.appstore import AppStore
from monitor.config import SourceConfig
from monitor.domain import Verdict
from monitor.fakes import heimao as hm
from monitor.fakes import huawei as hw
from monitor.fakes import jutousu as jts
from monitor.fakes import yingyongbao as yyb
from monitor.fakes.appstore import FakeAppStore, Review
from monitor.fakes.server import FakeServer
from monitor.health import table
from monitor.normalize import INVISIBLE, clean_text
from monitor.pipeline import RunResult, Services, backfill, run_source
from monitor.scheduler import _source_job
from monitor.store.tables import (
    PostRow,
    QuarantineRow,
    SourceRunRow,
    SourceStateRow,
    VerdictRow,
)
from tests.conftest import reviews


def run(svc: Services) -> RunResult:
    return run_source(svc, svc.settings.app.sources[0])


def stored(engine: Engine) -> dict[str, PostRow]:
    with Session(engine) as session:
        return {p.external_id: p for p in session.execute(select(PostRow)).scalars()}


def quarantined(engine: Engine) -> list[QuarantineRow]:
    with Session(engine) as session:
        return list(
            session.execute(select(QuarantineRow).order_by(col(QuarantineRow.id))).scalars()
        )


def runs(engine: Engine) -> list[SourceRunRow]:
    with Session(engine) as session:
        return list(session.execute(select(SourceRunRow).order_by(col(SourceRunRow.id))).scalars())


def koubei(svc: Services, db_url: str, *args: str) -> str:
    """The real command, on the test's own engine (a second one would leak connections)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("monitor.app.open_store", lambda _settings: svc.engine)
        result = CliRunner().invoke(
            app, [*args, "--config", str(svc.settings.path)], env={"DATABASE_URL": db_url}
        )
    assert result.exit_code == 0, result.output
    return result.output


def sources_line(svc: Services, db_url: str) -> list[str]:
    out = koubei(svc, db_url, "sources")
    return next(x for x in out.splitlines() if x.startswith("appstore-cn")).split()


def page(appstore: FakeAppStore, bad: dict[int, dict[str, Any]]) -> list[Review]:
    """Six reviews, newest first; the ones numbered in `bad` get those entry fields."""
    feed = reviews(6)
    for i, r in enumerate(feed):
        n = int(r.id) - 12_000_000_000
        if n in bad:
            feed[i] = replace(r, fields=bad[n])
    appstore.reviews = feed
    return feed


def good_ids(feed: list[Review], bad: set[int]) -> set[str]:
    return {r.id for r in feed if int(r.id) - 12_000_000_000 not in bad}


# --- one bad field: stripped, bounded, clamped at the edge; the page is stored ----


def test_a_nul_in_version_or_id_is_stripped_and_the_page_stored(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    feed = page(
        appstore,
        {
            2: {"im:version": {"label": "5.2\x00.0"}},
            4: {"id": {"label": "12000000004\x00"}, "title": {"label": "标\x00题"}},
        },
    )
    result = run(svc)
    assert result.ok and result.new == 6, result.error
    posts = stored(svc.engine)
    assert set(posts) == {r.id for r in feed}
    assert posts["12000000002"].app_version == "5.2.0"
    assert posts["12000000004"].title == "标题"
    assert all("\x00" not in (p.app_version or "") + p.title + p.body for p in posts.values())
    assert sources_line(svc, db_url)[-1] == "ok"


def test_an_overlong_id_and_version_are_bounded_and_never_merged(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    long_id = "9" * 300
    page(
        appstore,
        {
            2: {"id": {"label": long_id + "a"}, "im:version": {"label": "1." * 60 + "0"}},
            3: {"id": {"label": long_id + "b"}},
        },
    )
    result = run(svc)
    assert result.ok and result.new == 6, result.error
    posts = stored(svc.engine)
    long_ones = [p for ident, p in posts.items() if ident.startswith("999")]
    assert len(long_ones) == 2  # two reviews, not one merged
    assert all(len(p.external_id) <= 128 for p in long_ones)
    assert {len(p.app_version or "") for p in long_ones} == {64, 5}
    assert run(svc).new == 0  # the bounded ids are the same on the next run


def test_a_vote_count_beyond_32_bits_is_clamped(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    page(
        appstore,
        {2: {"im:voteCount": {"label": str(10**20)}}, 3: {"im:voteCount": {"label": str(2**31)}}},
    )
    result = run(svc)
    assert result.ok and result.new == 6, result.error
    posts = stored(svc.engine)
    assert posts["12000000002"].votes == posts["12000000003"].votes == 2**31 - 1


def test_link_attributes_as_a_string_keeps_the_review(
    svc: Services, appstore: FakeAppStore
) -> None:
    page(appstore, {3: {"link": {"attributes": "rel=related"}}})
    result = run(svc)
    assert result.ok and result.new == 6, result.error
    assert stored(svc.engine)["12000000003"].url.startswith("https://apps.apple.com/cn/app/id")


# --- one bad item: quarantined, counted and listed; the rest of the page stored ---


def test_json_nested_a_thousand_deep_quarantines_that_review_only(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    feed = page(appstore, {3: {"content": {"label": "@@DEEP@@"}}})
    appstore.quirks.byte_patches[b'"@@DEEP@@"'] = b"[" * 1000 + b"1" + b"]" * 1000
    result = run(svc)
    assert result.ok and result.new == 5 and result.quarantined == 1, result.error
    assert set(stored(svc.engine)) == good_ids(feed, {3})
    [held] = quarantined(svc.engine)
    assert held.external_id == "12000000003" and "content" in held.error
    assert "nested" in held.raw and len(held.raw) < 20_000
    line = sources_line(svc, db_url)
    assert line[-2:] == ["1", "ok"]  # quarantine column, status
    assert "12000000003" in koubei(svc, db_url, "quarantine")


def test_invalid_utf8_in_one_review_quarantines_it_and_stores_the_rest(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    feed = page(appstore, {4: {"content": {"label": "坏字节@@BAD@@结尾"}}})
    appstore.quirks.byte_patches[b"@@BAD@@"] = b"\xff\xfe\x80"
    result = run(svc)
    assert result.ok and result.new == 5 and result.quarantined == 1, result.error
    assert set(stored(svc.engine)) == good_ids(feed, {4})
    [held] = quarantined(svc.engine)
    assert held.external_id == "12000000004" and "UTF-8" in held.error
    assert json.loads(held.raw)["content"]["label"] == "坏字节\\xff\\xfe\\x80结尾"  # bytes shown
    assert sources_line(svc, db_url)[-2:] == ["1", "ok"]


def test_bad_dates_quarantine_their_reviews_and_the_rest_is_stored(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    feed = page(
        appstore,
        {
            2: {"updated": {"label": "yesterday"}},
            5: {"updated": {"label": "9999-12-31T23:30:00-07:00"}},  # past year 9999 in UTC
        },
    )
    result = run(svc)
    assert result.ok and result.new == 4 and result.quarantined == 2, result.error
    assert set(stored(svc.engine)) == good_ids(feed, {2, 5})
    held = {q.external_id: q for q in quarantined(svc.engine)}
    assert set(held) == {"12000000002", "12000000005"}
    assert "updated" in held["12000000002"].error and held["12000000002"].stage == "parse"
    assert "out of range" in held["12000000005"].error
    assert held["12000000005"].stage == "normalize"
    assert run(svc).quarantined == 2  # read again: counted, not duplicated
    assert [q.seen for q in quarantined(svc.engine)] == [2, 2]


def test_a_null_or_missing_id_is_quarantined_never_stored_as_none(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    feed = page(appstore, {2: {"id": {"label": None}}, 3: {"id": {"label": None}}, 5: {"id": {}}})
    result = run(svc)
    assert result.ok and result.new == 3 and result.quarantined == 3, result.error
    posts = stored(svc.engine)
    assert set(posts) == good_ids(feed, {2, 3, 5}) and "None" not in posts
    held = quarantined(svc.engine)
    assert len(held) == 3 and all(q.external_id is None and "no id" in q.error for q in held)
    assert sources_line(svc, db_url)[-2:] == ["3", "ok"]


def test_a_review_the_store_refuses_is_quarantined_and_newer_ones_stored(
    svc: Services, appstore: FakeAppStore, db_url: str
) -> None:
    page(appstore, {3: {"content": {"label": "让评分程序崩溃的评论"}}})

    class Breaks:
        """A grader that fails on one text, as a bug would: its whole batch fails with it."""

        def __init__(self, inner: Grader) -> None:
            self.inner = inner
            self.name = inner.name

        def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
            if any("崩溃" in i.text for i in items):
                raise ZeroDivisionError("division by zero")
            return self.inner.grade_many(items, batch_size)

    real = svc.grader
    svc.grader = Breaks(real)  # type: ignore[assignment]
    result = run(svc)
    assert result.ok and result.new == 5 and result.quarantined == 1, result.error
    assert {"12000000004", "12000000005", "12000000006"} <= set(stored(svc.engine))
    [held] = quarantined(svc.engine)
    assert held.stage == "store" and "ZeroDivisionError" in held.error
    svc.grader = real
    again = run(svc)  # the cause is fixed: the review is stored and leaves quarantine
    assert again.new == 1 and quarantined(svc.engine) == []
    assert sources_line(svc, db_url)[-2:] == ["0", "ok"]


def test_a_new_quarantine_is_told_to_the_ops_channel_once(
    svc: Services, appstore: FakeAppStore
) -> None:
    from monitor.store.tables import AlertRow

    page(appstore, {2: {"id": {"label": None}}})
    run(svc)
    run(svc)
    with Session(svc.engine) as session:
        notices = [
            a
            for a in session.execute(select(AlertRow)).scalars()
            if a.kind == "source_health" and "隔离" in str(a.payload)
        ]
    assert len(notices) == 1 and notices[0].channel_key == "ops"


def test_a_backfill_quarantines_bad_reviews_and_stores_the_rest(
    svc: Services, appstore: FakeAppStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = page(appstore, {2: {"id": {"label": None}}, 4: {"updated": {"label": "昨天"}}})
    since = datetime(2026, 9, 1, tzinfo=UTC)
    result = backfill(svc, svc.settings.app.sources[0], since)
    assert result.ok and result.new == 4 and result.quarantined == 2, result.error
    assert set(stored(svc.engine)) == good_ids(feed, {2, 4}) and len(quarantined(svc.engine)) == 2

    def broken(self: AppStore, client: object, page: int) -> None:
        raise TypeError("a collector bug")

    monkeypatch.setattr(AppStore, "_fetch_feed", broken)
    failed = backfill(svc, svc.settings.app.sources[0], since)  # reported, not raised
    assert not failed.ok and "TypeError: a collector bug" in (failed.error or "")


# --- a run that cannot go on is recorded as failed, and the source goes blind ----


def test_an_unexpected_collector_error_fails_the_run_and_the_source_goes_blind(
    svc: Services, appstore: FakeAppStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    appstore.reviews = reviews(5)
    assert run(svc).ok

    def broken(self: AppStore, client: object, page: int) -> None:
        raise KeyError("entry")  # a collector bug: not an error anyone raised on purpose

    monkeypatch.setattr(AppStore, "_fetch_feed", broken)
    results = [run(svc) for _ in range(3)]
    assert all(not r.ok and "KeyError" in (r.error or "") for r in results)
    assert [r.status for r in runs(svc.engine)] == ["ok", "failed", "failed", "failed"]
    [health] = table(svc.engine, svc.settings)
    assert health.consecutive_failures == 3 and health.blind
    assert results[2].health is not None and "失明" in results[2].health
    assert "BLIND:" in " ".join(sources_line(svc, db_url))


def test_the_scheduler_job_survives_a_database_failure_without_logging_parameters(
    svc: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(_svc: Services, _source: object) -> RunResult:
        raise OperationalError(
            "INSERT INTO posts (body) VALUES (%(body)s)",
            {"body": "我的手机 13912345678"},
            Exception("connection refused"),
        )

    monkeypatch.setattr("monitor.scheduler.run_source", down)
    with caplog.at_level(logging.ERROR):
        _source_job(svc, svc.settings.app.sources[0])
    assert "appstore-cn" in caplog.text and "connection refused" in caplog.text
    assert "13912345678" not in caplog.text


# --- invisible characters never hide words from the grader ---------------------


def test_format_characters_are_stripped_before_grading_and_storing(
    svc: Services, appstore: FakeAppStore
) -> None:
    hidden = "乱\u2060扣\u2060费，\u202e客服\u200f不理\u180e人\ufeff\u2066"
    page(appstore, {3: {"content": {"label": hidden}, "im:rating": {"label": "3"}}})
    assert run(svc).ok
    post = stored(svc.engine)["12000000003"]
    assert post.body == "乱扣费，客服不理人"
    with Session(svc.engine) as session:
        verdict = session.execute(
            select(VerdictRow).where(col(VerdictRow.post_id) == post.id)
        ).scalar_one()
    assert verdict.severity == "P2" and "deduction" in verdict.categories  # P4 when hidden


def test_every_format_character_in_unicode_is_stripped() -> None:
    every_cf = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"}
    assert all(INVISIBLE.fullmatch(ch) for ch in every_cf)
    assert clean_text("a" + "".join(sorted(every_cf)) + "b\tc\nd") == "ab c\nd"


def test_a_run_that_stores_everything_leaves_no_state_running(
    svc: Services, appstore: FakeAppStore
) -> None:
    page(appstore, {2: {"link": "not a link"}, 4: {"title": {"label": ["not", "text"]}}})
    result = run(svc)
    assert result.ok and result.new == 5 and result.quarantined == 1, result.error
    with Session(svc.engine) as session:
        state = session.get_one(SourceStateRow, "appstore-cn")
    assert state.last_run_complete and state.consecutive_failures == 0
    assert [r.status for r in runs(svc.engine)] == ["ok"]


# --- the other collectors: a null id is no id, one bad field loses one item -----

AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _fake_source(kind: str) -> tuple[FakeServer, dict[str, Any]]:
    """A fake of `kind` serving a good item, one with a null id and one with a bad field."""
    at = int(AT.timestamp())
    if kind == "yingyongbao":
        comments = [
            yyb.Comment("good", "用户", "一直闪退", at, 1.0),
            yyb.Comment("c2", "用户", "无编号", at, 1.0, fields={"commentID": None}),
            yyb.Comment("c3", "用户", "坏时间", at, 1.0, fields={"createTime": "昨天"}),
        ]
        return yyb.FakeYingyongbao("com.example.loan", comments), {"package": "com.example.loan"}
    if kind == "huawei":
        items = [
            hw.Comment("good", "用户", "一直闪退", 1, "2026-11-26 16:00"),
            hw.Comment("h2", "用户", "无编号", 1, "2026-11-26 16:00"),
            hw.Comment("h3", "用户", "坏正文", 1, "2026-11-26 16:00"),
        ]
        items[1].fields = {"commentId": None, "id": None}
        items[2].fields = {"commentInfo": ["不是", "文本"], "approveCounts": "很多"}
        return hw.FakeHuawei("C100148961", items), {"appid": "C100148961"}
    if kind == "jutousu":
        posts = [
            jts.Post("901", "借款App乱扣费", "摘要", "乱扣费", "用户", at),
            jts.Post("902", "借款App无编号", "摘要", "无编号", "用户", at, fields={"id": None}),
            jts.Post("903", "借款App坏时间", "摘要", "坏时间", "用户", at, {"ctime": "昨天"}),
        ]
        return jts.FakeJutousu(posts), {"keyword": "借款App"}
    complaints = [
        hm.Complaint(sn="17380000001", title="乱扣费", text="乱扣费要求退款", filed=AT),
        hm.Complaint(sn="17380000002", title="无编号", text="无编号", filed=AT),
        hm.Complaint(sn="17380000003", title="坏时间", text="坏时间", filed=AT),
    ]
    complaints[1].fields = {"sn": None}
    complaints[2].fields = {"timestamp": "昨天"}
    return hm.FakeHeimao("5650743478", complaints), {"couid": "5650743478"}


@pytest.mark.parametrize("kind", ["yingyongbao", "huawei", "jutousu", "heimao"])
def test_other_collectors_quarantine_a_null_id_and_a_bad_field_and_store_the_rest(
    svc: Services, kind: str
) -> None:
    fake, options = _fake_source(kind)
    with fake:
        source = SourceConfig(name=kind, kind=kind, base_url=fake.url, options=options)
        result = run_source(svc, source)
    assert result.ok and result.new == 1 and result.quarantined == 2, result.error
    [post] = stored(svc.engine).values()
    assert post.external_id in {"good", "901", "17380000001"}  # never "None"
    held = quarantined(svc.engine)
    assert len(held) == 2 and {q.external_id is None for q in held} == {True, False}
