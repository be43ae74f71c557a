"""Slack messages (Block Kit inside a coloured attachment) for cases and digests.

Scraped text is data: invisible format characters are dropped, it is
PII-masked, then escaped for mrkdwn (&, <, >) so a review containing
`<!channel>` or `<https://evil|bank>` shows literally, and only then cut, so
what Slack receives is within its limits. Mentions also go into the top-level
text: mentions inside attachments alone may not notify anyone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerting.limits import FIELD_TEXT, SECTION_TEXT
from monitor.alerting.mrkdwn import clip, link, strip_format
from monitor.alerting.mrkdwn import escape_mrkdwn as escape_mrkdwn
from monitor.classify.pii import mask_pii
from monitor.config import GradePolicy
from monitor.notices import ACTIVE, CATEGORY_LABELS, SIGNAL_LABELS, STATE_LABELS
from monitor.store.tables import CaseRow, PostRow, VerdictRow

BODY_LIMIT = 700  # escaped characters; Slack allows 3,000, an alert should be read at a glance
DIGEST_ITEMS_PER_MESSAGE = 40
METADATA_EVENT = "koubei_alert"
ACTION_IDS = (
    "koubei_ack",
    "koubei_assign",
    "koubei_resolve",
    "koubei_false_positive",
    "koubei_escalate",
)


def safe(text: str, limit: int | None = None) -> str:
    """Scraped text for Slack: format characters dropped, masked, escaped, then cut to `limit`."""
    escaped = escape_mrkdwn(mask_pii(strip_format(text)))
    return escaped if limit is None else clip(escaped, limit)


def with_mentions(mentions: str, text: str) -> str:
    """Text that notifies: the alert first (what a notification preview shows), then whom."""
    return f"{text} {mentions}" if mentions else text


def stars(rating: int | None) -> str:
    return "—" if rating is None else "★" * rating + "☆" * (5 - rating)


def _local(ts: datetime, tz: ZoneInfo) -> str:
    return ts.astimezone(tz).strftime("%m-%d %H:%M")


def status_line(case: CaseRow, tz: ZoneInfo) -> str:
    """State, owner and the next deadline: what the edited message shows."""
    parts = [STATE_LABELS.get(case.state, case.state)]
    parts.append(f"负责人 <@{case.owner}>" if case.owner else "负责人 —")
    if case.state in ("open", "reopened") and case.ack_due:
        parts.append(f"确认时限 {_local(case.ack_due, tz)}")
    elif case.state == "acknowledged" and case.first_response_at is None and case.response_due:
        parts.append(f"首次回应时限 {_local(case.response_due, tz)}")
    elif case.state == "acknowledged" and case.resolve_due:
        parts.append(f"解决时限 {_local(case.resolve_due, tz)}")
    if case.escalation_level:
        parts.append(f"已升级 L{case.escalation_level}")
    if case.state == "resolved" and case.resolved_at:
        parts.append(f"解决于 {_local(case.resolved_at, tz)}")
    return " · ".join(parts)


def case_actions(case: CaseRow) -> dict[str, Any] | None:
    """The buttons, while there is something left to do."""
    if case.state not in ACTIVE:
        return None
    value = str(case.id)
    buttons = []
    if case.state != "acknowledged":
        buttons.append(button("确认 Ack", "koubei_ack", value, "primary"))
    buttons += [
        button("我来负责 Assign me", "koubei_assign", value, None),
        button("解决 Resolve", "koubei_resolve", value, None),
        button("误报 False positive", "koubei_false_positive", value, "danger"),
        button("立即升级 Escalate", "koubei_escalate", value, None),
    ]
    return {"type": "actions", "block_id": f"case:{case.id}", "elements": buttons}


def case_message(
    *,
    alert_id: int,
    case: CaseRow,
    post: PostRow,
    verdict: VerdictRow,
    grade: GradePolicy,
    headline: str,
    tz: ZoneInfo,
    notify: str = "",
) -> dict[str, Any]:
    """The chat.postMessage arguments (less the channel) for a case alert."""
    assert case.id is not None
    title = safe(post.title, 120)
    body = safe(post.body, BODY_LIMIT)
    quoted = clip(
        "\n".join("> " + line for line in (f"*{title}*\n{body}" if title else body).split("\n")),
        SECTION_TEXT,
    )
    categories = "、".join(CATEGORY_LABELS.get(c, c) for c in verdict.categories) or "—"
    signals = "、".join(SIGNAL_LABELS.get(s, s) for s in verdict.signals) or "—"
    mentions = " ".join(m for m in (grade.mention, notify) if m)
    header = f"{mentions} *{escape_mrkdwn(grade.label)}* · {headline} · 工单 #{case.id}".strip()
    fields = [
        f"*来源* {escape_mrkdwn(post.source)}",
        f"*评分* {stars(post.rating)}",
        f"*版本* {escape_mrkdwn(post.app_version or '—')}",
        f"*作者* {safe(post.author, 40) or '—'}",
        f"*分类* {categories}",
        f"*信号* {signals}",
    ]
    reasons = clip("\n".join(f"• {escape_mrkdwn(r)}" for r in verdict.reasons), SECTION_TEXT - 10)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": quoted}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f, FIELD_TEXT)} for f in fields],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*判定依据*\n{reasons}"}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{status_line(case, tz)} · 发布 {_local(post.published_at, tz)} · "
                    f"{link(post.url, '查看原帖')}",
                }
            ],
        },
    ]
    actions = case_actions(case)
    if actions:
        blocks.append(actions)
    fallback = f"[{grade.label}] 工单 #{case.id} {headline}: {safe(post.title or post.body, 80)}"
    return coloured(
        with_mentions(mentions, fallback),
        grade.colour,
        blocks,
        message_metadata(alert_id, case.id, case.severity),
        fallback=fallback,
    )


def thread_reply(
    alert_id: int, case: CaseRow, text: str, *, broadcast: bool = False
) -> dict[str, Any]:
    """A line in the case's thread (events, reminders, escalations)."""
    message: dict[str, Any] = {
        "text": text,
        "metadata": message_metadata(alert_id, case.id, case.severity),
    }
    if broadcast:
        message["reply_broadcast"] = True
    return message


def button(text: str, action_id: str, value: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def plain_message(alert_id: int, severity: str, text: str, colour: str) -> dict[str, Any]:
    """A message that belongs to no case (surge, dead-man)."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return coloured(text, colour, blocks, message_metadata(alert_id, None, severity))


def coloured(
    text: str,
    colour: str,
    blocks: list[dict[str, Any]],
    metadata: dict[str, Any],
    *,
    fallback: str | None = None,
) -> dict[str, Any]:
    """chat.postMessage arguments: Block Kit inside an attachment, for the grade's colour bar.

    `text` is the top-level text, where mentions notify; `fallback` the attachment's.
    """
    return {
        "text": text,
        "attachments": [{"color": colour, "fallback": fallback or text, "blocks": blocks[:50]}],
        "metadata": metadata,
    }


def message_metadata(alert_id: int, case_id: int | None, severity: str) -> dict[str, Any]:
    # The alert id travels with the message so a retry can find what was sent.
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {"alert_id": alert_id, "case_id": case_id or 0, "severity": severity},
    }


def digest_line(post: PostRow, verdict: VerdictRow) -> str:
    """One P4 post in a digest: a whole line, never cut (a cut line can split its link)."""
    cats = "、".join(CATEGORY_LABELS.get(c, c) for c in verdict.categories)
    return (
        f"• {stars(post.rating)} {safe(post.title or post.body, 60)} "
        f"({escape_mrkdwn(post.source)} · {cats} · {link(post.url, '原帖')})"
    )


def digest_parts(lines: list[str]) -> list[list[str]]:
    """The digest's lines in messages of at most DIGEST_ITEMS_PER_MESSAGE, in order."""
    step = DIGEST_ITEMS_PER_MESSAGE
    return [lines[i : i + step] for i in range(0, len(lines), step)]


def line_sections(lines: list[str], limit: int = SECTION_TEXT) -> list[str]:
    """Lines packed into section texts of at most `limit` characters, split between lines."""
    sections: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            sections.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
    return sections


def digest_message(
    *,
    alert_id: int,
    lines: list[str],
    total: int,
    part: int,
    parts: int,
    grade: GradePolicy,
    period: str,
) -> dict[str, Any]:
    """One message of the day's digest (part of parts); every line of it shown in full."""
    label = escape_mrkdwn(grade.label)
    of = f" · 第 {part}/{parts} 条" if parts > 1 else ""
    header = f"*{label}* · 每日摘要 {period} · {total} 条轻度不满{of}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in line_sections(lines)
    ]
    fallback = f"[{grade.label}] 每日摘要 {period}: {total} 条" + (
        f"（{part}/{parts}）" if parts > 1 else ""
    )
    return coloured(fallback, grade.colour, blocks, message_metadata(alert_id, None, "P4"))


__all__ = ["ACTIVE", "CATEGORY_LABELS", "SIGNAL_LABELS", "STATE_LABELS"]
