"""Text as the model sees it: one normalisation shared by training and serving.

HTML entities are decoded and tags dropped (platform excerpts carry both),
full-width ASCII becomes half-width (NFKC), whitespace runs collapse, and a long
text keeps its head and its tail: complaints state the problem first and the
demand ("我要投诉到12378") last, so the middle is what can go.
"""

from __future__ import annotations

import html
import re
import unicodedata

MAX_CHARS = 126  # plus [CLS] and [SEP]: 128 positions
_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = html.unescape(_TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub(" ", text).strip()


def head_tail(text: str, max_chars: int = MAX_CHARS) -> str:
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    return text[:head] + text[len(text) - (max_chars - head) :]


def prepare(text: str, max_chars: int = MAX_CHARS) -> str:
    return head_tail(normalize(text), max_chars)
