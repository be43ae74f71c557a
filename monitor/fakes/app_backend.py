"""A stand-in for the company app's backend: signs feedback events and posts them to Koubei."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from monitor.web.ingest import SIGNATURE_HEADER, sign


class FakeAppBackend:
    def __init__(self, koubei_url: str, secret: str) -> None:
        self.url = koubei_url.rstrip("/") + "/ingest/feedback"
        self.secret = secret

    def signed(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        t = str(int(time.time()) if timestamp is None else timestamp)
        return {SIGNATURE_HEADER: sign(self.secret, t, body), "Content-Type": "application/json"}

    def send(
        self, events: dict[str, Any] | Sequence[dict[str, Any]], timestamp: int | None = None
    ) -> httpx.Response:
        body = json.dumps(events, ensure_ascii=False).encode()
        return self.post(body, self.signed(body, timestamp))

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, content=body, headers=headers, timeout=30)
