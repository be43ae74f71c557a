"""Job leases in the database: one instance runs each scheduled job at a time.

A lease is a row per job: its holder, an expiry and a fencing token. An
instance takes a lease that is free, expired or already its own, in one
atomic upsert, and renews what it holds well before the expiry; when it dies
the lease runs out and the next instance to look takes it, with the token one
higher. Starting and finishing a run are conditional on holder and token, so
an instance that lost its lease (stalled past the expiry) cannot record a run
as its own. The time a job last started lives in the row too: whoever holds
the lease next knows whether the job is due, so nothing runs twice in an
interval and nothing is skipped across a takeover.

Timestamps come from the instances' clocks: keep them in sync (NTP); a skew
of a few seconds only shortens or lengthens a takeover by as much.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import StoreError
from monitor.store.tables import JobLeaseRow

INSTANCE = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
_T = JobLeaseRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Lease:
    job: str
    holder: str
    token: int
    expires_at: datetime
    renewed_at: datetime
    created_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None

    def live(self, now: datetime) -> bool:
        return self.expires_at > now


def _lease(row: object) -> Lease:
    return Lease(
        job=row.job,  # type: ignore[attr-defined]
        holder=row.holder,  # type: ignore[attr-defined]
        token=row.token,  # type: ignore[attr-defined]
        expires_at=row.expires_at,  # type: ignore[attr-defined]
        renewed_at=row.renewed_at,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_started_at=row.last_started_at,  # type: ignore[attr-defined]
        last_finished_at=row.last_finished_at,  # type: ignore[attr-defined]
        last_outcome=row.last_outcome,  # type: ignore[attr-defined]
    )


class Leases:
    """The leases one instance (`holder`) takes, renews and gives back."""

    def __init__(self, engine: Engine, holder: str = INSTANCE, ttl: float = 45.0) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = timedelta(seconds=ttl)

    def acquire(self, job: str, now: datetime) -> Lease | None:
        """The job's lease, now ours (taken or renewed), or None while another holds it."""
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        expires = now + self.ttl
        stmt = (
            insert(_T)
            .values(
                job=job,
                holder=self.holder,
                token=1,
                acquired_at=now,
                renewed_at=now,
                expires_at=expires,
                created_at=now,
            )
            .on_conflict_do_update(
                index_elements=["job"],
                set_={
                    "holder": self.holder,
                    "token": case((_T.c.holder == self.holder, _T.c.token), else_=_T.c.token + 1),
                    "acquired_at": case((_T.c.holder == self.holder, _T.c.acquired_at), else_=now),
                    "renewed_at": now,
                    "expires_at": expires,
                },
                where=or_(_T.c.holder == self.holder, _T.c.expires_at <= now),
            )
            .returning(*_T.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        return _lease(row) if row is not None else None

    def renew_all(self, now: datetime) -> set[str]:
        """Extend every lease this instance holds; returns the jobs still held."""
        stmt = (
            update(_T)
            .where(_T.c.holder == self.holder, _T.c.expires_at > now)
            .values(renewed_at=now, expires_at=now + self.ttl)
            .returning(_T.c.job)
        )
        with self.engine.begin() as conn:
            return {r.job for r in conn.execute(stmt)}

    def start(self, lease: Lease, now: datetime) -> bool:
        """Record a run as started, only while the lease is still ours with this token."""
        return self._fenced(lease, now, last_started_at=now, last_outcome="running")

    def finish(self, lease: Lease, now: datetime, outcome: str) -> bool:
        return self._fenced(lease, None, last_finished_at=now, last_outcome=outcome)

    def _fenced(self, lease: Lease, live_at: datetime | None, **values: object) -> bool:
        where = [_T.c.job == lease.job, _T.c.holder == self.holder, _T.c.token == lease.token]
        if live_at is not None:
            where.append(_T.c.expires_at > live_at)
        with self.engine.begin() as conn:
            return conn.execute(update(_T).where(*where).values(**values)).rowcount == 1

    def expire_others(self, now: datetime) -> None:
        """The only process (SQLite's lock says so): a dead predecessor's leases end now."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.holder != self.holder, _T.c.expires_at > now)
                .values(expires_at=now)
            )

    def release(self, job: str, now: datetime) -> None:
        """On a clean stop: let the other instances take the job at their next look."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.job == job, _T.c.holder == self.holder, _T.c.expires_at > now)
                .values(expires_at=now)
            )


def all_leases(engine: Engine) -> list[Lease]:
    with engine.connect() as conn:
        return [_lease(r) for r in conn.execute(select(*_T.c).order_by(_T.c.job))]


class SingleProcessLock:
    """SQLite serves one `koubei run`: an exclusive lock on a file beside the database.

    The operating system drops the lock when the process dies, however it dies,
    so a crash never leaves a stale lock behind.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".run-lock")
        self._file: IO[str] | None = None

    def acquire(self, holder: str = INSTANCE) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            handle.close()
            raise StoreError(
                f"another `koubei run` ({other}) is already using the SQLite database "
                f"{self.path.with_name(self.path.name.removesuffix('.run-lock'))}. "
                "SQLite serves one process: stop that one first, or set DATABASE_URL to a "
                "PostgreSQL database to run several instances."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"instance {holder}, pid {os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
