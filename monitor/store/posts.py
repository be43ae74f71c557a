"""Post upserts: one row per (source, external_id), safe against re-runs and concurrent runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlmodel import Session, col

from monitor.domain import Post
from monitor.store.sql import dialect_insert
from monitor.store.tables import PostRow


class Change(StrEnum):
    NEW = "new"
    EDITED = "edited"
    UNCHANGED = "unchanged"


def upsert_post(session: Session, post: Post, now: datetime) -> tuple[int, Change]:
    """Insert the post, or update it in place when its content changed.

    INSERT .. ON CONFLICT DO NOTHING makes a concurrent duplicate a no-op in the
    database itself, so two collectors racing on the same page store one row.
    """
    values = {
        "source": post.source,
        "kind": post.kind,
        "external_id": post.external_id,
        "url": post.url,
        "author": post.author,
        "title": post.title,
        "body": post.body,
        "rating": post.rating,
        "app_version": post.app_version,
        "votes": post.votes,
        "extra": post.extra,
        "content_hash": post.content_hash,
        "published_at": post.published_at,
        "fetched_at": now,
        "updated_at": now,
    }
    table = PostRow.__table__  # type: ignore[attr-defined]
    stmt = (
        dialect_insert(session)(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is not None:
        return int(new_id), Change.NEW

    changed = {k: v for k, v in values.items() if k not in ("source", "external_id", "fetched_at")}
    edited_id = session.execute(
        update(table)
        .where(
            table.c.source == post.source,
            table.c.external_id == post.external_id,
            table.c.content_hash != post.content_hash,
        )
        .values(**changed)
        .returning(table.c.id)
    ).scalar_one_or_none()
    if edited_id is not None:
        return int(edited_id), Change.EDITED

    existing = session.execute(
        select(table.c.id).where(
            table.c.source == post.source, table.c.external_id == post.external_id
        )
    ).scalar_one()
    # Votes move without an edit; keep them current for the spreading raise.
    session.execute(update(table).where(table.c.id == existing).values(votes=post.votes))
    return int(existing), Change.UNCHANGED


def known_ids(session: Session, source: str, external_ids: list[str]) -> set[str]:
    if not external_ids:
        return set()
    rows = session.execute(
        select(col(PostRow.external_id)).where(
            col(PostRow.source) == source,
            col(PostRow.external_id).in_(external_ids),
        )
    )
    return {r[0] for r in rows}
