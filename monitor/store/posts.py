"""Post upserts: one row per (source, external_id), safe against re-runs and concurrent runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from monitor.domain import Post
from monitor.store.sql import dialect_insert
from monitor.store.tables import PostRow


class Change(StrEnum):
    NEW = "new"
    EDITED = "edited"
    STATUS = "status"  # same text, new complaint-platform status
    UNCHANGED = "unchanged"


class Upserted(NamedTuple):
    id: int
    change: Change
    previous_status: str | None  # the platform status before this upsert


def platform_values(post: Post) -> dict[str, Any]:
    p = post.platform
    if p is None:
        return {"platform_status": None, "appeal": None, "amount": None, "extra": post.extra}
    state = {
        "final": p.final,
        "resolved": p.resolved,
        "satisfaction": p.satisfaction,
        "replied_at": p.replied_at.isoformat() if p.replied_at else None,
        "completed_at": p.completed_at.isoformat() if p.completed_at else None,
    }
    return {
        "platform_status": p.status,
        "appeal": p.appeal,
        "amount": p.amount,
        "extra": {**post.extra, "platform": state},
    }


def post_values(post: Post, now: datetime) -> dict[str, Any]:
    """The post's row as stored (fetched and updated now)."""
    return {
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
        "content_hash": post.content_hash,
        "published_at": post.published_at,
        "fetched_at": now,
        "updated_at": now,
        **platform_values(post),
    }


def upsert_post(session: Session, post: Post, now: datetime) -> Upserted:
    """Insert the post, or update it in place when its content or platform status changed.

    INSERT .. ON CONFLICT DO NOTHING makes a concurrent duplicate a no-op in the
    database itself, so two collectors racing on the same page store one row.
    """
    values = post_values(post, now)
    table = PostRow.__table__  # type: ignore[attr-defined]
    stmt = (
        dialect_insert(session)(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is not None:
        return Upserted(int(new_id), Change.NEW, None)

    existing_id, previous_status, stored_hash = session.execute(
        select(table.c.id, table.c.platform_status, table.c.content_hash)
        .where(table.c.source == post.source, table.c.external_id == post.external_id)
        .with_for_update()
    ).one()
    changed = {k: v for k, v in values.items() if k not in ("source", "external_id", "fetched_at")}
    if stored_hash != post.content_hash:
        session.execute(update(table).where(table.c.id == existing_id).values(**changed))
        return Upserted(int(existing_id), Change.EDITED, previous_status)
    if post.platform is not None and post.platform.status != previous_status:
        session.execute(update(table).where(table.c.id == existing_id).values(**changed))
        return Upserted(int(existing_id), Change.STATUS, previous_status)
    # Votes move without an edit; keep them current for the spreading raise.
    session.execute(update(table).where(table.c.id == existing_id).values(votes=post.votes))
    return Upserted(int(existing_id), Change.UNCHANGED, previous_status)


def stored_ids(engine: Engine, source: str, external_ids: list[str]) -> set[str]:
    """Which of these ids the source already has stored."""
    if not external_ids:
        return set()
    with Session(engine) as session:
        rows = session.execute(
            select(col(PostRow.external_id)).where(
                col(PostRow.source) == source, col(PostRow.external_id).in_(external_ids)
            )
        ).scalars()
        return set(rows)
