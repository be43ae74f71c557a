"""Full-text search over posts on SQLite (FTS5, trigram) and PostgreSQL (pg_trgm)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, delete, make_url, text
from sqlmodel import Session

from monitor.domain import Post
from monitor.errors import StoreError
from monitor.store.engine import alembic_config, make_engine, migrate
from monitor.store.posts import upsert_post
from monitor.store.search import PG_INDEX, fts_query, split_terms
from monitor.store.tables import PostRow
from monitor.web.search import PostFilters, search_posts
from tests.conftest import PG_URL

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")
POSTS = {
    "collect-title": ("暴力催收威胁家人", "昨天开始一直打电话"),
    "collect-body": ("还款问题", "客服说逾期了，然后就是暴力催收，一天几十个电话"),
    "collect-twice": ("体验差", "暴力催收。投诉后还是暴力催收，暴力催收没完没了"),
    "crash": ("闪退", "更新以后一直闪退，登录不了"),
    "english": ("Crash", 'The app crashes on LOGIN near the end, AND* (again) "quoted"'),
}


def post(external_id: str, title: str, body: str, hours_ago: int = 1) -> Post:
    return Post(
        source="appstore-cn",
        kind="appstore",
        external_id=external_id,
        url=f"https://example.com/{external_id}",
        author="用户",
        title=title,
        body=body,
        rating=1,
        app_version="5.0",
        published_at=NOW - timedelta(hours=hours_ago),
    )


def store(engine: Engine) -> dict[str, int]:
    ids = {}
    with Session(engine) as s, s.begin():
        for i, (key, (title, body)) in enumerate(POSTS.items()):
            ids[key] = upsert_post(s, post(key, title, body, hours_ago=i + 1), NOW).id
    return ids


def found(engine: Engine, q: str, **filters: object) -> list[int]:
    with Session(engine) as s:
        hits, total = search_posts(s, TZ, PostFilters(q=q, **filters))  # type: ignore[arg-type]
    assert total == len(hits)
    return [h.post.id for h in hits if h.post.id is not None]


def test_a_chinese_phrase_is_found_anywhere_and_ranked_title_first(engine: Engine) -> None:
    ids = store(engine)
    order = found(engine, "暴力催收")
    # All three hold it; the title match first, then the post that says it three times.
    assert order == [ids["collect-title"], ids["collect-twice"], ids["collect-body"]]
    assert found(engine, "催收威胁") == [ids["collect-title"]]  # a substring of a longer run
    assert found(engine, "暴力催收 电话") == [ids["collect-title"], ids["collect-body"]]
    assert found(engine, "催收 几十个") == [ids["collect-body"]]  # a two-character word too
    assert found(engine, "闪退") == [ids["crash"]]
    assert found(engine, "一直") == [ids["collect-title"], ids["crash"]]  # short: newest first
    assert found(engine, "login") == [ids["english"]]  # case does not matter
    assert found(engine, "暴力催收", source="other") == []


def test_an_edit_is_searched_as_it_reads_now_and_a_deleted_post_is_gone(engine: Engine) -> None:
    ids = store(engine)
    with Session(engine) as s, s.begin():
        upsert_post(s, post("crash", "闪退", "更新以后白屏，验证码收不到"), NOW)
    assert found(engine, "登录不了") == []
    assert found(engine, "验证码收不到") == [ids["crash"]]
    with Session(engine) as s, s.begin():
        s.execute(delete(PostRow).where(PostRow.id == ids["crash"]))  # type: ignore[arg-type]
    assert found(engine, "验证码收不到") == []
    assert found(engine, "暴力催收 电话") == [ids["collect-title"], ids["collect-body"]]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"quoted"',
        "AND",
        "暴力催收 AND 电话",
        "OR NOT",
        "*",
        "AND*",
        "NEAR(暴力催收 电话)",
        "title:暴力催收",
        "^暴力",
        "(again)",
        "%",
        "_",
        "\\",
        "a'b",
        "-暴力催收",
    ],
)
def test_query_syntax_typed_in_the_box_is_text_to_find(engine: Engine, query: str) -> None:
    ids = store(engine)
    expected = {
        '"': [ids["english"]],
        '"quoted"': [ids["english"]],
        "AND": [ids["english"]],
        "AND*": [ids["english"]],
        "(again)": [ids["english"]],
        "*": [ids["english"]],
        "暴力催收 AND 电话": [],  # "AND" is a word to find, and no 催收 post has it
    }
    assert found(engine, query) == expected.get(query, [])


def test_the_match_expression_quotes_every_term() -> None:
    assert fts_query(['say "hi"', "NEAR(a"]) == '"say ""hi""" "NEAR(a"'
    terms = split_terms("扣款 暴力催收 扣款 a")
    assert terms.indexed == ["暴力催收"] and terms.short == ["扣款", "a"]


def test_the_index_is_used(engine: Engine) -> None:
    store(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?", ('"暴力催收"',)
            ).all()
            assert len(rows) == 3
            return
        conn.execute(text("SET enable_seqscan = off"))  # a five-row table: force the choice
        plan = conn.execute(
            text("EXPLAIN SELECT id FROM posts WHERE (title || ' ' || body) ILIKE '%暴力催收%'")
        ).all()
        assert PG_INDEX in " ".join(str(r[0]) for r in plan)


def test_migrating_indexes_the_posts_stored_before(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        command.upgrade(alembic_config(eng), "0008")
        with Session(eng) as s, s.begin():
            old = upsert_post(s, post("old", "老帖子", "去年就被暴力催收过"), NOW).id
        command.upgrade(alembic_config(eng), "head")
        assert found(eng, "暴力催收") == [old]
        command.downgrade(alembic_config(eng), "0008")
        command.upgrade(alembic_config(eng), "head")
        assert found(eng, "暴力催收") == [old]
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_without_pg_trgm_the_migration_stops_and_says_what_to_do() -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL tests skipped: set KOUBEI_TEST_PG_URL (see README, Testing)")
    # A fresh database without pg_trgm, and an account that may not create extensions in it.
    name = f"koubei_noext_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    url = make_url(PG_URL)
    with admin.connect() as conn:
        may = conn.execute(
            text(
                "SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles "
                "WHERE rolname = current_user"
            )
        ).scalar_one()
    if not may:
        admin.dispose()
        pytest.skip(
            "needs a test account that may create roles and databases "
            "(ALTER ROLE ... CREATEROLE CREATEDB; .ci/run grants it)"
        )
    limited = None
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
            # A non-superuser may hand a schema only to a role it is a member of.
            conn.execute(text(f'GRANT "{name}" TO CURRENT_USER'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            conn.execute(text(f'REVOKE CREATE ON DATABASE "{name}" FROM PUBLIC'))
        owner = create_engine(
            url.set(drivername="postgresql+psycopg", database=name), isolation_level="AUTOCOMMIT"
        )
        with owner.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA app AUTHORIZATION "{name}"'))
        owner.dispose()
        limited = make_engine(
            url.set(
                username=name, database=name, query={"options": "-csearch_path=app"}
            ).render_as_string(hide_password=False)
        )
        with pytest.raises(StoreError) as refused:
            migrate(limited)
        message = str(refused.value)
        assert "pg_trgm" in message and "CREATE EXTENSION pg_trgm" in message
        assert "permission denied" in message
        with limited.connect() as conn:  # one transaction: nothing is left half-made
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app'")
            )
            assert tables.scalar_one() == 0
    finally:
        if limited is not None:
            limited.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()
