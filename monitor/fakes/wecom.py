"""A fake 企业微信 group robot: POST /cgi-bin/webhook/send?key=KEY.

As WeCom documents it (群机器人配置说明): a wrong key is errcode 93000; a markdown
content over 4,096 bytes of UTF-8 is 40058; an empty content 44004; an unknown
msgtype 40008; past 20 messages a minute per robot, 45009. Accepted messages
answer `{"errcode": 0, "errmsg": "ok"}`. `mentions(i)` lists the `<@userid>` tags
of a received message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

from monitor.fakes.robot import FakeRobot, Window
from monitor.fakes.server import Request, Response

CONTENT_LIMIT = 4096
_MENTION = re.compile(r"<@([^>\s]+)>")


class FakeWeCom(FakeRobot):
    RATE_LIMIT: ClassVar[int] = 45009
    ERRORS: ClassVar[dict[int, str]] = {
        45009: "api freq out of limit",
        93000: "invalid webhook url",
        40058: "markdown.content exceed max length 4096. invalid Request Parameter",
        44004: "empty content",
        40008: "invalid message type",
        -1: "system busy",
    }

    def __init__(self, key: str = "fake-wecom-key", clock: Callable[[], float] = time.time) -> None:
        super().__init__(Window(per_minute=20), clock)
        self.key = key

    @property
    def webhook(self) -> str:
        return f"{self.url}/cgi-bin/webhook/send?key={self.key}"

    def answer(self, code: int, message: str) -> Response:
        return Response(200, {"errcode": code, "errmsg": message})

    def ok(self) -> Response:
        return Response(200, {"errcode": 0, "errmsg": "ok"})

    def check(self, request: Request, body: dict[str, Any]) -> int | None:
        if request.path != "/cgi-bin/webhook/send" or request.query.get("key") != self.key:
            return 93000
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            return 40008
        part = body.get(msgtype)
        content = part.get("content") if isinstance(part, dict) else None
        if not isinstance(content, str) or not content.strip():
            return 44004
        limit = CONTENT_LIMIT if msgtype == "markdown" else 2048
        if len(content.encode("utf-8")) > limit:
            return 40058
        return None

    def contents(self) -> list[str]:
        return [str(r.body["markdown"]["content"]) for r in self.received]

    def mentions(self, index: int = -1) -> list[str]:
        return _MENTION.findall(self.contents()[index])
