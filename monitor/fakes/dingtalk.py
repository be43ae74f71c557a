"""A fake 钉钉 custom group robot: POST /robot/send?access_token=T[&timestamp=&sign=].

As DingTalk documents it (自定义机器人接入, 安全设置): with a secret (加签), the
`timestamp` (ms) must be within an hour of the fake's clock and `sign` must be
base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}")), else errcode 310000; with
keywords, a message must contain one of them, else 310000; a wrong token is
300001; a markdown without title or text 40035; more than 20 messages a minute
throttles the robot for 10 minutes (130101). The text limit: 20,000 bytes
(460101 past it). Accepted messages answer `{"errcode": 0, "errmsg": "ok"}`.
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

TEXT_LIMIT = 20000
HOUR_MS = 3600 * 1000


class FakeDingTalk(FakeRobot):
    RATE_LIMIT: ClassVar[int] = 130101
    ERRORS: ClassVar[dict[int, str]] = {
        130101: "send too fast, exceed 20 times per minute",
        310000: "sign not match",
        300001: "token is not exist",
        40035: "缺少参数 json",
        460101: "message too long, exceed 20000 bytes",
        430101: "含有不安全的外链",
        -1: "系统繁忙",
    }

    def __init__(
        self,
        token: str = "fake-dingtalk-token",
        secret: str | None = "SECfake-dingtalk-secret",
        keywords: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        penalty_s: float = 600,
    ) -> None:
        super().__init__(Window(per_minute=20, penalty_s=penalty_s), clock)
        self.token = token
        self.secret = secret
        self.keywords = keywords
        self.reasons: list[str] = []  # why 310000 was answered: sign, timestamp, keyword

    @property
    def webhook(self) -> str:
        return f"{self.url}/robot/send?access_token={self.token}"

    def answer(self, code: int, message: str) -> Response:
        if code == 310000 and self.reasons:
            message = {
                "sign": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                "timestamp": "invalid timestamp",
                "keyword": "keywords not in content",
            }[self.reasons[-1]]
        return Response(200, {"errcode": code, "errmsg": message})

    def ok(self) -> Response:
        return Response(200, {"errcode": 0, "errmsg": "ok"})

    def check(self, request: Request, body: dict[str, Any]) -> int | None:
        if request.path != "/robot/send" or request.query.get("access_token") != self.token:
            return 300001
        if self.secret is not None:
            ts = request.query.get("timestamp", "")
            if not ts.isdigit() or abs(int(ts) - self.clock() * 1000) > HOUR_MS:
                self.reasons.append("timestamp")
                return 310000
            digest = hmac.new(
                self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(
                base64.b64encode(digest).decode(), request.query.get("sign", "")
            ):
                self.reasons.append("sign")
                return 310000
        if body.get("msgtype") != "markdown":
            return 40035
        md = body.get("markdown")
        if not isinstance(md, dict) or not all(
            isinstance(md.get(k), str) and md[k] for k in ("title", "text")
        ):
            return 40035
        if len(str(md["text"]).encode("utf-8")) > TEXT_LIMIT:
            return 460101
        if self.keywords and not any(k in s for s in strings(md) for k in self.keywords):
            self.reasons.append("keyword")
            return 310000
        return None

    def texts(self) -> list[str]:
        return [str(r.body["markdown"]["text"]) for r in self.received]

    def ats(self, index: int = -1) -> dict[str, Any]:
        at = self.received[index].body.get("at")
        return at if isinstance(at, dict) else {}
