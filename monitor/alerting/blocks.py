"""Slack messages (Block Kit inside a coloured attachment) for cases and digests.

Scraped text is data: it is PII-masked, then escaped for mrkdwn (&, <, >) so a
review containing `<!channel>` or `<https://evil|bank>` shows literally.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.classify.pii import mask_pii
from monitor.config import GradePolicy
from monitor.domain import CASE_STATE_NAMES
from monitor.store.tables import CaseRow, PostRow, VerdictRow

BODY_LIMIT = 700  # Slack section text allows 3,000; an alert should be read at a glance
METADATA_EVENT = "koubei_alert"
ACTION_IDS = (
    "koubei_ack",
    "koubei_assign",
    "koubei_resolve",
    "koubei_false_positive",
    "koubei_escalate",
)

CATEGORY_LABELS = {
    "collection": "催收",
    "fees": "息费",
    "deduction": "扣款",
    "credit_report": "征信",
    "privacy": "隐私",
    "fraud": "诈骗/冒名",
    "service": "客服",
    "app": "App故障/体验",
    "approval": "审批/额度/放款",
    "other": "其他",
}
SIGNAL_LABELS = {
    "self_harm": "轻生",
    "threat": "威胁/恐吓",
    "third_party": "波及第三方",
    "regulator": "监管",
    "media": "媒体",
    "legal": "报警/诉讼",
    "collective": "集体维权",
}


STATE_ICONS = {"open": "🔴", "acknowledged": "🟡", "resolved": "✅", "reopened": "🔴"}
STATE_LABELS = {
    state: f"{STATE_ICONS.get(state, '⚪')} {name}" for state, name in CASE_STATE_NAMES.items()
}
ACTIVE = ("open", "acknowledged", "reopened")


def escape_mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str, limit: int | None = None) -> str:
    """Masked, escaped, shortened scraped text for Slack."""
    text = mask_pii(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape_mrkdwn(text)


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
        buttons.append(_button("确认 Ack", "koubei_ack", value, "primary"))
    buttons += [
        _button("我来负责 Assign me", "koubei_assign", value, None),
        _button("解决 Resolve", "koubei_resolve", value, None),
        _button("误报 False positive", "koubei_false_positive", value, "danger"),
        _button("立即升级 Escalate", "koubei_escalate", value, None),
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
    quoted = "\n".join(
        "> " + line for line in (f"*{title}*\n{body}" if title else body).split("\n")
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
    reasons = "\n".join(f"• {escape_mrkdwn(r)}" for r in verdict.reasons)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": quoted}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*判定依据*\n{reasons}"}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{status_line(case, tz)} · 发布 {_local(post.published_at, tz)} · "
                    f"<{escape_mrkdwn(post.url)}|查看原帖>",
                }
            ],
        },
    ]
    actions = case_actions(case)
    if actions:
        blocks.append(actions)
    fallback = f"[{grade.label}] 工单 #{case.id} {headline}: {safe(post.title or post.body, 80)}"
    return coloured(
        fallback, grade.colour, blocks, message_metadata(alert_id, case.id, case.severity)
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


def _button(text: str, action_id: str, value: str, style: str | None) -> dict[str, Any]:
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
    fallback: str, colour: str, blocks: list[dict[str, Any]], metadata: dict[str, Any]
) -> dict[str, Any]:
    """chat.postMessage arguments: Block Kit inside an attachment, for the grade's colour bar."""
    return {
        "text": fallback,
        "attachments": [{"color": colour, "fallback": fallback, "blocks": blocks[:50]}],
        "metadata": metadata,
    }


def message_metadata(alert_id: int, case_id: int | None, severity: str) -> dict[str, Any]:
    # The alert id travels with the message so a retry can find what was sent.
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {"alert_id": alert_id, "case_id": case_id or 0, "severity": severity},
    }


def digest_message(
    *,
    alert_id: int,
    items: list[tuple[PostRow, VerdictRow]],
    grade: GradePolicy,
    period: str,
    tz: ZoneInfo,
) -> dict[str, Any]:
    lines = []
    for post, verdict in items[:40]:
        cats = "、".join(CATEGORY_LABELS.get(c, c) for c in verdict.categories)
        lines.append(
            f"• {stars(post.rating)} {safe(post.title or post.body, 60)} "
            f"({escape_mrkdwn(post.source)} · {cats} · <{escape_mrkdwn(post.url)}|原帖>)"
        )
    more = len(items) - 40
    if more > 0:
        lines.append(f"…另有 {more} 条")
    header = f"*{escape_mrkdwn(grade.label)}* · 每日摘要 {period} · {len(items)} 条轻度不满"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
    ]
    fallback = f"[{grade.label}] 每日摘要 {period}: {len(items)} 条"
    return coloured(fallback, grade.colour, blocks, message_metadata(alert_id, None, "P4"))
