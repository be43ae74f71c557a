"""企业微信 (WeCom) group robot: a `markdown` message to the robot's webhook.

Wire format (WeCom, 群机器人配置说明, developer.work.weixin.qq.com/document/path/91770):
POST `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY` with
`{"msgtype": "markdown", "markdown": {"content": "..."}}`; the content is at most
4,096 bytes of UTF-8, a robot sends at most 20 messages a minute, and
`<@userid>` in the content mentions a group member (markdown has no @all and
no mobile-number mentions, which only the `text` type has). There is no
signature: the key in the URL is the credential. The answer is
`{"errcode": 0, "errmsg": "ok"}`; 45009 is the rate limit (waited out), 93000
an invalid webhook key, 40058/40008/44004 a message the robot will never take.
How a robot's attempt is classified: `robot_http`; the rendering: `robot_markdown`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from monitor.alerting import robot_http
from monitor.alerting.robot_config import robot_args
from monitor.alerting.robot_markdown import Ids, clip_bytes, fit, mention_name, parts, resolve
from monitor.config import Settings, SinkConfig
from monitor.domain import Outgoing, Severity, SinkRef
from monitor.errors import ConfigError

# An id that is safe inside <@...>: WeCom user ids are letters, digits and a few marks.
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_COLOURS = {Severity.P1: "warning", Severity.P2: "warning", Severity.P3: "comment"}
RATE_LIMITED = 45009
# The key is wrong or the robot was removed; the message is malformed, empty or too long.
PERMANENT = {
    93000: "the webhook key is invalid or the robot was removed; check the sink's url_env",
    40058: "the robot refused a parameter (a message over 4,096 bytes is one)",
    40008: "the robot does not take this message type",
    44004: "the message was empty",
}
FOOTER = "来自 Koubei 口碑监控"


class WeComSink(robot_http.RobotSink):
    kind: ClassVar[str] = "wecom"
    max_bytes: ClassVar[int] = 4096
    rate_per_minute: ClassVar[int] = 20
    rate_source: ClassVar[str] = "https://developer.work.weixin.qq.com/document/path/91770"
    rate_limit_wait_s: ClassVar[float] = 60.0  # the published window: one minute

    @classmethod
    def from_config(cls, cfg: SinkConfig, settings: Settings, env: Mapping[str, str]) -> WeComSink:
        """The sink `cfg` of koubei.yaml `sinks:`, its URL and secret from the environment."""
        a = robot_args(cfg, settings, env, "wecom")
        return cls.connect(cfg.name, a.url, a.secret, **a.options(keyword=False))

    @classmethod
    def connect(
        cls,
        name: str,
        url: str,
        secret: str | None = None,
        *,
        ids: Ids = None,
        names: Ids = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> WeComSink:
        problems = []
        parts_ = urlsplit(url)
        if parts_.scheme not in ("http", "https") or not parts_.netloc:
            problems.append(f"sink {name!r}: the WeCom webhook URL must start with https://")
        elif not parse_qs(parts_.query).get("key"):
            problems.append(
                f"sink {name!r}: the WeCom webhook URL has no key= (copy it from the robot's "
                "details page: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)"
            )
        if secret:
            problems.append(
                f"sink {name!r}: WeCom robots are not signed (the key in the URL is the "
                "credential); remove secret_env"
            )
        if problems:
            raise ConfigError("koubei.yaml sinks", problems)
        client = httpx.Client(timeout=timeout, transport=transport)
        return cls(name, url, client, ids=ids, names=names)

    def render(self, out: Outgoing) -> dict[str, object]:
        p = parts(out, self.names, FOOTER)
        colour = _COLOURS.get(out.notice.grade) if out.notice.grade else None
        title = f'<font color="{colour}">{p.title}</font>' if colour else p.title
        tagged, plain = [], []
        for m in out.notice.mentions:
            uid = None if m.everyone else resolve(self.ids, m)
            if uid and _USER_ID.match(uid):
                tagged.append(f"<@{uid}>")
            else:
                # No id (or @all, which markdown cannot do): the name, so a reader sees who.
                plain.append(mention_name(m, self.names))
        head = [f"### {title}", *p.head]
        if tagged or plain:
            head.append("提醒：" + " ".join([*tagged, *plain]))
        top, bottom = "\n".join(head) + "\n", "\n" + "\n".join(p.tail)

        def content(budget: int) -> bytes:
            middle = clip_bytes(p.middle, budget)
            return (top + middle + bottom).encode("utf-8")

        text = fit(content, self.max_bytes).decode("utf-8")
        return {"msgtype": "markdown", "markdown": {"content": text}}

    def send(self, out: Outgoing) -> SinkRef:
        robot = f"WeCom robot {self.name!r}"
        body = robot_http.dumps(self.render(out))
        response = robot_http.post(self.client, self.url, body, robot)
        data = robot_http.answer(response, robot)
        code = robot_http.code_of(data, "errcode")
        if code == 0:
            return SinkRef(channel=self.name, ref=f"wecom-{out.alert_id}")
        msg = str(data.get("errmsg", ""))[:200]
        raise robot_http.refusal(
            robot,
            code,
            msg,
            word="errcode",
            rate_limited=code == RATE_LIMITED,
            rate_note="20 messages a minute",
            wait_s=robot_http.retry_after(response, self.rate_limit_wait_s),
            permanent=PERMANENT,
        )
