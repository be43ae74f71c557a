"""Slack interactions -> case actions: buttons, the resolve modal and `/koubei`.

Transport-free: the HTTP endpoint and Socket Mode both hand payloads here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor import case_actions
from monitor.alerting.mrkdwn import escape_mrkdwn
from monitor.alerting.routing import oncall_at
from monitor.case_actions import ACTIVE, ActionRefused, Actor
from monitor.clock import Clock
from monitor.config import Settings
from monitor.domain import case_state_name
from monitor.replies import record_reply
from monitor.store.tables import CaseRow
from monitor.web.payloads import BadPayload, case_id, items, mapping, text

log = logging.getLogger(__name__)
RESOLVE_CALLBACK = "koubei_resolve_modal"
STATUS_LIMIT = 20  # cases listed by `/koubei status`; Slack truncates long ephemeral text
Action = Callable[[Session, Settings, CaseRow, Actor, datetime], str]

BUTTONS: dict[str, Action] = {
    "koubei_ack": case_actions.acknowledge,
    "koubei_assign": case_actions.assign,
    "koubei_false_positive": case_actions.false_positive,
    "koubei_escalate": case_actions.escalate_now,
}


def slack_mention(user_id: str) -> str:
    """An owner as Slack shows them: a mention, or a board account's name."""
    if user_id.startswith("web:"):
        return escape_mrkdwn(user_id[4:])
    return "Koubei" if user_id == "koubei" else f"<@{user_id}>"


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


@dataclass
class Interactions:
    engine: Engine
    settings: Settings
    clock: Clock
    slack: WebClient | None = None  # for views.open; None without a bot token

    def handle_payload(self, payload: object) -> dict[str, Any]:
        """Answer a button click or a modal submission; BadPayload when it is malformed."""
        if not isinstance(payload, dict):
            raise BadPayload("payload: expected a JSON object")
        kind = payload.get("type")
        if kind == "block_actions":
            return self.block_actions(payload)
        if kind == "view_submission":
            return self.view_submission(payload)
        return {}

    # --- buttons --------------------------------------------------------------

    def block_actions(self, payload: dict[str, Any]) -> dict[str, Any]:
        user = mapping(payload.get("user"), "user")
        actor = Actor(
            text(user.get("id"), "user.id") or "unknown", text(user.get("name"), "user.name")
        )
        trigger_id = text(payload.get("trigger_id"), "trigger_id")
        results = []
        for i, raw in enumerate(items(payload.get("actions"), "actions")):
            action = mapping(raw, f"actions[{i}]", optional=False)
            action_id = text(action.get("action_id"), f"actions[{i}].action_id")
            if action_id != "koubei_resolve" and action_id not in BUTTONS:
                continue  # not one of ours (a link button, another app's element)
            target = case_id(action.get("value"), f"actions[{i}].value")
            if action_id == "koubei_resolve":
                results.append(self._open_resolve_modal(trigger_id, target))
            else:
                results.append(self.run(target, actor, BUTTONS[action_id]))
        return ephemeral("\n".join(results)) if results else {}

    def run(self, case_id: int, actor: Actor, action: Action) -> str:
        try:
            with Session(self.engine) as session, session.begin():
                case = session.get(CaseRow, case_id, with_for_update=True)
                if case is None:
                    return f"没有工单 #{case_id}"
                return action(session, self.settings, case, actor, self.clock.now())
        except ActionRefused as exc:
            return str(exc)

    def _open_resolve_modal(self, trigger_id: str, target: int) -> str:
        if self.slack is None or not trigger_id:
            return f"用 `/koubei resolve {target} 处理说明` 解决工单"
        try:
            self.slack.views_open(trigger_id=trigger_id, view=resolve_modal(target))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            return f"无法打开表单；用 `/koubei resolve {target} 处理说明` 解决工单"
        return ""

    # --- the resolve modal ----------------------------------------------------

    def view_submission(self, payload: dict[str, Any]) -> dict[str, Any]:
        view = mapping(payload.get("view"), "view")
        if view.get("callback_id") != RESOLVE_CALLBACK:
            return {}
        target = case_id(view.get("private_metadata"), "view.private_metadata")
        values = mapping(mapping(view.get("state"), "view.state").get("values"), "values")
        note = _input(values, "note")
        replied = _option(values, "replied") == "yes"
        url = _input(values, "reply_url") or None
        sat_text = _option(values, "satisfaction")
        if replied and not url:
            return {"response_action": "errors", "errors": {"reply_url": "请填写公开回复的链接"}}
        if sat_text and sat_text not in ("1", "2", "3", "4", "5"):
            raise BadPayload(f"satisfaction: {sat_text[:24]!r} is not one of the options 1-5")
        user = mapping(payload.get("user"), "user")
        actor = Actor(text(user.get("id"), "user.id") or "unknown")

        def act(
            session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime
        ) -> str:
            return case_actions.resolve(
                session,
                settings,
                case,
                who,
                now,
                note=note,
                public_reply_url=url if replied else None,
                satisfaction=int(sat_text) if sat_text else None,
            )

        message = self.run(target, actor, act)
        if not message.endswith("已解决"):
            return {"response_action": "errors", "errors": {"note": message}}
        return {"response_action": "clear"}

    # --- /koubei --------------------------------------------------------------

    def command(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer `/koubei ...`. Slack wants every answer, errors included, as HTTP 200
        with a message for the user, so a bad argument is an ephemeral reply."""
        words = form.get("text", "").split(maxsplit=2)
        actor = Actor(form.get("user_id", "unknown"), form.get("user_name", ""))
        sub = words[0].lower() if words else "help"
        if sub == "status":
            return ephemeral(self.status())
        if sub == "oncall":
            return ephemeral(self.oncall())
        if sub in ("ack", "resolve", "reply") and len(words) >= 2:
            try:
                target = case_id(words[1], "case")
            except BadPayload:
                shown = escape_mrkdwn(words[1] if len(words[1]) <= 24 else words[1][:24] + "…")
                return ephemeral(f"没有工单 {shown}：工单号是 `/koubei status` 列出的数字，如 12")
            if sub == "reply":
                return ephemeral(self.reply(target, actor, words[2:]))
            if sub == "ack":
                return ephemeral(self.run(target, actor, case_actions.acknowledge))
            note = words[2] if len(words) > 2 else ""

            def act(
                session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime
            ) -> str:
                return case_actions.resolve(session, settings, case, who, now, note=note)

            return ephemeral(self.run(target, actor, act))
        return ephemeral(
            "用法：`/koubei status` 未结工单 · `/koubei ack 12` 确认 · "
            "`/koubei reply 12 链接 回复内容` 记录首次回应 · "
            "`/koubei resolve 12 处理说明` 解决 · `/koubei oncall` 当前值班"
        )

    def reply(self, case_id: int, actor: Actor, rest: list[str]) -> str:
        """`/koubei reply 12 [https://...] 回复内容`: reply publicly (App Store reviews through
        Apple's API) or record the reply made on the platform, with its link."""
        first, _, rest_text = (rest[0] if rest else "").partition(" ")
        link = first.strip("<>").split("|")[0]  # Slack sends links it recognises as <url|text>
        if link.startswith(("http://", "https://")):
            url: str | None = link
            text = rest_text
        else:
            url, text = None, rest[0] if rest else ""

        def act(
            session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime
        ) -> str:
            return record_reply(session, settings, case, who, now, text=text, link=url)

        return self.run(case_id, actor, act)

    def status(self) -> str:
        with Session(self.engine) as session:
            cases = (
                session.execute(
                    select(CaseRow)
                    .where(col(CaseRow.state).in_(ACTIVE))
                    .order_by(col(CaseRow.severity), col(CaseRow.opened_at))
                )
                .scalars()
                .all()
            )
        if not cases:
            return "没有未结工单 🎉"
        tz = ZoneInfo(self.settings.app.timezone)
        shown = cases[:STATUS_LIMIT]
        head = f"未结工单 {len(cases)} 个"
        if len(cases) > len(shown):
            head += f"，显示前 {len(shown)} 个（按级别、开单时间排序）"
        lines = [head + "："]
        for case in shown:
            owner = slack_mention(case.owner) if case.owner else "无人负责"
            due = case.ack_due if case.state != "acknowledged" else case.resolve_due
            due_text = due.astimezone(tz).strftime("%m-%d %H:%M") if due else "—"
            state = case_state_name(case.state)
            lines.append(f"• #{case.id} {case.severity} {state} · {owner} · 时限 {due_text}")
        if len(cases) > len(shown):
            lines.append(f"… 另有 {len(cases) - len(shown)} 个未列出")
        return "\n".join(lines)

    def oncall(self) -> str:
        oncall = self.settings.policy.oncall
        if oncall is None:
            return "policy.yaml 没有配置值班 (oncall)"
        person = oncall_at(oncall, self.clock.now(), ZoneInfo(self.settings.app.timezone))
        return f"当前值班：{person.name} <@{person.slack}>"


def _element(values: dict[str, Any], block: str) -> dict[str, Any]:
    """The state of the modal's input `block` (its element has the same action id)."""
    return mapping(mapping(values.get(block), block).get(block), f"{block}.{block}")


def _input(values: dict[str, Any], block: str) -> str:
    return text(_element(values, block).get("value"), f"{block}.value").strip()


def _option(values: dict[str, Any], block: str) -> str:
    selected = mapping(_element(values, block).get("selected_option"), f"{block}.selected_option")
    return text(selected.get("value"), f"{block}.selected_option.value")


def resolve_modal(case_id: int) -> dict[str, Any]:
    def option(text: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text}, "value": value}

    return {
        "type": "modal",
        "callback_id": RESOLVE_CALLBACK,
        "private_metadata": str(case_id),
        "title": {"type": "plain_text", "text": f"解决工单 #{case_id}"},
        "submit": {"type": "plain_text", "text": "解决"},
        "close": {"type": "plain_text", "text": "取消"},
        "blocks": [
            {
                "type": "input",
                "block_id": "note",
                "label": {"type": "plain_text", "text": "处理说明"},
                "element": {"type": "plain_text_input", "action_id": "note", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "replied",
                "label": {"type": "plain_text", "text": "是否已公开回复"},
                "element": {
                    "type": "static_select",
                    "action_id": "replied",
                    "options": [option("是", "yes"), option("否", "no")],
                },
            },
            {
                "type": "input",
                "block_id": "reply_url",
                "optional": True,
                "label": {"type": "plain_text", "text": "公开回复链接"},
                "element": {"type": "url_text_input", "action_id": "reply_url"},
            },
            {
                "type": "input",
                "block_id": "satisfaction",
                "optional": True,
                "label": {"type": "plain_text", "text": "客户满意度（如已知）"},
                "element": {
                    "type": "static_select",
                    "action_id": "satisfaction",
                    "options": [option(f"{n} 星", str(n)) for n in range(5, 0, -1)],
                },
            },
        ],
    }
