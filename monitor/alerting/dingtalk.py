"""钉钉 (DingTalk) custom group robot: a signed `markdown` message with `at`.

Wire format (DingTalk, 自定义机器人接入 / 自定义机器人安全设置,
open.dingtalk.com/document/orgapp/custom-robot-access): POST
`https://oapi.dingtalk.com/robot/send?access_token=TOKEN` with
`{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles",
"atUserIds", "isAtAll"}}`. With 加签 (signing) the query also carries
`timestamp` (milliseconds, within an hour of DingTalk's clock) and
`sign` = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))).
A mention notifies only when the text also says `@mobile` or `@userId`, so the
text carries them too. A robot sends at most 20 messages a minute and is then
throttled for 10 minutes. The answer is `{"errcode": 0, "errmsg": "ok"}`;
130101/410100 are the rate limit (waited out); 310000 is a refused signature,
keyword or IP (definite, permanent), as are a missing token or robot.
Classification of an attempt: `robot_http`; the rendering: `robot_markdown`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import parse_qs, quote_plus, urlsplit

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
from monitor.domain import Outgoing, SinkRef
from monitor.errors import ConfigError

_MOBILE = re.compile(r"^\+?[0-9][0-9-]{5,19}$")
_USER_ID = re.compile(r"^[A-Za-z0-9_.$-]{1,64}$")
RATE_LIMITED = {130101, 410100}
PERMANENT = {
    310000: "the robot refused the signature, keyword or IP: check the sink's secret_env, "
    "the robot's keywords (set the sink's keyword) and its IP allow-list",
    300001: "the access token does not exist; check the sink's url_env",
    400101: "the access token does not exist; check the sink's url_env",
    400102: "the robot is disabled",
    400106: "the robot does not exist",
    400013: "the group was dissolved",
    400105: "the robot does not take this message type",
    430101: "DingTalk refused an unsafe link in the message",
    430102: "DingTalk refused the text",
    430104: "DingTalk refused the content",
    460101: "the message is too long",
    40035: "DingTalk refused a parameter",
}
FOOTER = "来自 Koubei 口碑监控"
TITLE_CHARS = 64  # the title is the notification's preview line


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签, before URL encoding: base64(HMAC-SHA256(secret, "{ts}\\n{secret}"))."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def paragraphs(markdown: str) -> str:
    """DingTalk joins single lines into one paragraph: a blank line between all but a quote's."""
    out: list[str] = []
    for line in markdown.split("\n"):
        if not line:
            continue
        if out and line.startswith("> ") and out[-1].startswith("> "):
            out[-1] += "\n" + line
        else:
            out.append(line)
    return "\n\n".join(out)


class DingTalkSink(robot_http.SignedRobotSink):
    kind: ClassVar[str] = "dingtalk"
    max_bytes: ClassVar[int] = 20000  # markdown text, UTF-8
    rate_per_minute: ClassVar[int] = 20
    rate_source: ClassVar[str] = "https://open.dingtalk.com/document/orgapp/custom-robot-access"
    rate_limit_wait_s: ClassVar[float] = 600.0  # past 20 a minute, throttled for 10 minutes

    @classmethod
    def from_config(
        cls, cfg: SinkConfig, settings: Settings, env: Mapping[str, str]
    ) -> DingTalkSink:
        """The sink `cfg` of koubei.yaml `sinks:`, its URL and secret from the environment."""
        a = robot_args(cfg, settings, env, "dingtalk")
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
    ) -> DingTalkSink:
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.netloc:
            problem = "the DingTalk webhook URL must start with https://"
        elif not parse_qs(split.query).get("access_token"):
            problem = (
                "the DingTalk webhook URL has no access_token= (copy it from the robot's "
                "settings: https://oapi.dingtalk.com/robot/send?access_token=...)"
            )
        elif keyword and neutral(keyword) != keyword:
            problem = "the keyword must be plain text, without markup"
        else:
            problem = ""
        if problem:
            raise ConfigError("koubei.yaml sinks", [f"sink {name!r}: {problem}"])
        client = httpx.Client(timeout=timeout, transport=transport)
        return cls(
            name, url, client, secret=secret, ids=ids, names=names, keyword=keyword, clock=clock
        )

    def render(self, out: Outgoing) -> dict[str, object]:
        p = parts(out, self.names, f"{FOOTER} · {self.keyword}" if self.keyword else FOOTER)
        mobiles: list[str] = []
        user_ids: list[str] = []
        everyone = False
        shown: list[str] = []
        for m in out.notice.mentions:
            if m.everyone:
                everyone = True
                shown.append("@所有人")
                continue
            pid = resolve(self.ids, m)
            if pid and _MOBILE.match(pid):
                mobiles.append(pid)
                shown.append(f"@{pid}")
            elif pid and _USER_ID.match(pid):
                user_ids.append(pid)
                shown.append(f"@{pid}")
            else:
                shown.append(mention_name(m, self.names))
        head = [f"### {p.title}", *p.head]
        if shown:
            head.append("提醒：" + " ".join(shown))
        top, bottom = "\n\n".join(head) + "\n\n", "\n\n" + "\n\n".join(p.tail)
        middle = paragraphs(p.middle)

        def text(budget: int) -> bytes:
            return (top + clip_bytes(middle, budget) + bottom).encode("utf-8")

        body = fit(text, self.max_bytes).decode("utf-8")
        return {
            "msgtype": "markdown",
            "markdown": {"title": p.title[:TITLE_CHARS], "text": body},
            "at": {"atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": everyone},
        }

    def signed_url(self) -> str:
        if not self.secret:
            return self.url
        ts = int(self.clock.now().timestamp() * 1000)
        return f"{self.url}&timestamp={ts}&sign={quote_plus(sign(self.secret, ts))}"

    def send(self, out: Outgoing) -> SinkRef:
        robot = f"DingTalk robot {self.name!r}"
        body = robot_http.dumps(self.render(out))
        response = robot_http.post(self.client, self.signed_url(), body, robot)
        data = robot_http.answer(response, robot)
        code = robot_http.code_of(data, "errcode")
        if code == 0:
            return SinkRef(channel=self.name, ref=f"dingtalk-{out.alert_id}")
        msg = str(data.get("errmsg", ""))[:200]
        raise robot_http.refusal(
            robot,
            code,
            msg,
            word="errcode",
            rate_limited=code in RATE_LIMITED,
            rate_note="20 messages a minute, then 10 minutes throttled",
            wait_s=robot_http.retry_after(response, self.rate_limit_wait_s),
            permanent=PERMANENT,
        )
