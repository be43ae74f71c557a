"""RawPost -> Post: UTC times, clean text, bounded fields, a stable URL.

Whatever a source sends is untrusted, and this is where it becomes storable:
control and format characters go (a NUL is refused by PostgreSQL; a U+2060
between 乱, 扣 and 费 hides the words from the lexicon), lengths are bounded to
the columns that hold them, numbers are clamped to what the columns hold. An
item that still cannot become a post (no id, a time out of range) raises
ValueError naming the field, and the pipeline quarantines it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from monitor.domain import PlatformState, Post, RawPost

# Column sizes (store/tables.py) and the ranges of the integer columns.
MAX_ID = 128
MAX_VERSION = 64
MAX_STATUS = 32
MAX_URL = 2048
MAX_AUTHOR = 200
MAX_TITLE = 1000
MAX_BODY = 50_000
MAX_INT = 2**31 - 1  # PostgreSQL INTEGER
MAX_AMOUNT = 1e12  # yuan; anything larger is a parse artefact, not a claim

# Every format character (Unicode category Cf: zero-width and bidirectional
# controls, U+2060 word joiner, U+180E, U+FEFF...) lies in these two ranges;
# a test checks that against a scan of all of Unicode.
_CF_RANGES = (range(0x0000, 0x20000), range(0xE0000, 0xE1000))


def _invisible_class() -> str:
    """Format and control characters (tab and newline kept) and lone surrogates, which
    no database stores as text, as a regex class of ranges (a list of single
    characters beyond the BMP is matched one by one, several times slower)."""
    codes = [
        c
        for r in _CF_RANGES
        for c in r
        if unicodedata.category(chr(c)) == "Cf"
        or (unicodedata.category(chr(c)) == "Cc" and chr(c) not in "\t\n")
    ] + list(range(0xD800, 0xE000))
    ranges: list[list[int]] = []
    for c in sorted(codes):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(
        re.escape(chr(a)) + ("" if a == b else "-" + re.escape(chr(b))) for a, b in ranges
    )


INVISIBLE = re.compile(f"[{_invisible_class()}]")
_LINE_BREAKS = re.compile("\r\n|[\r\u2028\u2029]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def clean_text(text: str, limit: int = MAX_BODY) -> str:
    """Unescape entities, drop invisible characters, tidy whitespace, bound the length.

    Tags are not stripped here: plain-text sources carry "<" as text
    ("<年化7.2%>"); collectors that receive HTML parse it themselves.

    NFC (not NFKC) so full-width digits and punctuation survive for PII masking
    and for the grader, which sees text as customers typed it.
    """
    text = _LINE_BREAKS.sub("\n", html.unescape(text))
    # Stripped before NFC, so a mark split off by a hidden character composes
    # (NFC itself never produces format or control characters).
    text = unicodedata.normalize("NFC", INVISIBLE.sub("", text))
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _cut(_BLANK_LINES.sub("\n\n", text).strip(), limit)


def clean_field(text: str, limit: int) -> str:
    """A one-line field (a version, a status, a URL): no invisible characters, bounded."""
    return _cut(INVISIBLE.sub("", text).strip(), limit)


def clean_id(external_id: str) -> str:
    """The source's id, storable and still unique.

    An id longer than the column keeps its start and gains a digest of the whole,
    so two long ids that share a prefix stay two posts, and the same id maps to
    the same key on every run. An id that is empty once cleaned cannot be told
    apart from another: ValueError, and the item goes to quarantine.
    """
    ident = INVISIBLE.sub("", external_id).strip()
    if not ident:
        raise ValueError(
            "the item has no id (kept in quarantine rather than merged with another post)"
        )
    if len(ident) > MAX_ID:
        digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]
        ident = f"{ident[: MAX_ID - 33]}~{digest}"
    return ident


def clamp(value: int, low: int = 0, high: int = MAX_INT) -> int:
    return max(low, min(high, value))


def to_utc(value: datetime | None, fallback: datetime) -> datetime:
    if value is None:
        return fallback.astimezone(UTC)
    if value.tzinfo is None:  # a source that gives no offset: treat as UTC, never guess local
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"publish time {value.isoformat()} is out of range") from None


def _clean_extra(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_field(value, 1000)
    if depth >= 8:
        return None
    if isinstance(value, dict):
        return {clean_field(str(k), 64): _clean_extra(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_extra(v, depth + 1) for v in value[:100]]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return clamp(value, -MAX_INT, MAX_INT)
    return value


def _platform(state: PlatformState | None) -> PlatformState | None:
    if state is None:
        return None
    amount = state.amount
    if amount is not None and not (math.isfinite(amount) and abs(amount) <= MAX_AMOUNT):
        amount = None
    satisfaction = state.satisfaction
    return dataclasses.replace(
        state,
        status=clean_field(state.status, MAX_STATUS) or "未知",
        appeal=clean_text(state.appeal, MAX_TITLE) or None if state.appeal else None,
        amount=amount,
        satisfaction=satisfaction if satisfaction is not None and 1 <= satisfaction <= 5 else None,
    )


def normalize(raw: RawPost, fetched_at: datetime) -> Post:
    """The post as stored; ValueError names the field when the item cannot be one."""
    return Post(
        source=raw.source,
        kind=raw.kind,
        external_id=clean_id(raw.external_id),
        url=clean_field(raw.url, MAX_URL),
        author=clean_text(raw.author, MAX_AUTHOR),
        title=clean_text(raw.title, MAX_TITLE),
        body=clean_text(raw.body, MAX_BODY),
        rating=raw.rating if raw.rating is not None and 1 <= raw.rating <= 5 else None,
        app_version=clean_field(raw.app_version or "", MAX_VERSION) or None,
        published_at=to_utc(raw.published_at, fetched_at),
        votes=clamp(raw.votes),
        extra=_clean_extra(dict(raw.extra)),
        platform=_platform(raw.platform),
    )
