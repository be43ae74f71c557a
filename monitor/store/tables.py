"""The tables. Migrations in store/migrations/ create them; a test checks the two agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from monitor.store.types import RedactedText, UTCDateTime


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None if nullable else ..., sa_type=UTCDateTime, nullable=nullable, index=index
    )


def _json() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class PostRow(SQLModel, table=True):
    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_posts_source_external"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    url: str
    author: str = ""
    title: str = ""
    body: str = ""
    rating: int | None = None
    app_version: str | None = Field(default=None, max_length=64)
    votes: int = 0
    platform_status: str | None = Field(default=None, max_length=32)
    appeal: str | None = None
    amount: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(max_length=64)
    published_at: datetime = _ts(index=True)
    fetched_at: datetime = _ts()
    updated_at: datetime = _ts()
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)


class VerdictRow(SQLModel, table=True):
    __tablename__ = "verdicts"
    __table_args__ = (Index("ix_verdicts_post_created", "post_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="posts.id")
    content_hash: str = Field(max_length=64)
    model: str = Field(max_length=64)
    sentiment: str = Field(max_length=16)
    sentiment_score: float
    severity: str = Field(max_length=8, index=True)
    categories: list[str] = _json()
    signals: list[str] = _json()
    reasons: list[str] = _json()
    created_at: datetime = _ts()
    # P4 posts wait for the daily digest; this marks the digest that carried them.
    digest_alert_id: int | None = Field(default=None, foreign_key="alerts.id")


class CaseRow(SQLModel, table=True):
    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    severity: str = Field(max_length=8)
    state: str = Field(max_length=16, index=True)
    title: str = ""
    source: str = Field(max_length=64)
    author: str = ""
    opened_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    ack_due: datetime | None = _ts(nullable=True)
    response_due: datetime | None = _ts(nullable=True)
    resolve_due: datetime | None = _ts(nullable=True)
    acknowledged_at: datetime | None = _ts(nullable=True)
    first_response_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)
    owner: str | None = Field(default=None, max_length=64)
    escalation_level: int = 0
    resolution_note: str | None = None
    public_reply_url: str | None = None
    satisfaction: int | None = None


class CaseEventRow(SQLModel, table=True):
    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    kind: str = Field(max_length=32)
    actor: str = Field(default="koubei", max_length=64)
    at: datetime = _ts()
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    # The P3 burst check counts recent new-case alerts per channel at every new case.
    __table_args__ = (Index("ix_alerts_kind_channel_created", "kind", "channel_key", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # One alert per (case, kind, ...) however often a job runs: the dedup key is unique.
    dedup_key: str = Field(max_length=128, unique=True)
    kind: str = Field(max_length=32)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    severity: str = Field(max_length=8)
    channel_key: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    # A P3 case alert that arrived in a burst rides in a group message instead.
    group_id: int | None = Field(default=None, foreign_key="alerts.id", index=True)


class DeliveryRow(SQLModel, table=True):
    """The outbox: written in the same transaction as its alert, drained by the outbox job."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # One delivery per alert and sink: a notice routed to two sinks has two.
        UniqueConstraint("alert_id", "sink", name="uq_deliveries_alert_sink"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    # The sink's name in the config's `sinks:` list ("slack" by default).
    sink: str = Field(default="slack", max_length=64, sa_column_kwargs={"server_default": "slack"})
    channel: str = Field(max_length=128)
    # post: a new message; reply: into the case's thread; update: edit the case's message.
    method: str = Field(default="post", max_length=8, sa_column_kwargs={"server_default": "post"})
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    status: str = Field(max_length=16)
    attempts: int = 0
    # Raised by every claim and never lowered (`attempts` is, after a rate limit): the
    # claim that ends a delivery must still be its latest, or its outcome is not kept.
    claim_token: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # True once a post may have reached Slack without our hearing back: the next
    # attempt first looks for the alert id in the channel before posting again.
    maybe_sent: bool = False
    next_attempt_at: datetime = _ts()
    claimed_until: datetime | None = _ts(nullable=True)
    last_error: str | None = None
    # Where the sink put it: its channel (Slack's channel id) and its own message reference.
    sent_channel: str | None = Field(default=None, max_length=128)
    ref: str | None = Field(default=None, max_length=128)
    sent_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class SinkMessageRow(SQLModel, table=True):
    """A case's message on one sink: later events go into its thread, edits change it."""

    __tablename__ = "sink_messages"
    __table_args__ = (UniqueConstraint("case_id", "sink", name="uq_sink_messages_case_sink"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    sink: str = Field(max_length=64)
    channel: str = Field(max_length=128)  # the sink's channel (Slack's channel id)
    channel_key: str = Field(default="", max_length=64)  # the config's route key
    ref: str = Field(max_length=128)  # the sink's message reference (Slack's ts)
    alert_id: int | None = Field(default=None, foreign_key="alerts.id")
    created_at: datetime = _ts()


class SourceStateRow(SQLModel, table=True):
    __tablename__ = "source_state"

    source: str = Field(primary_key=True, max_length=64)
    last_run_at: datetime | None = _ts(nullable=True)
    last_success_at: datetime | None = _ts(nullable=True)
    consecutive_failures: int = 0
    last_error: str | None = Field(default=None, sa_type=RedactedText)
    # False after a run that stopped part-way: the next run pages back fully.
    last_run_complete: bool = False
    # Source health: a blind source (failing, blocked or suddenly empty) alerts once.
    blind: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    blind_reason: str | None = Field(default=None, sa_type=RedactedText)
    blind_since: datetime | None = _ts(nullable=True)
    # Collector memory kept between runs (ETags, Last-Modified, backfill position).
    memory: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )


class SourceRunRow(SQLModel, table=True):
    __tablename__ = "source_runs"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    started_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)
    status: str = Field(max_length=16)
    fetched: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = Field(default=None, sa_type=RedactedText)


class HeartbeatRow(SQLModel, table=True):
    """The scheduler's pulse: /healthz reads it, and a gap in it raises a dead-man alert."""

    __tablename__ = "heartbeats"

    name: str = Field(primary_key=True, max_length=32)
    instance: str = Field(max_length=64)
    started_at: datetime = _ts()
    beat_at: datetime = _ts()


class SlackRequestRow(SQLModel, table=True):
    """Signed Slack requests already handled: a replay of one is refused."""

    __tablename__ = "slack_requests"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True)
    received_at: datetime = _ts(index=True)


class MinhashBandRow(SQLModel, table=True):
    """Locality-sensitive hashing of post signatures: posts sharing a band are candidates
    for near-duplicates, found by an index lookup instead of comparing every post."""

    __tablename__ = "minhash_bands"
    # A band's newest posts are read from this index alone (NearIndex's bounded lookup).
    __table_args__ = (Index("ix_minhash_bands_band_post_id", "band", "post_id"),)

    id: int | None = Field(default=None, primary_key=True)
    band: str = Field(max_length=16)
    post_id: int = Field(foreign_key="posts.id", index=True)


class QuarantineRow(SQLModel, table=True):
    """An item a source sent that could not be stored as a post, kept with its error.

    One row per item however often it is read again: (source, fingerprint) is
    unique, and `seen` counts the runs that met it. An item later stored as a
    post leaves quarantine.
    """

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("source", "fingerprint", name="uq_quarantine_source_fingerprint"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    external_id: str | None = Field(default=None, max_length=128)
    fingerprint: str = Field(max_length=64)
    stage: str = Field(max_length=16)  # parse, normalize or store
    error: str
    raw: str  # the item as read, bounded and made printable
    first_seen_at: datetime = _ts()
    last_seen_at: datetime = _ts()
    seen: int = 1


class JobLeaseRow(SQLModel, table=True):
    """Which `koubei run` instance runs a scheduled job, until when, and when it last ran.

    The token grows each time the lease changes hands: a holder that lost its
    lease (paused past the expiry) cannot renew, start or finish with its old token.
    """

    __tablename__ = "job_leases"

    job: str = Field(primary_key=True, max_length=96)
    holder: str = Field(max_length=96)
    token: int = 1
    acquired_at: datetime = _ts()
    renewed_at: datetime = _ts()
    expires_at: datetime = _ts()
    created_at: datetime = _ts()
    last_started_at: datetime | None = _ts(nullable=True)
    last_finished_at: datetime | None = _ts(nullable=True)
    last_outcome: str | None = Field(default=None, max_length=16)


class HostSlotRow(SQLModel, table=True):
    """The next moment a request to a host is allowed, shared by every instance (PostgreSQL)."""

    __tablename__ = "host_slots"

    host: str = Field(primary_key=True, max_length=255)
    next_at: datetime = _ts()


class UserRow(SQLModel, table=True):
    """A person who signs in to the case board: a local password, an OpenID subject, or both."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    display_name: str = ""
    role: str = Field(max_length=16)
    # argon2id hash; None for a person who only signs in through OpenID Connect.
    password_hash: str | None = None
    # The board and Slack agree on who did what: case events and owners use this id.
    slack_id: str | None = Field(default=None, max_length=32)
    oidc_subject: str | None = Field(default=None, max_length=255, unique=True)
    active: bool = True
    created_at: datetime = _ts()
    last_login_at: datetime | None = _ts(nullable=True)


class LoginFailureRow(SQLModel, table=True):
    """Failed sign-ins per account and per address: the rate limit holds across processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=160)
    at: datetime = _ts()


class StoryPickRow(SQLModel, table=True):
    """A positive post PR shortlisted as a story to tell (with the customer's consent)."""

    __tablename__ = "story_picks"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="posts.id", unique=True)
    note: str = ""
    picked_by: str = Field(max_length=64)
    picked_at: datetime = _ts()
