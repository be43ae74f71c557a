"""飞书 (Feishu/Lark) custom group robot: a signed `interactive` card.

Wire format (Feishu, 自定义机器人使用指南,
open.feishu.cn/document/client-docs/bot-v3/add-custom-bot): POST
`https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN` with `{"timestamp": "<s>",
"sign": "...", "msg_type": "interactive", "card": {...}}`, where `sign` =
base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")) and the timestamp is
in seconds, within an hour of Feishu's clock. The request body is at most 20 KB;
a robot sends at most 100 messages a minute and 5 a second. The card has a
plain-text header coloured by grade and one `lark_md` block; `<at id=ou_xxx></at>`
mentions a member by open id (`<at email=...></at>` by e-mail) and
`<at id=all></at>` everyone. The answer is `{"code": 0, ...}` (older robots
answer `{"StatusCode": 0}`); 11232 is the rate limit (waited out); 19021 a
refused signature or stale timestamp, 19022 a refused IP, 19024 a missing
keyword, 19001 a wrong token, 9499 a malformed or oversized body: all definite
and permanent. Classification of an attempt: `robot_http`; the rendering:
`robot_markdown`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from monitor.alerting import robot_http
from monitor.alerting.robot_config import robot_args
from monitor.alerting.robot_markdown import (
    Ids,
    clip_bytes,
    fit,
    mention_name,
    neutral,
    parts,
    resolve,
)
from monitor.clock import Clock
from monitor.config import Settings, SinkConfig
from monitor.domain import Outgoing, Severity, SinkRef
from monitor.errors import ConfigError

_OPEN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMAIL = re.compile(r"^[A-Za-z0-9_.+-]{1,64}@[A-Za-z0-9.-]{1,190}$")
_TEMPLATES = {Severity.P1: "red", Severity.P2: "orange", Severity.P3: "yellow", Severity.P4: "blue"}
RATE_LIMITED = {11232, 99991400}
PERMANENT = {
    19021: "the signature was refused or the timestamp is over an hour off: check the sink's "
    "secret_env and this machine's clock",
    19022: "the robot's IP allow-list refused this machine",
    19024: "the message lacks the robot's keyword: set the sink's keyword",
    19001: "the webhook token is invalid; check the sink's url_env",
    9499: "Feishu refused the body as malformed or over 20 KB",
}
FOOTER = "来自 Koubei 口碑监控"


def sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名: base64(HMAC-SHA256(key="{ts}\\n{secret}", msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuSink(robot_http.SignedRobotSink):
    kind: ClassVar[str] = "feishu"
    max_bytes: ClassVar[int] = 20 * 1024  # the whole request body
    rate_per_minute: ClassVar[int] = 100  # and 5 a second
    rate_per_second: ClassVar[int] = 5
    rate_source: ClassVar[str] = "https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot"
    rate_limit_wait_s: ClassVar[float] = 60.0  # the longer of the two windows

    @classmethod
    def from_config(cls, cfg: SinkConfig, settings: Settings, env: Mapping[str, str]) -> FeishuSink:
        """The sink `cfg` of koubei.yaml `sinks:`, its URL and secret from the environment."""
        a = robot_args(cfg, settings, env, "feishu")
        return cls.connect(cfg.name, a.url, a.secret, **a.options(keyword=True))

    @classmethod
    def connect(
        cls,
        name: str,
        url: str,
        secret: str | None = None,
        *,
        ids: Ids = None,
        names: Ids = None,
        keyword: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> FeishuSink:
        split = urlsplit(url)
        problems = []
        if split.scheme not in ("http", "https") or "/bot/v2/hook/" not in split.path:
            problems.append(
                f"sink {name!r}: the Feishu webhook URL must look like "
                "https://open.feishu.cn/open-apis/bot/v2/hook/... (copy it from the robot's "
                "settings)"
            )
        if keyword and neutral(keyword) != keyword:
            problems.append(f"sink {name!r}: the keyword must be plain text, without markup")
        if problems:
            raise ConfigError("koubei.yaml sinks", problems)
        client = httpx.Client(timeout=timeout, transport=transport)
        return cls(
            name, url, client, secret=secret, ids=ids, names=names, keyword=keyword, clock=clock
        )

    def _mentions(self, out: Outgoing) -> str:
        shown = []
        for m in out.notice.mentions:
            if m.everyone:
                shown.append("<at id=all></at>")
                continue
            pid = resolve(self.ids, m)
            if pid and _EMAIL.match(pid):
                shown.append(f"<at email={pid}></at>")
            elif pid and _OPEN_ID.match(pid):
                shown.append(f"<at id={pid}></at>")
            else:
                shown.append(mention_name(m, self.names))
        return "提醒：" + " ".join(shown) if shown else ""

    def render(self, out: Outgoing) -> dict[str, Any]:
        """The request body (signature aside): the card, cut so the body stays within 20 KB."""
        p = parts(out, self.names, f"{FOOTER} · {self.keyword}" if self.keyword else FOOTER)
        mentions = self._mentions(out)
        top = "\n".join([*p.head, mentions] if mentions else p.head)
        template = _TEMPLATES.get(out.notice.grade, "grey") if out.notice.grade else "blue"

        def card(budget: int) -> dict[str, Any]:
            text = "\n".join(x for x in (top, clip_bytes(p.middle, budget)) if x)
            elements: list[dict[str, Any]] = []
            if text:
                elements.append({"tag": "div", "text": {"tag": "lark_md", "content": text}})
            elements.append({"tag": "hr"})
            elements.append(
                {"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(p.tail)}}
            )
            return {
                "msg_type": "interactive",
                "card": {
                    "config": {"wide_screen_mode": True},
                    "header": {
                        "title": {"tag": "plain_text", "content": p.title},
                        "template": template,
                    },
                    "elements": elements,
                },
            }

        # Room for the signature fields, which are added after the fit.
        room = self.max_bytes - 120
        chosen: dict[str, Any] = {}

        def measured(budget: int) -> bytes:
            chosen.clear()
            chosen.update(card(budget))
            return robot_http.dumps(chosen)

        fit(measured, room)
        return chosen

    def body(self, out: Outgoing) -> bytes:
        payload = self.render(out)
        if self.secret:
            ts = int(self.clock.now().timestamp())
            payload = {"timestamp": str(ts), "sign": sign(self.secret, ts), **payload}
        return robot_http.dumps(payload)

    def send(self, out: Outgoing) -> SinkRef:
        robot = f"Feishu robot {self.name!r}"
        response = robot_http.post(self.client, self.url, self.body(out), robot)
        data = robot_http.answer(response, robot)
        code = robot_http.code_of(data, "code", "StatusCode")
        if code == 0:
            return SinkRef(channel=self.name, ref=f"feishu-{out.alert_id}")
        msg = str(data.get("msg", data.get("StatusMessage", "")))[:200]
        raise robot_http.refusal(
            robot,
            code,
            msg,
            word="code",
            rate_limited=code in RATE_LIMITED,
            rate_note="100 messages a minute, 5 a second",
            wait_s=robot_http.retry_after(response, self.rate_limit_wait_s),
            permanent=PERMANENT,
        )
