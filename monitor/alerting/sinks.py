"""Where alerts go: Slack through slack-sdk's WebClient, or the console and a JSONL file.

A sink posts one message and can look one up by alert id (after an ambiguous
failure, to avoid posting twice): a channel message in the channel's history,
a thread reply in its thread (Slack's history holds parent messages only), a
file among the channel's files. Failures are DeliveryError with `definite`
telling whether the message surely did not reach Slack, and `permanent` when
Slack refused it for good (retrying would be refused the same way).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from monitor.alerting.limits import fit_message
from monitor.config import SlackConfig
from monitor.counters import CountingRateLimitHandler
from monitor.errors import DeliveryError

log = logging.getLogger(__name__)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Slack's answers that no retry can change: the message, the channel or the token is wrong.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_attachments",
        "msg_too_long",
        "msg_blocks_too_long",
        "too_many_attachments",
        "no_text",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "restricted_action",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_arguments",
        "file_not_found",
    }
)


def _items(response: SlackResponse, key: str) -> list[dict[str, Any]]:
    value = response.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class SinkError(DeliveryError):
    def __init__(self, message: str, *, definite: bool, permanent: bool = False) -> None:
        super().__init__(message)
        self.definite = definite or permanent
        self.permanent = permanent


@dataclass(frozen=True)
class Sent:
    channel_id: str
    ts: str


class Sink(Protocol):
    def post(self, channel: str, message: dict[str, Any], alert_id: int) -> Sent: ...

    def update(self, channel_id: str, ts: str, message: dict[str, Any]) -> None: ...

    def upload(self, channel: str, path: Path, comment: str, alert_id: int) -> Sent: ...

    def find(
        self, channel: str, alert_id: int, since: datetime, thread_ts: str | None = None
    ) -> Sent | None: ...

    def find_file(self, channel: str, alert_id: int, since: datetime) -> Sent | None: ...


def file_title(path: Path, alert_id: int) -> str:
    """The uploaded file's title: its name and the alert id, to find it after a lost answer."""
    return f"{path.name} · Koubei #{alert_id}"


class SlackSink:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._channel_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, token: str, config: SlackConfig) -> SlackSink:
        # slack-sdk retries only connection errors by default, and retrying those
        # can post twice; we retry 429s here and leave the rest to the outbox.
        client = WebClient(
            token=token,
            base_url=config.base_url,
            timeout=int(config.timeout_s),
            retry_handlers=[CountingRateLimitHandler(max_retry_count=config.rate_limit_retries)],
        )
        return cls(client)

    @contextmanager
    def _calling(self, method: str, channel: str, *, unanswered_definite: bool) -> Iterator[None]:
        """Slack's refusals and unanswered calls as SinkError, saying whether it surely failed."""
        try:
            yield
        except SlackApiError as exc:
            raise self._api_error(method, channel, exc) from None
        except DeliveryError:
            raise
        except Exception as exc:  # connection reset, timeout: nothing heard back
            then = "will try again" if unanswered_definite else "will look before posting again"
            raise SinkError(
                f"{method} to {channel}: no answer ({type(exc).__name__}); {then}",
                definite=unanswered_definite,
            ) from None

    def post(self, channel: str, message: dict[str, Any], alert_id: int) -> Sent:
        # Unanswered, the post may have landed: the outbox looks for it before retrying.
        with self._calling("chat.postMessage", channel, unanswered_definite=False):
            response = self.client.chat_postMessage(channel=channel, **fit_message(message))
        return Sent(channel_id=str(response["channel"]), ts=str(response["ts"]))

    def update(self, channel_id: str, ts: str, message: dict[str, Any]) -> None:
        fitted = fit_message(message)
        fields = {k: v for k, v in fitted.items() if k in ("text", "attachments", "blocks")}
        # An edit is idempotent: unanswered, it is simply made again.
        with self._calling("chat.update", channel_id, unanswered_definite=True):
            self.client.chat_update(channel=channel_id, ts=ts, **fields)

    def upload(self, channel: str, path: Path, comment: str, alert_id: int) -> Sent:
        """A file with a comment (files_upload_v2: get an upload URL, send, complete).

        Unanswered, the file may have been shared: the outbox looks for it first.
        """
        if not path.is_file():
            raise SinkError(
                f"file {path.name} is gone; regenerate the report", definite=True, permanent=True
            )
        with self._calling("files.upload", channel, unanswered_definite=False):
            channel_id = self._channel_id(channel)
            response = self.client.files_upload_v2(
                channel=channel_id,
                file=str(path),
                filename=path.name,
                title=file_title(path, alert_id),
                initial_comment=fit_message({"text": comment})["text"],
            )
        files = response.get("files") or [{}]
        return Sent(channel_id=channel_id, ts=str(files[0].get("id", "")))

    def find(
        self, channel: str, alert_id: int, since: datetime, thread_ts: str | None = None
    ) -> Sent | None:
        """The message carrying this alert id: in the channel, or in the thread of `thread_ts`."""
        method = "conversations.replies" if thread_ts else "conversations.history"
        with self._calling(method, channel, unanswered_definite=False):
            channel_id = self._channel_id(channel)
            cursor = None
            while True:
                if thread_ts:
                    response = self.client.conversations_replies(
                        channel=channel_id,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    )
                else:
                    response = self.client.conversations_history(
                        channel=channel_id,
                        oldest=f"{since.timestamp() - 60:.6f}",
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    )
                for msg in _items(response, "messages"):
                    payload = (msg.get("metadata") or {}).get("event_payload") or {}
                    if payload.get("alert_id") == alert_id:
                        return Sent(channel_id=channel_id, ts=str(msg["ts"]))
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None

    def find_file(self, channel: str, alert_id: int, since: datetime) -> Sent | None:
        """The file uploaded for this alert, among the channel's files since it was queued."""
        marker = f" · Koubei #{alert_id}"
        with self._calling("files.list", channel, unanswered_definite=False):
            channel_id = self._channel_id(channel)
            page, pages = 1, 1
            while page <= pages:
                response = self.client.files_list(
                    channel=channel_id,
                    ts_from=str(int(since.timestamp()) - 60),
                    count=100,
                    page=page,
                )
                for f in _items(response, "files"):
                    if str(f.get("title") or "").endswith(marker):
                        return Sent(channel_id=channel_id, ts=str(f.get("id", "")))
                paging = response.get("paging") or {}
                pages = int(paging.get("pages") or 1)
                page += 1
        return None

    def _channel_id(self, channel: str) -> str:
        if _CHANNEL_ID.match(channel):
            return channel
        with self._lock:
            if channel not in self._channel_ids:
                cursor = None
                while True:
                    response = self.client.conversations_list(
                        types="public_channel,private_channel", limit=1000, cursor=cursor
                    )
                    for ch in _items(response, "channels"):
                        self._channel_ids["#" + ch["name"]] = ch["id"]
                        self._channel_ids[ch["name"]] = ch["id"]
                    cursor = (response.get("response_metadata") or {}).get("next_cursor")
                    if not cursor or channel in self._channel_ids:
                        break
            if channel not in self._channel_ids:
                raise SinkError(
                    f"channel {channel} not found; invite the bot or use the channel id",
                    definite=True,
                    permanent=True,
                )
            return self._channel_ids[channel]

    @staticmethod
    def _api_error(method: str, channel: str, exc: SlackApiError) -> SinkError:
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        if status == 429:
            return SinkError(f"{method} to {channel}: still rate limited", definite=True)
        if status >= 500:
            return SinkError(f"{method} to {channel}: Slack answered HTTP {status}", definite=False)
        if 400 <= status < 500 and status != 408:
            return SinkError(
                f"{method} to {channel}: Slack answered HTTP {status} (check slack.base_url)",
                definite=True,
                permanent=True,
            )
        hint = {
            "channel_not_found": "check slack.channels in koubei.yaml and invite the bot",
            "not_in_channel": "invite the bot to the channel",
            "invalid_auth": "check SLACK_BOT_TOKEN",
            "not_authed": "set SLACK_BOT_TOKEN",
            "invalid_blocks": "the message breaks Slack's block limits",
            "msg_too_long": "the message text is over Slack's limit",
        }.get(str(error), "see Slack's API docs for this error")
        return SinkError(
            f"{method} to {channel}: {error or status} ({hint})",
            definite=True,
            permanent=str(error) in PERMANENT_ERRORS,
        )


class ConsoleSink:
    """No SLACK_BOT_TOKEN: print each alert and append it to a JSONL file."""

    def __init__(self, jsonl: Path, stream: TextIO | None = None) -> None:
        self.jsonl = jsonl
        self.stream = stream or sys.stdout

    def post(self, channel: str, message: dict[str, Any], alert_id: int) -> Sent:
        ts = f"console-{alert_id}"
        record = {"alert_id": alert_id, "channel": channel, "ts": ts, **message}
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with self.jsonl.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        where = (
            "edit" if "update_of" in message else ("thread" if "thread_ts" in message else "alert")
        )
        print(f"[{where} → {channel}] {message.get('text', '')}", file=self.stream)
        return Sent(channel_id=channel, ts=ts)

    def update(self, channel_id: str, ts: str, message: dict[str, Any]) -> None:
        self.post(channel_id, {**message, "update_of": ts}, alert_id=0)

    def upload(self, channel: str, path: Path, comment: str, alert_id: int) -> Sent:
        return self.post(channel, {"text": comment, "file": str(path)}, alert_id=alert_id)

    def find_file(self, channel: str, alert_id: int, since: datetime) -> Sent | None:
        return self.find(channel, alert_id, since)

    def find(
        self, channel: str, alert_id: int, since: datetime, thread_ts: str | None = None
    ) -> Sent | None:
        if not self.jsonl.exists():
            return None
        with self.jsonl.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if record.get("alert_id") == alert_id:
                    return Sent(channel_id=channel, ts=str(record["ts"]))
        return None
