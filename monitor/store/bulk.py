"""A page of posts upserted together: one SELECT .. IN, one multi-row INSERT, batched UPDATEs.

The outcome for each post is what upsert_post gives it alone (new, edited, status
changed or unchanged, with the status before), in a handful of statements per
page instead of two or three per post. Existing rows are read FOR UPDATE
(PostgreSQL; SQLite's writer holds the whole database), and the INSERT skips
conflicts, so a concurrent run that stored a post first makes it "existing" here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlmodel import Session

from monitor.domain import Post
from monitor.store.posts import Change, Upserted, post_values
from monitor.store.sql import dialect_insert
from monitor.store.tables import MinhashBandRow, PostRow

IN_CHUNK = 500  # ids per IN list: well inside every driver's parameter limit

Key = tuple[str, str]  # (source, external_id)


class Stored(NamedTuple):
    id: int
    platform_status: str | None
    content_hash: str
    votes: int


def _table() -> Any:
    return PostRow.__table__  # type: ignore[attr-defined]


def _chunks(keys: Iterable[Key]) -> Iterator[tuple[str, list[str]]]:
    """The keys as (source, external ids) lists short enough for one IN."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, external_id in keys:
        by_source[source].append(external_id)
    for source, ids in by_source.items():
        for start in range(0, len(ids), IN_CHUNK):
            yield source, ids[start : start + IN_CHUNK]


def stored_rows(session: Session, keys: Iterable[Key]) -> dict[Key, Stored]:
    """The stored rows among these keys, locked for this transaction."""
    table = _table()
    found: dict[Key, Stored] = {}
    for source, ids in _chunks(keys):
        rows = session.execute(
            select(
                table.c.external_id,
                table.c.id,
                table.c.platform_status,
                table.c.content_hash,
                table.c.votes,
            )
            .where(table.c.source == source, table.c.external_id.in_(ids))
            .with_for_update()
        ).all()
        for ext, *rest in rows:
            found[(source, ext)] = Stored(int(rest[0]), rest[1], rest[2], int(rest[3]))
    return found


def stored_hashes(session: Session, keys: Iterable[Key]) -> dict[Key, str]:
    """The content hash of each stored post among these keys; read without locking."""
    table = _table()
    found: dict[Key, str] = {}
    for source, ids in _chunks(keys):
        rows = session.execute(
            select(table.c.external_id, table.c.content_hash).where(
                table.c.source == source, table.c.external_id.in_(ids)
            )
        ).all()
        found.update({(source, ext): str(h) for ext, h in rows})
    return found


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[Key, int]:
    if not rows:
        return {}
    table = _table()
    stmt = (
        dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id, table.c.source, table.c.external_id)
    )
    # A list of parameter sets: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues").
    result = session.execute(stmt, rows)
    return {(source, ext): int(id_) for id_, source, ext in result.all()}


def _update_many(session: Session, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """UPDATE posts SET columns WHERE id = :id, for many rows in one executemany."""
    if not rows:
        return
    table = _table()
    stmt = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({c: bindparam(f"new_{c}", type_=table.c[c].type) for c in columns})
    )
    params = [{"row_id": r["id"], **{f"new_{c}": r[c] for c in columns}} for r in rows]
    session.connection().execute(stmt, params)


_KEPT = ("source", "external_id", "fetched_at")  # an update keeps when the post was first read


def upsert_posts(session: Session, posts: Sequence[Post], now: datetime) -> list[Upserted]:
    """Each post inserted, or updated when its content or platform status changed; in order.

    The posts must be distinct (source, external_id): a page holds each post once.
    """
    if not posts:
        return []
    keys = [(p.source, p.external_id) for p in posts]
    if len(set(keys)) != len(keys):
        raise ValueError("upsert_posts: a page holds each (source, external_id) once")
    values = [post_values(p, now) for p in posts]
    found = stored_rows(session, keys)
    inserted = _insert_new(
        session, [v for k, v in zip(keys, values, strict=True) if k not in found]
    )
    raced = [k for k in keys if k not in found and k not in inserted]
    if raced:  # stored by a concurrent run between our SELECT and INSERT
        found.update(stored_rows(session, raced))

    out: list[Upserted] = []
    changed_rows: list[dict[str, Any]] = []
    vote_rows: list[dict[str, Any]] = []
    for key, post, row in zip(keys, posts, values, strict=True):
        if key in inserted:
            out.append(Upserted(inserted[key], Change.NEW, None))
            continue
        had = found[key]
        if had.content_hash != post.content_hash:
            change = Change.EDITED
        elif post.platform is not None and post.platform.status != had.platform_status:
            change = Change.STATUS
        else:
            # Votes move without an edit; keep them current for the spreading raise.
            if had.votes != post.votes:
                vote_rows.append({"id": had.id, "votes": post.votes})
            out.append(Upserted(had.id, Change.UNCHANGED, had.platform_status))
            continue
        changed_rows.append({"id": had.id, **row})
        out.append(Upserted(had.id, change, had.platform_status))
    if changed_rows:
        columns = [c for c in changed_rows[0] if c != "id" and c not in _KEPT]
        _update_many(session, changed_rows, columns)
    _update_many(session, vote_rows, ["votes"])
    return out


def replace_bands(session: Session, bands_by_post: dict[int, list[str]], edited: set[int]) -> None:
    """Index these posts' LSH bands; an edited post's old bands go first."""
    table = MinhashBandRow.__table__  # type: ignore[attr-defined]
    gone = sorted(edited)
    for start in range(0, len(gone), IN_CHUNK):
        session.execute(delete(table).where(table.c.post_id.in_(gone[start : start + IN_CHUNK])))
    rows = [{"band": b, "post_id": pid} for pid, keys in bands_by_post.items() for b in keys]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Two arrays in one statement: psycopg's executemany runs a statement per row,
        # and a page has thousands of bands.
        session.execute(
            text(
                "INSERT INTO minhash_bands (band, post_id) "
                "SELECT * FROM unnest(CAST(:bands AS varchar[]), CAST(:posts AS integer[]))"
            ),
            {"bands": [r["band"] for r in rows], "posts": [r["post_id"] for r in rows]},
        )
        return
    if session.get_bind().dialect.name == "sqlite":
        # Tuples straight to sqlite3's executemany, in order (the same ids): SQLAlchemy's
        # executemany processed a page's ~3,000 parameter sets one by one in Python.
        session.connection().exec_driver_sql(
            "INSERT INTO minhash_bands (band, post_id) VALUES (?, ?)",
            [(r["band"], r["post_id"]) for r in rows],
        )
        return
    session.execute(insert(table), rows)
