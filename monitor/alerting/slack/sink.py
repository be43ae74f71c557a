"""Slack through slack-sdk's WebClient: posts, thread replies, edits and files.

After an unanswered attempt the outbox asks `find` first: a channel message is looked
for in the channel's history, a thread reply in its thread (Slack's history holds
parent messages only), a file among the channel's files, each by the alert id the
message carries. Failures are SinkError with `definite` telling whether the message
surely did not reach Slack, and `permanent` when Slack refused it for good.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from monitor.alerting.limits import MAX_TEXT, fit_message
from monitor.alerting.slack.render import SlackRenderer
from monitor.config import Policy, SlackConfig
from monitor.counters import CountingRateLimitHandler
from monitor.domain import Outgoing, SinkRef
from monitor.errors import DeliveryError, SinkError

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


def file_title(path: Path, alert_id: int) -> str:
    """The uploaded file's title: its name and the alert id, to find it after a lost answer."""
    return f"{path.name} · Koubei #{alert_id}"


class SlackSink:
    kind: ClassVar[str] = "slack"
    threads: ClassVar[bool] = True
    edits: ClassVar[bool] = True
    buttons: ClassVar[bool] = True
    files: ClassVar[bool] = True
    mentions: ClassVar[bool] = True
    lookup: ClassVar[bool] = True
    max_bytes: ClassVar[int] = MAX_TEXT * 4  # 40,000 characters of text
    rate_per_minute: ClassVar[int] = 60
    rate_source: ClassVar[str] = (
        "https://api.slack.com/methods/chat.postMessage#rate_limiting "
        "(one message per second per channel)"
    )

    def __init__(
        self, client: WebClient, policy: Policy | None = None, name: str = "slack"
    ) -> None:
        self.client = client
        self.name = name
        self.renderer = SlackRenderer(policy)
        self._channel_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, token: str, config: SlackConfig, policy: Policy | None = None, name: str = "slack"
    ) -> SlackSink:
        # slack-sdk retries only connection errors by default, and retrying those
        # can post twice; we retry 429s here and leave the rest to the outbox.
        client = WebClient(
            token=token,
            base_url=config.base_url,
            timeout=int(config.timeout_s),
            retry_handlers=[
                CountingRateLimitHandler(sink=name, max_retry_count=config.rate_limit_retries)
            ],
        )
        return cls(client, policy, name)

    # --- the Sink protocol ------------------------------------------------------------

    def send(self, out: Outgoing) -> SinkRef:
        message = self.renderer.render(out)
        if out.method == "file":
            path = Path(str(message.get("file") or out.notice.file or ""))
            return self.upload(out.channel, path, str(message.get("text") or ""), out.alert_id)
        if out.method == "update":
            if out.thread is None:
                raise SinkError("no message to edit", definite=True, permanent=True)
            self.update(out.thread.channel, out.thread.ref, message)
            return out.thread
        if out.method == "reply" and out.thread is not None:
            thread = {**message, "thread_ts": out.thread.ref}
            return self.post(out.thread.channel, thread, out.alert_id)
        return self.post(out.channel, message, out.alert_id)

    def find(self, out: Outgoing) -> SinkRef | None:
        if out.method == "file":
            return self.find_file(out.channel, out.alert_id, out.created_at)
        if out.method == "update":
            return None  # an edit is made again, not looked for
        if out.method == "reply" and out.thread is not None:
            return self.find_message(
                out.thread.channel, out.alert_id, out.created_at, out.thread.ref
            )
        return self.find_message(out.channel, out.alert_id, out.created_at)

    # --- Slack's calls ----------------------------------------------------------------

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

    def post(self, channel: str, message: dict[str, Any], alert_id: int) -> SinkRef:
        # Unanswered, the post may have landed: the outbox looks for it before retrying.
        with self._calling("chat.postMessage", channel, unanswered_definite=False):
            response = self.client.chat_postMessage(channel=channel, **fit_message(message))
        return SinkRef(channel=str(response["channel"]), ref=str(response["ts"]))

    def update(self, channel_id: str, ts: str, message: dict[str, Any]) -> None:
        fitted = fit_message(message)
        fields = {k: v for k, v in fitted.items() if k in ("text", "attachments", "blocks")}
        # An edit is idempotent: unanswered, it is simply made again.
        with self._calling("chat.update", channel_id, unanswered_definite=True):
            self.client.chat_update(channel=channel_id, ts=ts, **fields)

    def upload(self, channel: str, path: Path, comment: str, alert_id: int) -> SinkRef:
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
        return SinkRef(channel=channel_id, ref=str(files[0].get("id", "")))

    def find_message(
        self, channel: str, alert_id: int, since: datetime, thread_ts: str | None = None
    ) -> SinkRef | None:
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
                        return SinkRef(channel=channel_id, ref=str(msg["ts"]))
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None

    def find_file(self, channel: str, alert_id: int, since: datetime) -> SinkRef | None:
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
                        return SinkRef(channel=channel_id, ref=str(f.get("id", "")))
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
            wait = _retry_after(exc.response.headers)
            return SinkError(
                f"{method} to {channel}: still rate limited", definite=True, retry_after=wait
            )
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


def _retry_after(headers: Any) -> float | None:
    try:
        value = {str(k).lower(): v for k, v in dict(headers or {}).items()}.get("retry-after")
        if isinstance(value, list):
            value = value[0] if value else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
