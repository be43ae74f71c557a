"""In-app ratings and feedback, sent by the app's backend to `POST /ingest/feedback`.

The backend signs each request with the secret in KOUBEI_INGEST_SECRET:

    X-Koubei-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A request outside a 5-minute window, with a bad signature, or whose signature was
already accepted (a replay) is refused and stores nothing. The body is one event or a
JSON array of them (a backfill), each `{id, rating 1-5, text, user_id, app_version,
created_at, channel}`. An event id already stored is answered 202 and stores nothing new.
Each new event is a post of source `inapp`, graded and cased like any other; the
customer's user id is kept only as a keyed hash, so it joins their posts into one case
without being readable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.clock import Clock
from monitor.domain import RawPost, Rejected
from monitor.normalize import normalize
from monitor.pipeline import RunResult, Services, quarantine, store_post
from monitor.store.posts import stored_ids
from monitor.web.verify import WINDOW, remember_once
from monitor.web.verify import Rejected as Refused

SOURCE = "inapp"
SIGNATURE_HEADER = "X-Koubei-Signature"
SECRET_ENV = "KOUBEI_INGEST_SECRET"
MAX_EVENTS = 1000
_HEADER = re.compile(r"^t=(\d{1,12}),v1=([0-9a-f]{64})$")


class FeedbackEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    rating: int | None = Field(default=None, ge=1, le=5)
    text: str = Field(default="", max_length=10_000)
    user_id: str | None = Field(default=None, max_length=256)
    app_version: str | None = Field(default=None, max_length=64)
    created_at: datetime
    channel: str = Field(default="app", pattern=r"^[A-Za-z0-9_.-]{1,32}$")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at needs a time zone offset (e.g. 2026-11-28T10:00:00+08:00)")
        return value


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The header value the app's backend sends."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def user_hash(secret: str, user_id: str) -> str:
    """A keyed hash: the same customer joins one case, and no one can reverse a phone number."""
    mac = hmac.new(secret.encode(), b"koubei-user:" + user_id.encode(), hashlib.sha256)
    return "u_" + mac.hexdigest()[:16]


def verify_signature(ingestor: Ingestor, header: str | None, body: bytes) -> None:
    match = _HEADER.match(header or "")
    if match is None:
        raise Refused(401, f"missing or malformed {SIGNATURE_HEADER} (t=<unix>,v1=<hex>)")
    timestamp, given = match.groups()
    now = ingestor.clock.now()
    if abs(now.timestamp() - int(timestamp)) > WINDOW.total_seconds():
        raise Refused(401, "signature timestamp outside the 5-minute window")
    if not hmac.compare_digest(sign(ingestor.secret, timestamp, body), f"t={timestamp},v1={given}"):
        raise Refused(401, "bad signature")
    if not remember_once(ingestor.engine, ingestor.clock, f"{SOURCE}:{timestamp}:{given}"):
        raise Refused(409, "replayed request ignored")


def parse_events(body: bytes) -> list[FeedbackEvent]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "body is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_EVENTS:
        raise Refused(400, f"send 1 to {MAX_EVENTS} events (a JSON object or an array)")
    events = []
    for i, item in enumerate(items):
        try:
            events.append(FeedbackEvent.model_validate(item))
        except ValidationError as exc:
            where = f"event {i}" if isinstance(data, list) else "the event"
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(event)"
            raise Refused(400, f"{where}: {key}: {first['msg']}") from None
    return events


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    cases_opened: int = 0
    quarantined: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "cases_opened": self.cases_opened,
            "quarantined": self.quarantined,
        }


class Ingestor:
    """Turns verified events into posts through the pipeline (the grader loads once)."""

    def __init__(self, services: Callable[[], Services], secret: str, clock: Clock) -> None:
        self._make = services
        self._svc: Services | None = None
        self._lock = threading.Lock()
        self.secret = secret
        self.clock = clock

    @property
    def svc(self) -> Services:
        with self._lock:
            if self._svc is None:
                self._svc = self._make()
            return self._svc

    @property
    def engine(self) -> Any:
        return self.svc.engine

    def raw_post(self, event: FeedbackEvent) -> RawPost:
        return RawPost(
            source=SOURCE,
            kind=SOURCE,
            external_id=event.id,
            url="",
            author=user_hash(self.secret, event.user_id) if event.user_id else "",
            title="",
            body=event.text,
            rating=event.rating,
            app_version=event.app_version,
            published_at=event.created_at,
            extra={"channel": event.channel},
        )

    def ingest(self, events: list[FeedbackEvent]) -> Outcome:
        svc = self.svc
        outcome = Outcome()
        known = stored_ids(svc.engine, SOURCE, [e.id for e in events])
        result = RunResult(source=SOURCE)
        rejected: list[Rejected] = []
        seen: set[str] = set()
        for event in events:
            if event.id in known or event.id in seen:
                outcome.duplicates += 1
                continue
            seen.add(event.id)
            before = len(rejected)
            store_post(svc, normalize(self.raw_post(event), svc.clock.now()), result, rejected)
            if len(rejected) == before:
                outcome.accepted += 1
        if rejected:
            quarantine(svc, SOURCE, rejected)
            outcome.quarantined = [r.external_id or "" for r in rejected]
        outcome.cases_opened = result.cases_opened
        return outcome
