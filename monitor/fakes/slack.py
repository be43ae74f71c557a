"""A fake Slack Web API: chat.postMessage/update, conversations.history/replies/list, files.

Mimics what matters to delivery, as Slack documents it: Bearer auth, HTTP 200
with ok:false for API errors, about one message per second per channel with
HTTP 429 and Retry-After past it, metadata only returned with
include_all_metadata. conversations.history returns parent messages only (a
thread reply shows there only when broadcast); a thread is read with
conversations.replies. Messages Slack refuses are refused here too: more than
50 blocks, a section text over 3,000 characters, a header over 150, a field
over 2,000 or more than 10 fields, a context of more than 10 elements
(invalid_blocks); message text over 40,000 characters (msg_too_long, the
stricter of Slack's two documented readings: it lists the error and says it
truncates); no text, blocks or attachments (no_text); more than 100
attachments (too_many_attachments).
Failure switches: a full outage (HTTP 503), dropping the connection after
storing a post or after any method did its work (ambiguous failure), hanging
after storing a post (to be killed), or rate-limiting the next posts (Slack's
tier limits answer 429 with a Retry-After of its choosing).
"""

from __future__ import annotations

import base64
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
    rate_limit_posts: int = 0  # the next N posts are answered 429 (Retry-After) whatever the rate
    # method -> how many more times it does its work and then closes the socket unanswered
    drop_answer_of: dict[str, int] = field(default_factory=dict)


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
        self.refused: list[tuple[str, dict[str, Any]]] = []  # (error, params) of refused messages
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
        with self._lock:
            left = self.faults.drop_answer_of.get(method, 0)
            if left > 0:
                self.faults.drop_answer_of[method] = left - 1
        if left > 0:
            raise DropConnection
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
            refused = message_error(params)
            if refused:
                self.refused.append((refused, params))
                return Response(200, {"ok": False, "error": refused})
            forced = self.faults.rate_limit_posts > 0
            if forced:
                self.faults.rate_limit_posts -= 1
            if forced or not self._take_token(cid):
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
                attachments=_json_list(params.get("attachments")),
                blocks=_json_list(params.get("blocks")),
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
            if cid is None:
                return Response(200, {"ok": False, "error": "channel_not_found"})
            refused = message_error(params, edit=True)
            if refused:
                self.refused.append((refused, params))
                return Response(200, {"ok": False, "error": refused})
            for msg in self.messages:
                if msg.channel == cid and msg.ts == params.get("ts"):
                    msg.text = str(params.get("text", msg.text))
                    # Slack keeps the previous attachments when an edit leaves them out.
                    msg.attachments = _json_list(params.get("attachments")) or msg.attachments
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
        if not params.get("filename") or not str(params.get("length") or "").isdigit():
            return Response(200, {"ok": False, "error": "invalid_arguments"})
        with self._lock:
            file_id = f"F{len(self.uploads) + 1:09d}"
            self.uploads.append(
                {
                    "id": file_id,
                    "filename": params.get("filename"),
                    "length": int(params.get("length") or 0),
                    "bytes": b"",
                    "created": time.time(),
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
            known = {u["id"]: u for u in self.uploads}
            if not files or any(f.get("id") not in known for f in files):
                return Response(200, {"ok": False, "error": "file_not_found"})
            for f in files:
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
        """Parent messages only, newest first, paginated; replies only when broadcast."""
        cid = self._resolve(str(params.get("channel", "")))
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        oldest = float(params.get("oldest") or 0)
        inclusive = _flag(params.get("inclusive"))
        with self._lock:
            found = [
                m
                for m in reversed(self.messages)
                if m.channel == cid
                and (float(m.ts) > oldest or (inclusive and float(m.ts) == oldest))
                and (m.thread_ts is None or m.thread_ts == m.ts or m.broadcast)
            ]
        return self._page(found, params)

    def _api_conversations_replies(self, params: dict[str, Any]) -> Response:
        """A thread: its parent first, then the replies, oldest first, paginated."""
        cid = self._resolve(str(params.get("channel", "")))
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        ts = str(params.get("ts") or "")
        with self._lock:
            parent = [m for m in self.messages if m.channel == cid and m.ts == ts]
            if not parent:
                return Response(200, {"ok": False, "error": "thread_not_found"})
            replies = [m for m in self.messages if m.channel == cid and m.thread_ts == ts]
        return self._page(parent + replies, params)

    def _page(self, found: list[Message], params: dict[str, Any]) -> Response:
        limit = max(1, min(int(params.get("limit") or 100), 999))
        cursor = str(params.get("cursor") or "")
        try:
            start = int(base64.b64decode(cursor).decode()) if cursor else 0
        except ValueError:
            return Response(200, {"ok": False, "error": "invalid_cursor"})
        with_meta = _flag(params.get("include_all_metadata"))
        page = found[start : start + limit]
        more = start + limit < len(found)
        next_cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return Response(
            200,
            {
                "ok": True,
                "messages": [m.as_api(with_meta) for m in page],
                "has_more": more,
                "response_metadata": {"next_cursor": next_cursor},
            },
        )

    def _api_files_list(self, params: dict[str, Any]) -> Response:
        """Files shared in a channel (or all), newest first, with page/count paging."""
        channel = params.get("channel")
        cid = self._resolve(str(channel)) if channel else None
        if channel and cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        ts_from = float(params.get("ts_from") or 0)
        count = max(1, min(int(params.get("count") or 100), 1000))
        page = max(1, int(params.get("page") or 1))
        with self._lock:
            shared = [
                u
                for u in reversed(self.uploads)
                if u.get("channel")
                and (cid is None or u["channel"] == cid)
                and u["created"] >= ts_from
            ]
        files = [
            {
                "id": u["id"],
                "created": int(u["created"]),
                "timestamp": int(u["created"]),
                "name": u["filename"],
                "title": u.get("title") or u["filename"],
                "size": len(u["bytes"]),
                "channels": [u["channel"]],
            }
            for u in shared[(page - 1) * count : page * count]
        ]
        pages = max(1, -(-len(shared) // count))
        return Response(
            200,
            {
                "ok": True,
                "files": files,
                "paging": {"count": count, "total": len(shared), "page": page, "pages": pages},
            },
        )


def _flag(value: Any) -> bool:
    return str(value or "").lower() in ("1", "true")


def _json_list(value: Any) -> list[dict[str, Any]]:
    """Blocks and attachments arrive as JSON arrays, or as JSON text in a form post."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_ATTACHMENTS = 100


def message_error(params: dict[str, Any], *, edit: bool = False) -> str | None:
    """The error Slack answers for a message it will not take, or None."""
    text = str(params.get("text") or "")
    blocks = _json_list(params.get("blocks"))
    attachments = _json_list(params.get("attachments"))
    if not edit and not text and not blocks and not attachments:
        return "no_text"
    if len(text) > MAX_TEXT:
        return "msg_too_long"
    if len(attachments) > MAX_ATTACHMENTS:
        return "too_many_attachments"
    for block_list in [blocks, *(_json_list(a.get("blocks")) for a in attachments)]:
        if len(block_list) > MAX_BLOCKS or any(_block_error(b) for b in block_list):
            return "invalid_blocks"
    return None


def _text_of(obj: Any) -> str | None:
    return obj.get("text") if isinstance(obj, dict) and isinstance(obj.get("text"), str) else None


def _block_error(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    if len(str(block.get("block_id") or "")) > 255:
        return True
    if kind == "section":
        text, fields = _text_of(block.get("text")), block.get("fields")
        if text is None and not fields:
            return True
        if text is not None and not 1 <= len(text) <= 3000:
            return True
        if fields is not None:
            items = [_text_of(f) for f in fields] if isinstance(fields, list) else [None]
            return len(items) > 10 or any(t is None or not 1 <= len(t) <= 2000 for t in items)
        return False
    if kind == "header":
        header = block.get("text")
        text = _text_of(header)
        if text is None or not isinstance(header, dict) or header.get("type") != "plain_text":
            return True
        return not 1 <= len(text) <= 150
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return True
        return any(len(_text_of(e) or "") > 3000 for e in elements)
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            return True
        return any(
            len(_text_of(e.get("text")) or "") > 75 or len(str(e.get("value") or "")) > 2000
            for e in elements
            if isinstance(e, dict)
        )
    return kind not in ("divider", "image", "rich_text", "markdown", "file", "input", "video")
