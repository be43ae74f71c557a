"""The vocabulary shared by every stage: grades, sentiments, case states, posts, verdicts."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, get_args


class Severity(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    NONE = "none"

    @property
    def rank(self) -> int:
        """Higher is more severe: P1=4 ... none=0."""
        return _SEVERITY_RANK[self]

    def raised(self, steps: int = 1) -> Severity:
        """One step more severe, capped at P1; `none` stays `none` (not a complaint)."""
        if self is Severity.NONE:
            return self
        return _BY_RANK[min(4, self.rank + steps)]

    @property
    def opens_case(self) -> bool:
        return self in (Severity.P1, Severity.P2, Severity.P3)


_SEVERITY_RANK = {Severity.P1: 4, Severity.P2: 3, Severity.P3: 2, Severity.P4: 1, Severity.NONE: 0}
_BY_RANK = {rank: sev for sev, rank in _SEVERITY_RANK.items()}


def most_severe(*grades: Severity) -> Severity:
    return max(grades, key=lambda s: s.rank)


# DESIGN.md's categories, named once: the lexicon, the policy and the model's outputs use these.
GradedCategory = Literal[
    "collection",
    "fees",
    "deduction",
    "credit_report",
    "privacy",
    "fraud",
    "service",
    "app",
    "approval",
]
Category = Literal[GradedCategory, "other"]
CATEGORIES: tuple[str, ...] = (*get_args(GradedCategory), "other")


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class CaseState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    FALSE_POSITIVE = "false_positive"


# The one set of Chinese names for case states, wherever Chinese text shows a state.
CASE_STATE_NAMES: dict[str, str] = {
    CaseState.OPEN.value: "待确认",
    CaseState.ACKNOWLEDGED.value: "处理中",
    CaseState.RESOLVED.value: "已解决",
    CaseState.REOPENED.value: "已重开",
    CaseState.FALSE_POSITIVE.value: "误报",
}


def case_state_name(state: str) -> str:
    return CASE_STATE_NAMES.get(state, state)


class AlertKind(StrEnum):
    NEW_CASE = "new_case"
    REGRADED = "regraded"
    DIGEST = "digest"
    GROUP = "group"  # many P3 cases in one message
    UPDATE = "update"  # edit a case's message to show its state
    EVENT = "event"  # a case event told in its thread (ack, resolve, note...)
    REMINDER = "reminder"
    ESCALATION = "escalation"
    BREACH = "breach"
    SURGE = "surge"
    DEADMAN = "deadman"
    SOURCE_HEALTH = "source_health"
    DELIVERY_FAILED = "delivery_failed"  # told to the ops channel when Slack refused an alert
    REVIEW_REPLY = "review_reply"  # a public reply to an App Store review, through its API


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # Slack refused it for good: not retried, told to the ops channel


@dataclass(frozen=True)
class RawPost:
    """One review or complaint as a collector read it, before normalisation."""

    source: str
    kind: str
    external_id: str
    url: str
    author: str
    title: str
    body: str
    rating: int | None
    app_version: str | None
    published_at: datetime | None
    votes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    platform: PlatformState | None = None


@dataclass(frozen=True)
class Rejected:
    """An item that could not become a stored post: kept in quarantine with its error.

    `stage` says where it failed: "parse" (the collector), "normalize", or "store".
    `raw` is the item as read (any JSON-like value); quarantine bounds it.
    """

    source: str
    external_id: str | None
    stage: str
    error: str
    raw: Any


@dataclass(frozen=True)
class PlatformState:
    """What a complaint platform says about a complaint's handling (黑猫, 聚投诉)."""

    status: str  # the platform's word: 处理中, 已回复, 已完成, 已关闭 ...
    final: bool  # nothing will change any more: stop polling
    resolved: bool  # the platform says it was resolved (已完成)
    appeal: str | None = None  # 诉求
    amount: float | None = None  # 涉诉金额, yuan
    replied_at: datetime | None = None  # the company's first reply
    completed_at: datetime | None = None
    satisfaction: int | None = None  # the user's evaluation, 1-5


@dataclass(frozen=True)
class Post:
    """A normalised post: UTC times, clean text, a hash that changes when the text is edited."""

    source: str
    kind: str
    external_id: str
    url: str
    author: str
    title: str
    body: str
    rating: int | None
    app_version: str | None
    published_at: datetime
    votes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    platform: PlatformState | None = None

    @property
    def text(self) -> str:
        """What the grader reads: the title and the body."""
        if self.title and self.title not in self.body:
            return f"{self.title}。{self.body}" if self.body else self.title
        return self.body

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.title, self.body, str(self.rating), self.app_version or ""):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x1f")
        return digest.hexdigest()

    def as_json(self) -> dict[str, Any]:
        """The keys `koubei collect --dry-run` prints, in a stable order."""
        return {
            "source": self.source,
            "kind": self.kind,
            "external_id": self.external_id,
            "url": self.url,
            "author": self.author,
            "title": self.title,
            "body": self.body,
            "rating": self.rating,
            "app_version": self.app_version,
            "published_at": self.published_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Verdict:
    """The grade of one text by one grader version, with the reasons a person can check."""

    sentiment: Sentiment
    sentiment_score: float
    categories: tuple[str, ...]
    signals: tuple[str, ...]
    severity: Severity
    reasons: tuple[str, ...]
    model: str


# --- Notices: what the work floor tells people, with no markup ------------------------
# The outbox stores a Notice as JSON (`Notice.to_json`) and each sink renders it at
# delivery time in its own format (Slack Block Kit, WeCom/DingTalk markdown, Feishu
# cards). Scraped text in a notice is already PII-masked and stripped of format
# characters, but not escaped: escaping is the renderer's job, per platform.

NoticeMethod = Literal["post", "reply", "update", "file"]


@dataclass(frozen=True)
class Mention:
    """Whom a notice should notify: a person key of policy.yaml's people, a role, or everyone.

    Sinks resolve it per platform (Slack user id, WeCom/DingTalk mobile or user id,
    Feishu open id); a sink without mentions writes the person's name instead.
    """

    person: str | None = None
    role: str | None = None
    everyone: bool = False


@dataclass(frozen=True)
class NoticeLink:
    label: str
    url: str


@dataclass(frozen=True)
class NoticeItem:
    """One line of a digest, a group message or a report summary."""

    text: str
    url: str | None = None
    grade: Severity | None = None
    case_id: int | None = None
    rating: int | None = None  # the post's stars, when it has a rating
    meta: tuple[str, ...] = ()  # short facts shown after the text: source, categories


@dataclass(frozen=True)
class Notice:
    """A channel-neutral message: kind, grade, case, route and content, but no markup.

    `route` is a channel key of the config (crisis, complaints, digest, ops,
    executives); sinks map it to their own channel or group. `actions` are the case
    actions the reader may take (ack, assign, first_response, resolve, reopen,
    false_positive, escalate): buttons where the sink has them, a link otherwise.
    """

    kind: AlertKind
    dedup_key: str
    route: str
    headline: str
    grade: Severity | None = None
    case_id: int | None = None
    quote: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    reasons: tuple[str, ...] = ()
    links: tuple[NoticeLink, ...] = ()
    mentions: tuple[Mention, ...] = ()
    actions: tuple[str, ...] = ()
    items: tuple[NoticeItem, ...] = ()
    status: str = ""  # the case's state line (state, owner, next deadline), plain text
    file: str | None = None  # a report to upload with the notice
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "dedup_key": self.dedup_key,
            "route": self.route,
            "headline": self.headline,
            "grade": self.grade.value if self.grade else None,
            "case_id": self.case_id,
            "quote": self.quote,
            "fields": [list(f) for f in self.fields],
            "reasons": list(self.reasons),
            "links": [{"label": x.label, "url": x.url} for x in self.links],
            "mentions": [
                {"person": m.person, "role": m.role, "everyone": m.everyone} for m in self.mentions
            ],
            "actions": list(self.actions),
            "items": [
                {
                    "text": i.text,
                    "url": i.url,
                    "grade": i.grade.value if i.grade else None,
                    "case_id": i.case_id,
                    "rating": i.rating,
                    "meta": list(i.meta),
                }
                for i in self.items
            ],
            "status": self.status,
            "file": self.file,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        def grade(value: Any) -> Severity | None:
            return Severity(value) if value else None

        return cls(
            kind=AlertKind(data["kind"]),
            dedup_key=str(data["dedup_key"]),
            route=str(data["route"]),
            headline=str(data["headline"]),
            grade=grade(data.get("grade")),
            case_id=data.get("case_id"),
            quote=str(data.get("quote") or ""),
            fields=tuple((str(k), str(v)) for k, v in data.get("fields") or ()),
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            links=tuple(
                NoticeLink(str(x["label"]), str(x["url"])) for x in data.get("links") or ()
            ),
            mentions=tuple(
                Mention(m.get("person"), m.get("role"), bool(m.get("everyone")))
                for m in data.get("mentions") or ()
            ),
            actions=tuple(str(a) for a in data.get("actions") or ()),
            items=tuple(
                NoticeItem(
                    str(i["text"]),
                    i.get("url"),
                    grade(i.get("grade")),
                    i.get("case_id"),
                    i.get("rating"),
                    tuple(str(m) for m in i.get("meta") or ()),
                )
                for i in data.get("items") or ()
            ),
            status=str(data.get("status") or ""),
            file=data.get("file"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class SinkRef:
    """Where a sink put a message: its channel (or group) and its own message reference."""

    channel: str
    ref: str


@dataclass(frozen=True)
class Outgoing:
    """One delivery as the outbox hands it to a sink.

    `thread` is the case's first message on this sink (for replies and edits) when the
    sink has one; `group` holds the member notices of a group message, rendered
    together. `method` is already adapted to the sink's capabilities: a sink without
    threads gets "post" for a thread event, one without edits gets "post" for a state
    change (its renderer names 工单 #id in both).
    """

    delivery_id: int
    alert_id: int
    method: NoticeMethod
    channel: str
    notice: Notice
    created_at: datetime
    thread: SinkRef | None = None
    group: tuple[Notice, ...] = ()
    # The method the notice asked for when the sink's capabilities changed it ("reply"
    # or "update" sent as a "post"); None when `method` is as queued.
    adapted_from: NoticeMethod | None = None
    # A message queued by a version before notices (a Slack Block Kit payload): Slack
    # delivers it as it is; other sinks render `notice`, made from its text.
    raw: dict[str, Any] | None = None


class Sink(Protocol):
    """Where notices go. Capabilities are class attributes, in the manner of apprise's
    plugins; the outbox adapts each delivery to them (see `Outgoing`).

    `send` raises `monitor.errors.SinkError` saying whether the attempt surely failed.
    `find` looks for a message already sent for `out.alert_id` (after an unanswered
    attempt); sinks without `lookup` return None.
    """

    kind: ClassVar[str]  # slack, wecom, dingtalk, feishu, console
    threads: ClassVar[bool]
    edits: ClassVar[bool]
    buttons: ClassVar[bool]
    files: ClassVar[bool]
    mentions: ClassVar[bool]
    lookup: ClassVar[bool]
    max_bytes: ClassVar[int]  # the largest message the service takes, UTF-8 bytes
    rate_per_minute: ClassVar[int]  # per robot or channel, as published
    rate_source: ClassVar[str]  # where that limit is published
    name: str  # the sink's name in the config's `sinks:` list

    def send(self, out: Outgoing) -> SinkRef: ...

    def find(self, out: Outgoing) -> SinkRef | None: ...


# --- Inline marks in a notice's text ---------------------------------------------------
# A notice's text may name a mention or a link of the notice, or set a word in bold or as
# code, with marks made of U+2063 (INVISIBLE SEPARATOR). It is a format character
# (category Cf), which `strip_format` drops from every scraped or typed text, so a mark
# can only come from Koubei itself: a review cannot forge a mention or a link.
MARK = "\u2063"
_MARKS = re.compile(f"{MARK}(m\\d+|l\\d+|b|/b|c|/c){MARK}")


def strip_format(text: str) -> str:
    """Drop invisible format characters (category Cf), bidi controls among them."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def mention_mark(index: int) -> str:
    """Where `notice.mentions[index]` is written in the text."""
    return f"{MARK}m{index}{MARK}"


def link_mark(index: int) -> str:
    """Where `notice.links[index]` is written in the text (its label, linked)."""
    return f"{MARK}l{index}{MARK}"


def strong(text: str) -> str:
    return f"{MARK}b{MARK}{text}{MARK}/b{MARK}"


def code(text: str) -> str:
    return f"{MARK}c{MARK}{text}{MARK}/c{MARK}"


@dataclass(frozen=True)
class InlineStyle:
    """How one platform writes the marks: `escape` for plain text, the rest per mark."""

    escape: Callable[[str], str]
    mention: Callable[[Mention], str]
    link: Callable[[NoticeLink], str]
    bold: tuple[str, str] = ("", "")
    code: tuple[str, str] = ("", "")


def render_inline(text: str, notice: Notice, style: InlineStyle) -> str:
    """The text in one platform's format: plain parts escaped, marks written its way."""
    out: list[str] = []
    pos = 0
    for match in _MARKS.finditer(text):
        out.append(style.escape(text[pos : match.start()]))
        pos = match.end()
        token = match.group(1)
        if token[0] == "m" and int(token[1:]) < len(notice.mentions):
            out.append(style.mention(notice.mentions[int(token[1:])]))
        elif token[0] == "l" and int(token[1:]) < len(notice.links):
            out.append(style.link(notice.links[int(token[1:])]))
        elif token in ("b", "/b"):
            out.append(style.bold[token == "/b"])
        elif token in ("c", "/c"):
            out.append(style.code[token == "/c"])
    out.append(style.escape(text[pos:]))
    return "".join(out)


def plain_text(text: str, notice: Notice) -> str:
    """The text with its marks written as plain words (mentions by name or key)."""
    return render_inline(
        text,
        notice,
        InlineStyle(
            escape=lambda s: s,
            mention=lambda m: "@所有人" if m.everyone else f"@{m.person or m.role or ''}",
            link=lambda x: f"{x.label} {x.url}",
        ),
    )
