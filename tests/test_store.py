"""The store on SQLite and PostgreSQL: migrations, upserts, edits, concurrency, UTC."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from monitor.domain import Post
from monitor.store.engine import migrate
from monitor.store.posts import Change, upsert_post
from monitor.store.search import include_name
from monitor.store.tables import PostRow

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def post(external_id: str = "1", body: str = "一直闪退", **kw: object) -> Post:
    fields: dict[str, object] = {
        "source": "appstore-cn",
        "kind": "appstore",
        "external_id": external_id,
        "url": "https://example.com/r",
        "author": "用户",
        "title": "标题",
        "body": body,
        "rating": 1,
        "app_version": "5.0",
        "published_at": NOW - timedelta(hours=1),
    }
    fields.update(kw)
    return Post(**fields)  # type: ignore[arg-type]


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)


def test_upsert_is_idempotent_and_edits_update_in_place(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        first_id, first, _ = upsert_post(s, post(), NOW)
    with Session(engine) as s, s.begin():
        again_id, again, _ = upsert_post(s, post(), NOW + timedelta(minutes=5))
    with Session(engine) as s, s.begin():
        edit_id, edited, _ = upsert_post(
            s, post(body="一直闪退，客服也不理"), NOW + timedelta(minutes=9)
        )
    assert (first, again, edited) == (Change.NEW, Change.UNCHANGED, Change.EDITED)
    assert first_id == again_id == edit_id
    with Session(engine) as s:
        rows = s.execute(select(PostRow)).scalars().all()
        assert len(rows) == 1
        assert rows[0].body == "一直闪退，客服也不理"
        assert rows[0].updated_at == NOW + timedelta(minutes=9)
        assert rows[0].fetched_at == NOW  # first seen stays first seen


def test_concurrent_upserts_of_one_page_store_one_row_each(engine: Engine) -> None:
    page = [post(external_id=str(i)) for i in range(40)]
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            for p in page:
                with Session(engine) as s, s.begin():
                    upsert_post(s, p, NOW)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=collect) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(PostRow)).scalar_one() == 40


def test_times_come_back_as_the_same_utc_instant(engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    published = datetime(2026, 11, 1, 0, 30, tzinfo=shanghai)  # 16:30 UTC the day before
    with Session(engine) as s, s.begin():
        upsert_post(s, post(published_at=published), NOW)
    with Session(engine) as s:
        row = s.execute(select(PostRow)).scalar_one()
        assert row.published_at == published
        assert row.published_at.tzinfo is not None
        assert row.published_at.astimezone(UTC).hour == 16
