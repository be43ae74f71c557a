"""What the three group-robot fakes share: the received log, the rate window, the faults.

A robot answers HTTP 200 with its own error code for everything it refuses; the
fakes do the same. Failure switches (each for the next N calls): answer a given
documented error code, answer the rate limit, answer HTTP 502 from the gateway
without the robot's JSON, or take the message and close the socket unanswered
(the sender cannot know it arrived), or take it and answer only after a delay (past
the sender's timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from monitor.fakes.server import DropConnection, FakeServer, Request, Response


@dataclass
class Received:
    body: dict[str, Any]
    query: dict[str, str]
    path: str
    at: float  # the fake's clock


@dataclass
class RobotFaults:
    refuse: deque[int] = field(default_factory=deque)  # codes to answer, one per call
    rate_limited: int = 0
    server_error: int = 0
    drop_after_receive: int = 0
    slow_answer_s: float = 0.0  # take the next message, then wait this long before answering


class Window:
    """Accepted messages in the last minute (and second); optionally a penalty once exceeded."""

    def __init__(self, per_minute: int, per_second: int | None = None, penalty_s: float = 0):
        self.per_minute = per_minute
        self.per_second = per_second
        self.penalty_s = penalty_s
        self.times: deque[float] = deque()
        self.blocked_until = 0.0

    def allow(self, now: float) -> bool:
        if now < self.blocked_until:
            return False
        while self.times and self.times[0] <= now - 60:
            self.times.popleft()
        last_second = sum(1 for t in self.times if t > now - 1)
        if len(self.times) >= self.per_minute or (
            self.per_second is not None and last_second >= self.per_second
        ):
            if self.penalty_s:
                self.blocked_until = now + self.penalty_s
            return False
        self.times.append(now)
        return True


class FakeRobot(FakeServer):
    """Subclasses say how they answer (`answer`) and what they refuse (`check`)."""

    RATE_LIMIT: ClassVar[int]
    ERRORS: ClassVar[dict[int, str]]

    def __init__(self, window: Window, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.faults = RobotFaults()
        self.received: list[Received] = []
        self.refused: list[tuple[int, dict[str, Any]]] = []  # (code, body) of refused calls
        self.calls = 0
        self._lock = threading.Lock()

    def answer(self, code: int, message: str) -> Response:
        raise NotImplementedError

    def ok(self) -> Response:
        raise NotImplementedError

    def check(self, request: Request, body: dict[str, Any]) -> int | None:
        """The error code the real robot answers for this request, or None to take it."""
        raise NotImplementedError

    def refuse(self, code: int, times: int = 1) -> None:
        with self._lock:
            self.faults.refuse.extend([code] * times)

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.calls += 1
            if self.faults.server_error > 0:
                self.faults.server_error -= 1
                return Response(502, "<html>502 Bad Gateway</html>", {"Content-Type": "text/html"})
            try:
                body = json.loads(request.body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                body = {}
            if self.faults.refuse:
                return self._refused(self.faults.refuse.popleft(), body)
            if self.faults.rate_limited > 0:
                self.faults.rate_limited -= 1
                return self._refused(self.RATE_LIMIT, body)
            code = self.check(request, body)
            if code is not None:
                return self._refused(code, body)
            now = self.clock()
            if not self.window.allow(now):
                return self._refused(self.RATE_LIMIT, body)
            self.received.append(Received(body, request.query, request.path, now))
            drop = self.faults.drop_after_receive > 0
            if drop:
                self.faults.drop_after_receive -= 1
            slow, self.faults.slow_answer_s = self.faults.slow_answer_s, 0.0
        if drop:
            raise DropConnection
        if slow:
            time.sleep(slow)
        return self.ok()

    def _refused(self, code: int, body: dict[str, Any]) -> Response:
        self.refused.append((code, body))
        return self.answer(code, self.ERRORS.get(code, "error"))


def strings(value: Any) -> list[str]:
    """Every string inside a JSON value (where a robot looks for its keyword)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []
