"""Quarantine: items a source sent that could not become posts, kept with their error.

Nothing a source sends is dropped silently. An item the collector could not
read, normalisation could not make storable, or the database refused is kept
here (bounded and made printable), counted in `koubei sources` and listed by
`koubei quarantine`. Reading the same item again updates its row; once it is
stored as a post (a fixed collector, a corrected review) it leaves quarantine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from monitor.domain import Rejected
from monitor.store.sql import dialect_insert
from monitor.store.tables import PostRow, QuarantineRow

RAW_LIMIT = 16_000
_STRING_LIMIT = 4_000
_DEPTH_LIMIT = 16
_ITEMS_LIMIT = 100
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = _STRING_LIMIT) -> str:
    """The text with NULs, control bytes and undecodable bytes written as escapes."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return _UNPRINTABLE.sub(_escape, cut)


def _bounded(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy, cut in depth, width and string length (never recursing far)."""
    if isinstance(value, str):
        return printable(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth >= _DEPTH_LIMIT:
        return f"…(nested deeper than {_DEPTH_LIMIT} levels)"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        items = list(value.items())
        out = {printable(str(k), 200): _bounded(v, depth + 1) for k, v in items[:_ITEMS_LIMIT]}
        if len(items) > _ITEMS_LIMIT:
            out["…"] = f"{len(items) - _ITEMS_LIMIT} more keys"
        return out
    if isinstance(value, list | tuple):
        shown = [_bounded(v, depth + 1) for v in value[:_ITEMS_LIMIT]]
        return shown + ([f"…{len(value) - _ITEMS_LIMIT} more"] if len(value) > _ITEMS_LIMIT else [])
    return printable(f"<{type(value).__name__}>")


def render_raw(raw: Any, limit: int = RAW_LIMIT) -> str:
    text = json.dumps(_bounded(raw), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def keep(session: Session, items: Sequence[Rejected], now: datetime) -> int:
    """Store the rejected items; returns how many were not in quarantine before."""
    table = QuarantineRow.__table__  # type: ignore[attr-defined]
    new = 0
    for item in items:
        raw = render_raw(item.raw)
        ident = printable(item.external_id, 128) if item.external_id else None
        key = f"id:{ident}" if ident else f"raw:{raw}"
        values = {
            "source": item.source,
            "external_id": ident,
            "fingerprint": hashlib.sha256(key.encode("utf-8")).hexdigest(),
            "stage": item.stage,
            "error": printable(item.error, 2000),
            "raw": raw,
            "first_seen_at": now,
            "last_seen_at": now,
            "seen": 1,
        }
        insert = dialect_insert(session)(table).values(**values)
        stmt = insert.on_conflict_do_update(
            index_elements=["source", "fingerprint"],
            set_={
                "stage": insert.excluded.stage,
                "error": insert.excluded.error,
                "raw": insert.excluded.raw,
                "last_seen_at": insert.excluded.last_seen_at,
                "seen": table.c.seen + 1,
            },
        ).returning(table.c.seen)
        if session.execute(stmt).scalar_one() == 1:
            new += 1
    return new


def release_stored(session: Session, source: str) -> int:
    """Items of the source that are stored as posts now leave quarantine."""
    stored = select(col(PostRow.id)).where(
        col(PostRow.source) == col(QuarantineRow.source),
        col(PostRow.external_id) == col(QuarantineRow.external_id),
    )
    result = session.execute(
        delete(QuarantineRow).where(col(QuarantineRow.source) == source, stored.exists())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def counts(session: Session) -> dict[str, int]:
    """Items in quarantine, by source."""
    rows = session.execute(
        select(col(QuarantineRow.source), func.count()).group_by(col(QuarantineRow.source))
    ).all()
    return {source: int(n) for source, n in rows}


def listing(session: Session, source: str | None = None, limit: int = 50) -> list[QuarantineRow]:
    """The most recently seen items in quarantine, newest first."""
    query = select(QuarantineRow).order_by(
        col(QuarantineRow.last_seen_at).desc(), col(QuarantineRow.id).desc()
    )
    if source is not None:
        query = query.where(col(QuarantineRow.source) == source)
    return list(session.execute(query.limit(limit)).scalars().all())
