"""Scraped text made safe for Slack mrkdwn, and cut within Slack's limits.

Text from the web is data: format characters (Unicode category Cf: zero-width
joiners and spaces, word joiners, bidirectional overrides and isolates) are
dropped so nothing hidden or reordered reaches a reader; &, < and > are
escaped so `<!channel>` shows literally; a URL is percent-encoded where it
could end a link or start its label (`|`, `<`, `>`, spaces), so a link label
cannot be spoofed. Cutting happens after escaping, at a point that splits no
entity (`&amp;`) and no link or mention (`<...>`).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

ELLIPSIS = "…"
# Longer links are shown as text: a section must stay within 3,000 characters.
URL_LIMIT = 1500


def strip_format(text: str) -> str:
    """Drop invisible format characters (category Cf), bidi controls among them."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def escape_mrkdwn(text: str) -> str:
    text = strip_format(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(mrkdwn: str, limit: int) -> str:
    """At most `limit` characters of rendered mrkdwn, never ending inside `&..;` or `<..>`."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = mrkdwn[: max(0, limit - len(ELLIPSIS))]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt >= 0 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut + ELLIPSIS


def link_url(url: str) -> str | None:
    """A URL fit to sit inside `<...|label>`, or None when it should not be a link."""
    url = strip_format(url).strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    # Keep every character a URL may hold, except those that end a link or start a label.
    encoded = quote(url, safe="!#$%&'()*+,-./:;=?@[]_~")
    escaped = encoded.replace("&", "&amp;")
    return escaped if len(escaped) <= URL_LIMIT else None


def link(url: str, label: str) -> str:
    """`<url|label>` for a scraped URL; the label alone when the URL cannot be linked."""
    target = link_url(url)
    text = escape_mrkdwn(label)
    return f"<{target}|{text}>" if target else text
