"""The figures of closed periods, kept between views of /trends.

A closed period's figures are taken as of its end, so they change only when
the data they are computed from changes: a late find (a post published back
then), a new or edited post or verdict, a case action. The data version reads
the newest id and update time of those tables in one query; while it stays the
same, a closed period is never computed twice. The running period is computed
at every view (it is taken as of now).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from monitor.reports.period import Period

# Every table the report's figures read, by what changes when its rows do.
_VERSION = text(
    "SELECT (SELECT max(id) FROM posts), (SELECT max(updated_at) FROM posts), "
    "(SELECT max(id) FROM verdicts), (SELECT max(id) FROM cases), "
    "(SELECT max(updated_at) FROM cases), (SELECT max(id) FROM case_events), "
    "(SELECT min(started_at) FROM source_runs)"
)

Figures = dict[str, Any]


def data_version(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(_VERSION).one())


class TrendCache:
    """Closed periods' figures for one data version; thread-safe (views run in a pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[object, ...] | None = None
        self._kept: dict[str, Figures] = {}

    def view(self, engine: Engine) -> Callable[[Period, datetime, Callable[[], Figures]], Figures]:
        """A lookup for one page view: checks the data version once, then answers from memory
        for closed periods and calls `compute` for the rest."""
        version = data_version(engine)
        with self._lock:
            if version != self._version:
                self._version, self._kept = version, {}
            kept = self._kept

        def lookup(period: Period, now: datetime, compute: Callable[[], Figures]) -> Figures:
            if period.end > now:  # still running: as of now, never kept
                return compute()
            with self._lock:
                found = kept.get(period.key)
            if found is None:
                found = compute()
                with self._lock:
                    kept[period.key] = found
            return found

        return lookup
