"""Slack request signing: HMAC over the raw body, a 5-minute window, and no replays.

v0=hex(HMAC_SHA256(signing_secret, "v0:" + timestamp + ":" + raw_body)), compared
in constant time. A request whose signature was already accepted is a replay
(Slack retries, or someone replaying a captured request) and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from monitor.clock import Clock
from monitor.store.sql import dialect_insert
from monitor.store.tables import SlackRequestRow

WINDOW = timedelta(minutes=5)


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    engine: Engine, secret: str, clock: Clock, timestamp: str | None, sig: str | None, body: bytes
) -> None:
    """Raise Rejected unless the request is signed, fresh and new."""
    if not timestamp or not sig:
        raise Rejected(401, "missing Slack signature headers")
    try:
        sent = float(timestamp)
    except ValueError:
        raise Rejected(401, "bad X-Slack-Request-Timestamp") from None
    now = clock.now()
    if abs(now.timestamp() - sent) > WINDOW.total_seconds():
        raise Rejected(401, "request timestamp outside the 5-minute window")
    if not hmac.compare_digest(signature(secret, timestamp, body), sig):
        raise Rejected(401, "bad signature")
    if not remember_once(engine, clock, f"{timestamp}:{sig}"):
        raise Rejected(409, "replayed request ignored")


def remember_once(engine: Engine, clock: Clock, key: str) -> bool:
    """True the first time a signed request's key is seen within the window, else False.

    Slack's requests and the app backend's signed feedback share the one table;
    their keys cannot collide (the feedback's carry a prefix).
    """
    now = clock.now()
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    table = SlackRequestRow.__table__  # type: ignore[attr-defined]
    with Session(engine) as session, session.begin():
        session.execute(delete(table).where(col(SlackRequestRow.received_at) < now - 2 * WINDOW))
        inserted = session.execute(
            dialect_insert(session)(table)
            .values(fingerprint=fingerprint, received_at=now)
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(table.c.id)
        ).scalar_one_or_none()
    return inserted is not None
