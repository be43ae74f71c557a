"""`koubei backup`: a consistent copy of a SQLite database while the service runs.

SQLite's online backup API copies page by page under the database's own
locks, so a `koubei run` writing at the same time is neither stopped nor
copied half-way. PostgreSQL has its own tools (pg_dump, pg_restore).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.errors import StoreError


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy `source` into a new file `target`; returns the pages copied."""
    if not source.is_file():
        raise StoreError(f"no SQLite database at {source}: nothing to back up")
    if target.exists():
        raise StoreError(f"{target} exists already: choose a new file, nothing was overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    pages = 0

    def progress(_status: int, _remaining: int, total: int) -> None:
        nonlocal pages
        pages = total

    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst, pages=1024, progress=progress)
        check = dst.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise StoreError(f"the copy at {target} failed its integrity check: {check}")
    finally:
        src.close()
        dst.close()
    return pages
