"""Reading a source's answer item by item: one bad item is set aside, never the page.

A whole-page parser fails the page for one item's fault. Here invalid UTF-8
and absurd nesting are confined to the item that holds them, which the
collector then rejects (Collector.read_item) while the rest of the page is read.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from monitor.domain import RawPost

MAX_DEPTH = 64  # no feed we read nests past ten levels
TOO_DEEP = "koubei:nested_too_deep"
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads_json(content: bytes | str) -> Any:
    """Parse JSON without letting one item's bytes or depth fail the page.

    Bytes are decoded with surrogateescape: a byte that is not UTF-8 becomes a
    lone surrogate inside the one string that held it, and `text_problem` finds
    it there. Nesting deeper than Python's parser recurses is cut at MAX_DEPTH:
    the subtree becomes {TOO_DEEP: true}, which no field parser accepts as text.
    Raises ValueError (json.JSONDecodeError) when the answer is not JSON at all.
    """
    text = content.decode("utf-8", "surrogateescape") if isinstance(content, bytes) else content
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text)
    except RecursionError:
        return json.loads(_cut_deep(text, MAX_DEPTH))


def _cut_deep(text: str, limit: int) -> str:
    out: list[str] = []
    depth = 0
    pos = 0
    cutting = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == limit + 1 and not cutting:
                out.append(text[pos : match.start()])
                out.append(json.dumps({TOO_DEEP: True}))
                cutting = True
        else:
            if depth == limit + 1 and cutting:
                pos = match.end()
                cutting = False
            depth -= 1
    if not cutting:
        out.append(text[pos:])
    return "".join(out)


def text_problem(value: str) -> str | None:
    """Why a string read from a source cannot be stored as text, if it cannot."""
    if _SURROGATE.search(value):
        return "holds bytes that are not valid UTF-8 (or a lone surrogate escape)"
    return None


def post_problem(post: RawPost) -> str | None:
    """The first field of a parsed item that is not storable text, named."""
    for f in dataclasses.fields(post):
        value = getattr(post, f.name)
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            return f"`{f.name}` {problem}"
    platform = post.platform
    for name in ("status", "appeal"):
        value = getattr(platform, name, None) if platform else None
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            return f"`platform.{name}` {problem}"
    return None


def text_field(value: object, name: str) -> str:
    """A text field from a payload; a list or object where text belongs is an error."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"`{name}` is {type(value).__name__}, not text")


def text_id(value: object) -> str:
    """An id from a payload as text; "" for null, booleans and containers, never "None"."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""
