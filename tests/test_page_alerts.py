"""A page's alert step answers its repeated questions from memory (store.notices.Memo):
what the posts before it in the page queued must change the answers for the posts after
it, exactly as when each post is stored in its own transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, event, select, text
from sqlmodel import Session, col

from monitor.collectors.appstore import AppStore
from monitor.domain import AlertKind, Post, Rejected
from monitor.fakes.appstore import Review
from monitor.normalize import normalize
from monitor.pipeline import RunResult, Services, store_post, store_posts
from monitor.store.engine import make_engine, migrate
from monitor.store.tables import AlertRow, CaseEventRow, CaseRow, DeliveryRow, PostRow
from tests.conftest import PG_URL, review

STORY = "App一直闪退，登录不了，人脸识别失败了十几次，还款日马上就到了，客服也联系不上，急死人了"
REPOSTS = [  # the same complaint retold: near-duplicates of STORY (Jaccard 0.8 to 1)
    STORY.replace("，", "。") + "！！",
    STORY.replace("十几次", "二十次"),
    STORY.replace("，", " ") + "，真的很着急",
]
RAISED = STORY + "，我要去银保监会投诉"  # a near-duplicate naming a regulator: P1


def story(n: int, content: str, author: str) -> Review:
    """A review numbered n, as review() makes it but with exactly this text."""
    return replace(review(n), content=content, author=author, title="")


def parse(svc: Services, batch: list[Review]) -> list[Post]:
    source = svc.settings.app.sources[0]
    collector = AppStore(source)
    raw = [collector.parse_entry(r.entry(source.options["app_id"]), "test") for r in batch]
    return [normalize(r, svc.clock.now()) for r in raw if r is not None]


def first_page(svc: Services) -> list[Post]:
    """Oldest first: a story, a burst of P3 crashes (one group fills, a second starts) and,
    among them, two reposts of the story, and one author's two complaints."""
    batch = [story(1, STORY, "小王")]
    for n in range(2, 24):
        batch.append(review(n, content="一直闪退，登录不了"))
        if n == 8:
            batch.append(story(100, REPOSTS[0], "小李"))
        if n == 15:
            batch.append(story(101, REPOSTS[1], "小赵"))
    batch.append(review(200, author="阿强", content="还是没到账，客服电话打不通"))
    batch.append(review(201, author="阿强", content="放款慢，迟迟不放款"))
    return parse(svc, batch)


def second_page(svc: Services) -> list[Post]:
    """The story's case raised to P1 by a repost, then joined by another."""
    batch = [story(300, RAISED, "小钱"), story(301, REPOSTS[2], "小孙")]
    batch += [review(n, content="一直闪退，登录不了") for n in range(302, 306)]
    return parse(svc, batch)


def store(svc: Services, posts: list[Post], one_by_one: bool = False) -> RunResult:
    result = RunResult(source=svc.settings.app.sources[0].name)
    rejected: list[Rejected] = []
    if one_by_one:
        for post in posts:
            store_post(svc, post, result, rejected)
    else:
        store_posts(svc, posts, result, rejected)
    assert rejected == [] and result.new == len(posts)
    return result


def joins(session: Session, case_id: int) -> list[AlertRow]:
    return list(
        session.execute(
            select(AlertRow)
            .where(col(AlertRow.case_id) == case_id, col(AlertRow.kind) == AlertKind.EVENT.value)
            .order_by(col(AlertRow.id))
        ).scalars()
    )


def test_reposts_in_one_page_each_get_their_join_message(svc: Services) -> None:
    page = first_page(svc)
    assert len(page) <= 200  # one page: one transaction, one memo
    store(svc, page)
    with Session(svc.engine) as s:
        first = s.execute(select(PostRow).where(col(PostRow.author) == "小王")).scalar_one()
        assert first.case_id is not None
        case_id = first.case_id
        members = s.execute(
            select(col(PostRow.author)).where(col(PostRow.case_id) == case_id)
        ).scalars()
        assert sorted(members) == ["小李", "小王", "小赵"]
        told = joins(s, case_id)
        events = s.execute(
            select(col(CaseEventRow.id)).where(
                col(CaseEventRow.case_id) == case_id, col(CaseEventRow.kind) == "post_added"
            )
        ).scalars()
        # One message per repost, each on its own post_added event.
        assert [a.dedup_key for a in told] == [f"case:{case_id}:event:{e}" for e in events]
        assert len(told) == 2
        new = f"case:{case_id}:new"
        route = s.execute(
            select(col(AlertRow.channel_key)).where(col(AlertRow.dedup_key) == new)
        ).scalar_one()

    store(svc, second_page(svc))  # a regrade, then a join, in one page
    with Session(svc.engine) as s:
        case = s.get_one(CaseRow, case_id)
        assert case.severity == "P1"
        regraded = s.execute(
            select(AlertRow).where(col(AlertRow.dedup_key) == f"case:{case_id}:regraded:P1")
        ).scalar_one()
        told = joins(s, case_id)
        assert len(told) == 4
        assert all(a.channel_key == route for a in told)  # in the case's thread, where it began
        later = [a for a in told if a.id is not None and a.id > (regraded.id or 0)]
        assert len(later) == 1  # the join after the regrade is told too
        methods = s.execute(
            select(col(DeliveryRow.method)).where(col(DeliveryRow.alert_id) == later[0].id)
        ).scalars()
        assert set(methods) == {"reply"}


@pytest.fixture
def twin(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second empty database of the same kind as the svc fixture's."""
    if db_url.startswith("sqlite"):
        eng = make_engine(f"sqlite:///{tmp_path / 'twin.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    eng = make_engine(f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}")
    migrate(eng)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def written(engine: Engine) -> list[tuple[str, list[Any]]]:
    """What storing wrote, table by table in id order; a group's random key masked."""
    out = []
    with engine.connect() as conn:
        for table in ("cases", "case_events", "alerts", "deliveries"):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).mappings()
            masked = [
                re.sub(r"(group:[^:']+:)[0-9a-f]{32}", r"\1-", str(sorted(dict(r).items())))
                for r in rows
            ]
            out.append((table, masked))
        cased = conn.execute(text("SELECT id, case_id FROM posts ORDER BY id")).all()
        out.append(("posts", [str(tuple(r)) for r in cased]))
    return out


def test_a_page_queues_what_its_posts_would_one_by_one(svc: Services, twin: Engine) -> None:
    """Cases, events, alerts (P3 groups of at most max_per_message included) and outbox rows:
    the same, row for row, as when each post is stored in its own transaction."""
    pages = [first_page(svc), second_page(svc)]
    for page in pages:
        store(svc, page)
    alone = Services(svc.settings, twin, svc.http, svc.grader, svc.clock)
    for page in pages:
        store(alone, page, one_by_one=True)
    together = written(svc.engine)
    assert together == written(twin)
    groups = dict(together)["alerts"]
    assert sum("'kind', 'group'" in a for a in groups) == 2  # the burst filled one group


def test_a_pages_events_and_alerts_go_out_in_a_few_inserts(svc: Services) -> None:
    """Not one INSERT each: they wait, in order, for whatever needs them written (a P3
    group's alert, the outbox, the commit)."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().upper())

    event.listen(svc.engine, "before_cursor_execute", seen)
    try:
        store(svc, first_page(svc))
    finally:
        event.remove(svc.engine, "before_cursor_execute", seen)
    with Session(svc.engine) as s:
        events = len(s.execute(select(col(CaseEventRow.id))).all())
        alerts = len(s.execute(select(col(AlertRow.id))).all())
    for table, rows in (("CASE_EVENTS", events), ("ALERTS", alerts)):
        inserts = [x for x in statements if x.startswith(f"INSERT INTO {table} ")]
        assert rows >= 20 and len(inserts) <= rows // 4, (table, rows, len(inserts))
