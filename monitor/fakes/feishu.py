"""A fake 飞书 custom group robot: POST /open-apis/bot/v2/hook/TOKEN.

As Feishu documents it (自定义机器人使用指南): a wrong token is code 19001; with a
secret (签名校验), `timestamp` (s) must be within an hour of the fake's clock and
`sign` must be base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg="")), else
19021; with keywords, the message must contain one, else 19024; a body over
20 KB, or a malformed one (unknown msg_type, a card without elements), 9499;
more than 100 messages a minute or 5 a second, 11232. Accepted messages answer
`{"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, ClassVar

from monitor.fakes.robot import FakeRobot, Window, strings
from monitor.fakes.server import Request, Response

BODY_LIMIT = 20 * 1024
HOUR_S = 3600
PREFIX = "/open-apis/bot/v2/hook/"


class FakeFeishu(FakeRobot):
    RATE_LIMIT: ClassVar[int] = 11232
    ERRORS: ClassVar[dict[int, str]] = {
        11232: "frequency limited psm[lark.oapi.app_platform_runtime]appID[-1]",
        19001: "param invalid: incoming webhook access token invalid",
        19021: "sign match fail or timestamp is not within one hour from current time",
        19022: "Ip Not Allowed",
        19024: "Key Words Not Found",
        9499: "Bad Request",
    }

    def __init__(
        self,
        token: str = "fake-feishu-token",
        secret: str | None = "fake-feishu-secret",
        keywords: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(Window(per_minute=100, per_second=5), clock)
        self.token = token
        self.secret = secret
        self.keywords = keywords

    @property
    def webhook(self) -> str:
        return f"{self.url}{PREFIX}{self.token}"

    def answer(self, code: int, message: str) -> Response:
        return Response(200, {"code": code, "data": {}, "msg": message})

    def ok(self) -> Response:
        return Response(
            200,
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"},
        )

    def check(self, request: Request, body: dict[str, Any]) -> int | None:
        if request.path != PREFIX + self.token:
            return 19001
        if len(request.body) > BODY_LIMIT or not body:
            return 9499
        if self.secret is not None:
            ts = str(body.get("timestamp", ""))
            if not ts.isdigit() or abs(int(ts) - self.clock()) > HOUR_S:
                return 19021
            key = f"{ts}\n{self.secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(expected, str(body.get("sign", ""))):
                return 19021
        msg_type = body.get("msg_type")
        if msg_type == "interactive":
            card = body.get("card")
            if not isinstance(card, dict) or not isinstance(card.get("elements"), list):
                return 9499
            content: Any = card
        elif msg_type == "text":
            content = body.get("content")
            if not isinstance(content, dict) or not isinstance(content.get("text"), str):
                return 9499
        else:
            return 9499
        if self.keywords and not any(k in s for s in strings(content) for k in self.keywords):
            return 19024
        return None

    def cards(self) -> list[dict[str, Any]]:
        return [r.body["card"] for r in self.received]

    def markdown(self, index: int = -1) -> str:
        """The lark_md text of a received card, its blocks joined."""
        card = self.cards()[index]
        return "\n".join(
            e["text"]["content"]
            for e in card["elements"]
            if e.get("tag") == "div" and e.get("text", {}).get("tag") == "lark_md"
        )
