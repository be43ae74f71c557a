"""Slack's documented message limits, enforced on every message before it is sent.

Slack refuses a message with more than 50 blocks, a section text over 3,000
characters, more than 10 section fields or one over 2,000, a header over 150,
a context of more than 10 elements (invalid_blocks), and text over 40,000
(msg_too_long). A refused message would be refused on every retry, so what
leaves here is always within them, whatever was queued (messages queued by an
older version included), with invisible format characters dropped.
"""

from __future__ import annotations

from typing import Any

from monitor.alerting.mrkdwn import clip, strip_format

MAX_TEXT = 40_000
MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10


def fit_message(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of chat.postMessage/chat.update arguments that Slack will take."""
    out = dict(message)
    if isinstance(out.get("text"), str):
        out["text"] = clip(strip_format(out["text"]), MAX_TEXT)
    if isinstance(out.get("blocks"), list):
        out["blocks"] = fit_blocks(out["blocks"])
    if isinstance(out.get("attachments"), list):
        out["attachments"] = [
            {**a, "blocks": fit_blocks(a["blocks"])}
            if isinstance(a, dict) and isinstance(a.get("blocks"), list)
            else a
            for a in out["attachments"]
        ]
    return out


def fit_blocks(blocks: list[Any]) -> list[Any]:
    fitted = [_fit_block(b) for b in blocks if isinstance(b, dict)]
    return [b for b in fitted if b is not None][:MAX_BLOCKS]


def _fit_text(obj: Any, limit: int) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return obj
    return {**obj, "text": clip(strip_format(obj["text"]), limit) or "—"}


def _fit_block(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    out = dict(block)
    if kind == "section":
        if "text" in out:
            out["text"] = _fit_text(out["text"], SECTION_TEXT)
        if isinstance(out.get("fields"), list):
            out["fields"] = [_fit_text(f, FIELD_TEXT) for f in out["fields"][:MAX_FIELDS]]
    elif kind == "header":
        out["text"] = _fit_text(out.get("text"), HEADER_TEXT)
    elif kind == "context":
        elements = out.get("elements")
        if not isinstance(elements, list) or not elements:
            return None
        out["elements"] = [_fit_text(e, SECTION_TEXT) for e in elements[:CONTEXT_ELEMENTS]]
    return out
