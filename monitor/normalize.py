"""RawPost -> Post: UTC times, clean text, a stable URL."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime

from monitor.domain import Post, RawPost

_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200d\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Unescape entities, drop invisible characters, tidy whitespace.

    Tags are not stripped here: plain-text sources carry "<" as text
    ("<年化7.2%>"); collectors that receive HTML parse it themselves.

    NFC (not NFKC) so full-width digits and punctuation survive for PII masking
    and for the grader, which sees text as customers typed it.
    """
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def to_utc(value: datetime | None, fallback: datetime) -> datetime:
    if value is None:
        return fallback.astimezone(UTC)
    if value.tzinfo is None:  # a source that gives no offset: treat as UTC, never guess local
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def normalize(raw: RawPost, fetched_at: datetime) -> Post:
    return Post(
        source=raw.source,
        kind=raw.kind,
        external_id=raw.external_id.strip(),
        url=raw.url.strip(),
        author=clean_text(raw.author),
        title=clean_text(raw.title),
        body=clean_text(raw.body),
        rating=raw.rating,
        app_version=(raw.app_version or "").strip() or None,
        published_at=to_utc(raw.published_at, fetched_at),
        votes=max(0, raw.votes),
        extra=dict(raw.extra),
        platform=raw.platform,
    )
