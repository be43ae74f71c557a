"""Reading Slack's payloads defensively: a signed request can still be malformed.

A payload is JSON that someone holding the signing secret (or a bug) may shape any
way: a list where an object belongs, a string for `user`, a null, a case number
too large for the database. Each reader here either returns the expected type or
raises BadPayload naming the field, which the web app answers with 400 and a
slash command with an ephemeral message, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

# Case ids are the cases table's integer key (32-bit on PostgreSQL).
MAX_CASE_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() accepts "²" and "١"


class BadPayload(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def mapping(value: object, where: str, *, optional: bool = True) -> dict[str, Any]:
    """A JSON object; a missing (null) optional one reads as empty."""
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def items(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayload(f"{where}: expected a JSON list, got {_kind(value)}")
    return value


def text(value: object, where: str) -> str:
    """A string field; a number is accepted as its digits, null as empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadPayload(f"{where}: expected a string, got {_kind(value)}")
    return str(value)


def case_id(value: object, where: str) -> int:
    """A case number: ASCII digits (an optional leading #) within the database's range."""
    raw = text(value, where).strip().removeprefix("#")
    if not _DIGITS.fullmatch(raw):
        shown = raw if len(raw) <= 24 else raw[:24] + "…"
        raise BadPayload(f"{where}: {shown!r} is not a case number")
    # int() of thousands of digits is refused (and slow): anything that long is too large.
    number = int(raw) if len(raw) <= 20 else MAX_CASE_ID + 1
    if not 1 <= number <= MAX_CASE_ID:
        raise BadPayload(f"{where}: there is no case #{raw[:24]}")
    return number


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    return "null" if value is None else kinds.get(type(value), "a number")
