"""A fake Slack Web API: chat.postMessage/update, conversations.history/list, rate limits.

Mimics what matters to delivery (SOURCES.md): Bearer auth, HTTP 200 with
ok:false for API errors, about one message per second per channel with HTTP 429
and Retry-After past it, metadata only returned with include_all_metadata.
Failure switches: a full outage (HTTP 503), dropping the connection after
storing a post (ambiguous failure), or hanging after storing one (to be killed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.fakes.server import DropConnection, FakeServer, Request, Response


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    attachments: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    edits: int = 0
    broadcast: bool = False
    posted_at: float = 0.0  # the fake's clock when it was accepted

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": "U0KOUBEI",
            "ts": self.ts,
            "text": self.text,
            "bot_id": "B0KOUBEI",
        }
        if self.attachments:
            out["attachments"] = self.attachments
        if self.blocks:
            out["blocks"] = self.blocks
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class SlackFaults:
    outage: bool = False
    drop_after_post: int = 0  # the next N posts are stored, then the socket closes unanswered
    hang_after_post: bool = False  # store the next post, then never answer
    retry_after_s: int = 1


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FakeSlack(FakeServer):
    token: str = "xoxb-fake-token"
    channels: dict[str, str] = field(default_factory=dict)  # name -> id
    rate_per_s: float = 1.0
    burst: int = 3
    clock: Callable[[], float] = time.monotonic  # tests pass a fake clock's timestamp

    def __post_init__(self) -> None:
        super().__init__()
        self.messages: list[Message] = []
        self.faults = SlackFaults()
        self.calls: list[tuple[str, float]] = []  # (method, time) of every authorised call
        self.views: list[dict[str, Any]] = []  # modals opened
        self.uploads: list[dict[str, Any]] = []  # files, with the bytes received
        self.rate_limited = 0
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._ts = 0.0

    def channel_id(self, name: str) -> str:
        return self.channels[name.lstrip("#")]

    def posts_in(self, channel: str) -> list[Message]:
        cid = self.channel_id(channel) if not channel.startswith("C") else channel
        return [m for m in self.messages if m.channel == cid]

    def handle(self, request: Request) -> Response:
        if self.faults.outage:
            return Response(
                503, "<html>503 Service Unavailable</html>", {"Content-Type": "text/html"}
            )
        method = request.path.rsplit("/", 1)[-1]
        if request.path.startswith("/upload/"):  # the upload URL needs no token, as at Slack
            return self._receive_upload(method, request.body)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        params = request.form()
        with self._lock:
            self.calls.append((method, self.clock()))
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return Response(200, {"ok": False, "error": "unknown_method"})
        result: Response = handler(params)
        return result

    def _resolve(self, channel: str) -> str | None:
        if channel in self.channels.values():
            return channel
        return self.channels.get(channel.lstrip("#"))

    def _take_token(self, cid: str) -> bool:
        now = self.clock()
        bucket = self._buckets.setdefault(cid, _Bucket(float(self.burst), now))
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_s
        )
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _next_ts(self) -> str:
        self._ts = max(self._ts + 0.000001, time.time())
        return f"{self._ts:.6f}"

    def _api_auth_test(self, _params: dict[str, Any]) -> Response:
        return Response(200, {"ok": True, "team": "Koubei", "user": "koubei", "bot_id": "B0KOUBEI"})

    def _api_chat_postMessage(self, params: dict[str, Any]) -> Response:
        with self._lock:
            cid = self._resolve(str(params.get("channel", "")))
            if cid is None:
                return Response(200, {"ok": False, "error": "channel_not_found"})
            if not self._take_token(cid):
                self.rate_limited += 1
                return Response(
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(self.faults.retry_after_s)},
                )
            msg = Message(
                channel=cid,
                ts=self._next_ts(),
                text=str(params.get("text", "")),
                attachments=list(params.get("attachments") or []),
                blocks=list(params.get("blocks") or []),
                metadata=params.get("metadata"),
                thread_ts=params.get("thread_ts"),
                broadcast=bool(params.get("reply_broadcast")),
                posted_at=self.clock(),
            )
            self.messages.append(msg)
            drop, hang = self.faults.drop_after_post > 0, self.faults.hang_after_post
            if drop:
                self.faults.drop_after_post -= 1
        if hang:
            time.sleep(3600)
        if drop:
            raise DropConnection
        return Response(
            200,
            {"ok": True, "channel": cid, "ts": msg.ts, "message": msg.as_api(with_metadata=True)},
        )

    def _api_chat_update(self, params: dict[str, Any]) -> Response:
        with self._lock:
            cid = self._resolve(str(params.get("channel", "")))
            for msg in self.messages:
                if msg.channel == cid and msg.ts == params.get("ts"):
                    msg.text = str(params.get("text", msg.text))
                    msg.attachments = list(params.get("attachments") or msg.attachments)
                    msg.edits += 1
                    return Response(200, {"ok": True, "channel": cid, "ts": msg.ts})
        return Response(200, {"ok": False, "error": "message_not_found"})

    def _api_views_open(self, params: dict[str, Any]) -> Response:
        if not params.get("trigger_id"):
            return Response(200, {"ok": False, "error": "invalid_trigger_id"})
        view = params.get("view")
        with self._lock:
            self.views.append(view if isinstance(view, dict) else {})
        return Response(200, {"ok": True, "view": {"id": f"V{len(self.views):08d}"}})

    def _api_files_getUploadURLExternal(self, params: dict[str, Any]) -> Response:
        with self._lock:
            file_id = f"F{len(self.uploads) + 1:09d}"
            self.uploads.append(
                {
                    "id": file_id,
                    "filename": params.get("filename"),
                    "length": int(params.get("length") or 0),
                    "bytes": b"",
                }
            )
        return Response(
            200, {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        )

    def _receive_upload(self, file_id: str, body: bytes) -> Response:
        with self._lock:
            for upload in self.uploads:
                if upload["id"] == file_id:
                    upload["bytes"] = body
                    return Response(200, f"OK - {len(body)}")
        return Response(404, "unknown upload")

    def _api_files_completeUploadExternal(self, params: dict[str, Any]) -> Response:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        channel = self._resolve(str(params.get("channel_id") or params.get("channels") or ""))
        if channel is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        done = []
        with self._lock:
            for f in files or []:
                for upload in self.uploads:
                    if upload["id"] == f.get("id"):
                        upload.update(
                            channel=channel,
                            title=f.get("title"),
                            initial_comment=params.get("initial_comment"),
                        )
                        done.append({"id": upload["id"], "title": f.get("title")})
        return Response(200, {"ok": True, "files": done})

    def thread_of(self, root: Message) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == root.ts]

    def _api_conversations_list(self, _params: dict[str, Any]) -> Response:
        channels = [
            {"id": cid, "name": name, "is_channel": True} for name, cid in self.channels.items()
        ]
        return Response(
            200, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
        )

    def _api_conversations_history(self, params: dict[str, Any]) -> Response:
        cid = self._resolve(str(params.get("channel", "")))
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        oldest = float(params.get("oldest") or 0)
        with_meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [
                m.as_api(with_meta)
                for m in reversed(self.messages)
                if m.channel == cid and float(m.ts) >= oldest
            ]
        return Response(
            200,
            {
                "ok": True,
                "messages": found,
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            },
        )
