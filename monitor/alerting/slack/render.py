"""Notices as Slack messages: Block Kit inside a coloured attachment, at delivery time.

Notice text is data: it is escaped for mrkdwn here (&, <, >) so a review containing
`<!channel>` or `<https://evil|bank>` shows literally, and only then cut, so what Slack
receives is within its limits. Mentions are resolved to Slack ids from policy.yaml and
also go into the top-level text: mentions inside attachments alone may not notify.
The alert id travels in the message's metadata, so a retry can find what was sent.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.alerting.limits import FIELD_TEXT, SECTION_TEXT
from monitor.alerting.mrkdwn import clip, link, link_url
from monitor.config import Policy
from monitor.domain import (
    AlertKind,
    InlineStyle,
    Mention,
    Notice,
    NoticeLink,
    Outgoing,
    Severity,
    render_inline,
    strip_format,
)

_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_DEFAULT_COLOUR = "#455A64"
BUTTONS = {
    "ack": ("确认 Ack", "koubei_ack", "primary"),
    "assign": ("我来负责 Assign me", "koubei_assign", None),
    "resolve": ("解决 Resolve", "koubei_resolve", None),
    "false_positive": ("误报 False positive", "koubei_false_positive", "danger"),
    "escalate": ("立即升级 Escalate", "koubei_escalate", None),
}
FIELD_LIMITS = {"作者": 40}  # escaped characters; an author's name is read at a glance
POST_LINK = "查看原帖"
BODY_LIMIT = 700  # escaped characters; Slack allows 3,000, an alert should be read at a glance
METADATA_EVENT = "koubei_alert"


def with_mentions(mentions: str, text: str) -> str:
    """Text that notifies: the alert first (what a notification preview shows), then whom."""
    return f"{text} {mentions}" if mentions else text


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


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str, limit: int | None = None) -> str:
    """Notice text for mrkdwn: format characters dropped, escaped, then cut to `limit`."""
    escaped = escape(strip_format(text))
    return escaped if limit is None else clip(escaped, limit)


class SlackRenderer:
    """Renders notices for one workspace; `policy` resolves roles and people to Slack ids."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy

    def mention(self, m: Mention) -> str:
        if m.everyone:
            return "<!here>"
        if m.person:
            found = self.policy.person(m.person) if self.policy else None
            if found is not None and found.slack:
                return f"<@{found.slack}>"
            if _SLACK_ID.match(m.person):
                return f"<@{m.person}>"
            return escape(found.name if found else m.person)
        role = m.role or ""
        found_role = self.policy.roles.get(role) if self.policy else None
        return found_role.slack if found_role else role  # an unknown role is Slack text as written

    def text(self, text: str, notice: Notice) -> str:
        style = InlineStyle(
            escape=escape,
            mention=self.mention,
            link=lambda x: link(x.url, x.label),
            bold=("*", "*"),
            code=("`", "`"),
        )
        return render_inline(text, notice, style)

    def mentions(self, notice: Notice) -> str:
        return " ".join(m for m in (self.mention(x) for x in notice.mentions) if m)

    # --- messages -------------------------------------------------------------------

    def render(self, out: Outgoing) -> dict[str, Any]:
        """chat.postMessage arguments (less the channel) for one delivery."""
        notice = out.notice
        if out.raw is not None:
            return dict(out.raw)
        if out.group or notice.kind is AlertKind.GROUP:
            return self.group(out.alert_id, notice, out.group)
        if out.method == "file":
            return {"text": self.text(notice.headline, notice), "file": notice.file or ""}
        if notice.kind in (AlertKind.NEW_CASE, AlertKind.REGRADED, AlertKind.UPDATE):
            return self.case(out.alert_id, notice)
        if notice.kind is AlertKind.DIGEST and notice.items and notice.grade is Severity.P4:
            return self.digest(out.alert_id, notice)
        if notice.case_id is not None:
            return self.thread_reply(out.alert_id, notice, adapted=out.adapted_from is not None)
        text = self.text(notice.headline, notice)
        colour = str(notice.extra.get("colour") or _DEFAULT_COLOUR)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        # A list (the week's good stories): each item linked, its facts on lines below it.
        lines = [
            "\n".join(
                [f"• {link(item.url or '', clip(strip_format(item.text), 60))}"]
                + [f"    {safe(m, 200)}" for m in item.meta if m]
            )
            for item in notice.items
        ]
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in line_sections(lines)
        ]
        return coloured(text, colour, blocks, self.metadata(out.alert_id, notice))

    def metadata(self, alert_id: int, notice: Notice) -> dict[str, Any]:
        grade = notice.grade.value if notice.grade else str(notice.extra.get("severity") or "P2")
        return message_metadata(alert_id, notice.case_id, grade)

    def status_line(self, notice: Notice) -> str:
        parts = [escape(p) for p in notice.extra.get("status_parts") or [notice.status]]
        owner = notice.extra.get("owner")
        parts.insert(1, f"负责人 <@{owner}>" if owner else "负责人 —")
        return " · ".join(parts)

    def actions(self, notice: Notice) -> dict[str, Any] | None:
        if not notice.actions or notice.case_id is None:
            return None
        value = str(notice.case_id)
        elements = [
            button(BUTTONS[a][0], BUTTONS[a][1], value, BUTTONS[a][2])
            for a in notice.actions
            if a in BUTTONS
        ]
        return {"type": "actions", "block_id": f"case:{notice.case_id}", "elements": elements}

    def case(self, alert_id: int, notice: Notice) -> dict[str, Any]:
        label = str(notice.extra.get("label") or (notice.grade.value if notice.grade else ""))
        colour = str(notice.extra.get("colour") or _DEFAULT_COLOUR)
        title = safe(str(notice.extra.get("title") or ""), 120)
        body = safe(notice.quote, BODY_LIMIT)
        quoted = clip(
            "\n".join(
                "> " + line for line in (f"*{title}*\n{body}" if title else body).split("\n")
            ),
            SECTION_TEXT,
        )
        mentions = self.mentions(notice)
        headline = self.text(notice.headline, notice)
        header = f"{mentions} *{escape(label)}* · {headline} · 工单 #{notice.case_id}".strip()
        fields = []
        for key, value in notice.fields:
            limit = FIELD_LIMITS.get(key)
            shown = safe(value, limit) if limit else safe(value)
            fields.append(f"*{key}* {shown or '—'}")
        reasons = clip("\n".join(f"• {safe(r)}" for r in notice.reasons), SECTION_TEXT - 10)
        post = next((x for x in notice.links if x.label == POST_LINK), NoticeLink(POST_LINK, ""))
        context = (
            f"{self.status_line(notice)} · 发布 {notice.extra.get('published', '')} · "
            f"{link(post.url, POST_LINK)}"
        )
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": header}},
            {"type": "section", "text": {"type": "mrkdwn", "text": quoted}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": clip(f, FIELD_TEXT)} for f in fields],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*判定依据*\n{reasons}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ]
        actions = self.actions(notice)
        if actions:
            blocks.append(actions)
        summary = safe(str(notice.extra.get("title") or "") or notice.quote, 80)
        fallback = f"[{label}] 工单 #{notice.case_id} {headline}: {summary}"
        return coloured(
            with_mentions(mentions, fallback),
            colour,
            blocks,
            self.metadata(alert_id, notice),
            fallback=fallback,
        )

    def thread_reply(self, alert_id: int, notice: Notice, *, adapted: bool) -> dict[str, Any]:
        """A line in the case's thread (events, reminders, escalations)."""
        text = self.text(notice.headline, notice)
        if adapted:  # no thread to put it in: say which case it is about
            text = f"工单 #{notice.case_id} · {text}"
        message: dict[str, Any] = {"text": text, "metadata": self.metadata(alert_id, notice)}
        if notice.extra.get("broadcast"):
            message["reply_broadcast"] = True
        return message

    def group(self, alert_id: int, notice: Notice, members: tuple[Notice, ...]) -> dict[str, Any]:
        """The group message from its cases' latest notices (also used to edit it)."""
        group = notice if notice.kind is AlertKind.GROUP else None
        head = group or (members[0] if members else notice)
        label = str(head.extra.get("label") or "P3 黄色预警 · 服务受阻")
        colour = str(head.extra.get("colour") or "#FBC02D")
        mentions = self.mentions(group) if group else ""
        header = f"{mentions} *{escape(label)}* · {len(members)} 个投诉集中出现，合并为一条消息"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": header.strip()}}
        ]
        for member in members:
            rating = member.extra.get("rating")
            stars = "★" * int(rating or 0)
            text = safe(str(member.extra.get("title") or "") or member.quote, 90)
            source = escape(dict(member.fields).get("来源", ""))
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*工单 #{member.case_id}* {stars} {text}\n"
                        f"_{source}_ · {self.status_line(member)}",
                    },
                }
            )
            actions = self.actions(member)
            if actions:
                blocks.append(actions)
        fallback = f"[{label}] {len(members)} 个投诉"
        return coloured(
            with_mentions(mentions, fallback),
            colour,
            blocks,
            message_metadata(alert_id, None, "P3"),
            fallback=fallback,
        )

    def digest(self, alert_id: int, notice: Notice) -> dict[str, Any]:
        """One message of the day's digest (part of parts); every line of it shown in full."""
        extra = notice.extra
        label = str(extra.get("label") or "P4")
        period, total = extra.get("period", ""), int(extra.get("total") or len(notice.items))
        part, parts = int(extra.get("part") or 1), int(extra.get("parts") or 1)
        lines = []
        for item in notice.items:
            rating = item.rating
            stars = "—" if rating is None else "★" * rating + "☆" * (5 - rating)
            source, cats = [*item.meta, "", ""][:2]
            lines.append(
                f"• {stars} {safe(item.text, 60)} "
                f"({escape(source)} · {escape(cats)} · {link(item.url or '', '原帖')})"
            )
        of = f" · 第 {part}/{parts} 条" if parts > 1 else ""
        header = f"*{escape(label)}* · 每日摘要 {period} · {total} 条轻度不满{of}"
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in line_sections(lines)
        ]
        fallback = f"[{label}] 每日摘要 {period}: {total} 条" + (
            f"（{part}/{parts}）" if parts > 1 else ""
        )
        colour = str(extra.get("colour") or "#1976D2")
        return coloured(fallback, colour, blocks, message_metadata(alert_id, None, "P4"))


__all__ = ["SlackRenderer", "escape", "link_url", "safe"]
