"""A Notice as the markdown of the group robots (WeCom, DingTalk, Feishu's lark_md).

The three robots read small, different subsets of markdown, and not all of them
honour backslash escapes. Text that came from a post (headline, quote, fields,
items) is therefore neutralised by character substitution rather than escaping:
invisible format characters (Unicode category Cf: zero-width and bidi controls)
are dropped, and every character that starts markup in any of the three
dialects is replaced by its full-width form, which reads the same to a person
and means nothing to the parser. `[x](http://evil)` cannot become a link, `<@u1>`
or `<at id=all></at>` cannot become a mention, `<font>` cannot colour, and
`@所有人` shows as `＠所有人`, so a post cannot pass for one of our mentions.
Only the renderer's own links (from `notice.links` and item URLs, http(s) only)
and mentions (from `notice.mentions`, resolved to platform ids) are markup.

Robots have no threads, edits, buttons or file uploads: a thread event or state
change is a new message naming 工单 #id, the actions point to the case page, and
a report names its file and links to where it can be read. A message over the
robot's size limit is cut at a UTF-8 boundary with `TRUNCATED` at the end of the
body; the headline, mentions and links are kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from urllib.parse import quote

from monitor.domain import (
    AlertKind,
    InlineStyle,
    Mention,
    Notice,
    NoticeLink,
    Outgoing,
    Severity,
    render_inline,
)

TRUNCATED = "…（已截断，详见工单页）"
# A headline is one line; a post title longer than this is cut so the links stay in view.
HEADLINE_CHARS = 200
# Longer links are shown as their label: no robot renders a 2 KB URL usefully.
URL_LIMIT = 1500

# Each character that opens markup in WeCom, DingTalk or lark_md -> its full-width twin.
_NEUTRAL = str.maketrans(
    {
        "<": "＜",
        ">": "＞",
        "[": "［",
        "]": "］",
        "(": "（",
        ")": "）",
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "~": "～",
        "#": "＃",
        "|": "｜",
        "\\": "＼",
        "@": "＠",
        "&": "＆",
        "!": "！",
        "$": "＄",
    }
)
_SPACES = re.compile(r"[ \t\r\f\v]+")

ACTION_NAMES = {
    "ack": "确认",
    "assign": "指派",
    "first_response": "首次回应",
    "resolve": "解决",
    "reopen": "重开",
    "false_positive": "标记误报",
    "escalate": "升级",
}
KIND_NAMES = {
    AlertKind.NEW_CASE: "新工单",
    AlertKind.REGRADED: "等级调整",
    AlertKind.DIGEST: "摘要",
    AlertKind.GROUP: "汇总",
    AlertKind.UPDATE: "状态更新",
    AlertKind.EVENT: "进展",
    AlertKind.REMINDER: "提醒",
    AlertKind.ESCALATION: "升级",
    AlertKind.BREACH: "超时",
    AlertKind.SURGE: "激增",
    AlertKind.DEADMAN: "心跳中断",
    AlertKind.SOURCE_HEALTH: "数据源状态",
    AlertKind.DELIVERY_FAILED: "投递失败",
    AlertKind.REVIEW_REPLY: "评论回复",
}
# Which link is "the case page": the label the work floor gives it, else the first link.
CASE_LINK_LABELS = ("工单", "工单页", "工单页面", "case", "打开工单", "查看工单")

Ids = Callable[[Mention], str | None] | Mapping[str, str] | None


def neutral(text: str) -> str:
    """Scraped text as inert characters: no format characters, no markup, one line."""
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = text.translate(_NEUTRAL)
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


def _inert(text: str) -> str:
    """Like `neutral` for a piece of a marked text: its outer spaces are kept."""
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return _SPACES.sub(" ", text.translate(_NEUTRAL).replace("\n", " "))


def inline(text: str, notice: Notice, names: Ids = None) -> str:
    """A notice's text with its marks (monitor.domain.mention_mark and friends) in robot
    markdown: mentions as names (the robot's own @ list notifies), links as links, bold."""
    style = InlineStyle(
        escape=_inert,
        mention=lambda m: "＠" + mention_name(m, names),
        link=lambda x: md_link(x.label, x.url),
        bold=("**", "**"),
    )
    return _SPACES.sub(" ", render_inline(text, notice, style)).strip()


def plain(text: str, notice: Notice, names: Ids = None) -> str:
    """A notice's marked text as words, for a title or a list line (neutralised later)."""
    style = InlineStyle(
        escape=lambda t: t, mention=lambda m: "@" + mention_name(m, names), link=lambda x: x.label
    )
    return render_inline(text, notice, style)


def neutral_lines(text: str) -> list[str]:
    """Like `neutral`, keeping line breaks (for a quote)."""
    out = []
    for line in text.splitlines():
        clean = neutral(line)
        if clean:
            out.append(clean)
    return out


def link_url(url: str) -> str | None:
    """A URL fit for `[label](url)`, or None when it should not be a link."""
    url = "".join(c for c in url if unicodedata.category(c) != "Cf").strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    # Keep what a URL may hold except what ends the link or starts markup: ( ) < > [ ] space.
    encoded = quote(url, safe="!#$%&'*+,-./:;=?@_~")
    return encoded if len(encoded) <= URL_LIMIT else None


def md_link(label: str, url: str | None) -> str:
    target = link_url(url) if url else None
    text = neutral(label) or "链接"
    return f"[{text}]({target})" if target else text


def resolve(ids: Ids, mention: Mention) -> str | None:
    """The platform id for a person or role, from a resolver or a plain mapping."""
    if ids is None:
        return None
    if callable(ids):
        return ids(mention)
    for key in (mention.person, mention.role):
        if key and key in ids:
            return ids[key]
    return None


def mention_name(mention: Mention, names: Ids = None) -> str:
    """Who, in words, for a mention without a platform id: policy's name, else the key."""
    if mention.everyone:
        return "所有人"
    return neutral(resolve(names, mention) or mention.person or mention.role or "")


def clip_bytes(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """At most `limit` UTF-8 bytes of `text`, cut at a character (and if near, a line) boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = max(0, limit - len(marker.encode("utf-8")))
    cut = data[:room].decode("utf-8", errors="ignore")
    newline = cut.rfind("\n")
    if newline >= len(cut) // 2:
        cut = cut[:newline]
    return cut.rstrip() + marker


@dataclass(frozen=True)
class Parts:
    """A notice as markdown in three parts: `middle` is what gets cut when a message is too big."""

    title: str  # plain text, neutralised (a card header or a heading)
    head: list[str]  # markdown lines before the body (a state change's new state)
    middle: str  # quote, fields, reasons, items, group members, status
    tail: list[str]  # links, actions, file, footer


def case_link(notice: Notice) -> NoticeLink | None:
    for link in notice.links:
        if link.label.strip().lower() in CASE_LINK_LABELS:
            return link
    return notice.links[0] if notice.links else None


def _grade(grade: Severity | None) -> str:
    return f"【{grade.value}】" if grade and grade is not Severity.NONE else ""


def title_of(out: Outgoing, names: Ids = None) -> str:
    notice = out.notice
    # A headline of several lines (a report's summary): its first line is the title.
    first = notice.headline.strip().split("\n", 1)[0]
    headline = neutral(plain(first, notice, names))[:HEADLINE_CHARS]
    headline = headline or KIND_NAMES.get(notice.kind, "通知")
    grade = _grade(notice.grade)
    if notice.case_id is not None and (
        out.method in ("reply", "update") or notice.kind in (AlertKind.EVENT, AlertKind.UPDATE)
    ):
        # No threads and no edits: the message itself says which case it is about.
        return f"{grade}工单 #{notice.case_id} {KIND_NAMES.get(notice.kind, '通知')}：{headline}"
    if notice.case_id is not None:
        return f"{grade}{headline}（工单 #{notice.case_id}）"
    return f"{grade}{headline}"


def parts(out: Outgoing, names: Ids, footer: str) -> Parts:
    notice = out.notice
    head: list[str] = []
    if notice.kind is AlertKind.UPDATE and notice.status:
        head.append(f"状态：{inline(notice.status, notice, names)}")
    body: list[str] = []
    for line in notice.headline.strip().split("\n")[1:]:  # the rest of a long headline
        if line.strip():
            body.append(inline(line, notice, names))
    quote_lines = neutral_lines(notice.quote)
    if quote_lines:
        body.extend(f"> {line}" for line in quote_lines)
        body.append("")
    for key, value in notice.fields:
        body.append(f"**{neutral(key)}**：{inline(value, notice, names)}")
    if notice.reasons:
        body.append("**原因**：" + "；".join(inline(r, notice, names) for r in notice.reasons))
    for item in notice.items:
        line = _item_line(plain(item.text, notice, names), item.url, item.grade, item.case_id)
        facts = "；".join(neutral(m) for m in item.meta if m)
        body.append(f"{line}（{facts}）" if facts else line)
    for member in out.group:
        link = case_link(member)
        headline = plain(member.headline, member, names)
        body.append(_item_line(headline, link.url if link else None, member.grade, member.case_id))
    if notice.status and notice.kind is not AlertKind.UPDATE:
        body.append(f"状态：{inline(notice.status, notice, names)}")
    tail: list[str] = []
    if notice.links:
        tail.append(" · ".join(md_link(x.label, x.url) for x in notice.links))
    if notice.actions:
        allowed = "、".join(ACTION_NAMES.get(a, neutral(a)) for a in notice.actions)
        link = case_link(notice)
        where = md_link("在工单页操作", link.url) if link else "在工单页操作"
        tail.append(f"可执行：{allowed}（{where}）")
    if notice.file:
        # No file uploads: name the report (never the server's path); the links lead to it.
        tail.append(f"报告文件：{neutral(PurePath(notice.file).name)}")
    tail.append(footer)
    return Parts(title_of(out, names), head, "\n".join(body).strip("\n"), tail)


def _item_line(text: str, url: str | None, grade: Severity | None, case_id: int | None) -> str:
    label = _grade(grade)
    case = f"工单 #{case_id} " if case_id is not None else ""
    line = f"- {label}{case}{neutral(text)[:HEADLINE_CHARS]}"
    target = link_url(url) if url else None
    return f"{line} [查看]({target})" if target else line


def fit(make: Callable[[int], bytes], limit: int) -> bytes:
    """The largest rendering within `limit` bytes: `make(budget)` cuts the body to `budget`."""
    budget = limit
    for _ in range(8):
        data = make(budget)
        if len(data) <= limit:
            return data
        budget = max(0, budget - (len(data) - limit) - 16)
    return make(0)
