"""Public replies to App Store reviews, delivered through the outbox like any message.

A reply is an outbox row whose channel is `appstoreconnect:<source>:<review id>`; the
drain hands it to this sink, which posts `POST /v1/customerReviewResponses` (a JSON:API
body with `responseBody` and the review relationship) with the source's ES256 token.
Apple keeps one response per review and a second POST overwrites the first, so after an
answer was lost the sink reads the review's response first: one modified since the reply
was queued is this reply, and it is not sent again.
Apple publishes a response after a while (`PENDING_PUBLISH`, then `PUBLISHED`); the
collector's later runs read that state into the case's timeline.

`RoutingSink` sends rows for these channels here and everything else to another sink
(one process handing every row to one sink, as the tests and the demo do); `make_sinks`
registers this sink under `REPLY_SINK` beside the chat sinks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import httpx

from monitor.collectors.appstoreconnect import AppStoreConnect
from monitor.collectors.http import HttpClient
from monitor.config import SourceConfig
from monitor.domain import Outgoing, Sink, SinkRef
from monitor.errors import KoubeiError, SinkError
from monitor.replies import REPLY_PREFIX, REPLY_SINK

PREFIX = REPLY_PREFIX


def _parts(channel: str) -> tuple[str, str]:
    source, _, review_id = channel.removeprefix(PREFIX).rpartition(":")
    return source, review_id


class AppStoreReplySink:
    kind: ClassVar[str] = "appstore"
    threads: ClassVar[bool] = False
    edits: ClassVar[bool] = False
    buttons: ClassVar[bool] = False
    files: ClassVar[bool] = False
    mentions: ClassVar[bool] = False
    lookup: ClassVar[bool] = True  # the review's response is read back
    max_bytes: ClassVar[int] = 5970 * 4  # 5,970 characters
    rate_per_minute: ClassVar[int] = 60
    rate_source: ClassVar[str] = (
        "https://developer.apple.com/documentation/appstoreconnectapi/identifying-rate-limits"
    )

    def __init__(self, sources: list[SourceConfig], http: HttpClient) -> None:
        self.collectors = {s.name: AppStoreConnect(s) for s in sources}
        self.http = http
        self.name = REPLY_SINK

    def _collector(self, channel: str) -> AppStoreConnect:
        name, _ = _parts(channel)
        collector = self.collectors.get(name)
        if collector is None:
            raise SinkError(
                f"no appstoreconnect source named {name!r} in the config",
                definite=True,
                permanent=True,
            )
        return collector

    def _call(self, collector: AppStoreConnect, method: str, url: str, body: object = None) -> Any:
        try:
            headers = {"Authorization": f"Bearer {collector.token()}"}
            if method == "POST":
                # Sent once per attempt: after a lost answer the outbox looks before retrying,
                # where the shared client would simply post again.
                response = self.http.raw.post(url, json=body, headers=headers)
            else:
                response = self.http.request(
                    method, url, source=collector.source.name, json=body, headers=headers
                )
        except KoubeiError as exc:  # the client's retries are spent, or the key is refused
            raise SinkError(str(exc), definite=False) from None
        except httpx.HTTPError as exc:
            raise SinkError(
                f"App Store Connect did not answer ({type(exc).__name__}); it may have the reply",
                definite=False,
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise SinkError(f"HTTP {response.status_code} {_detail(response)}", definite=True)
        if response.status_code in (401, 403):
            raise SinkError(
                f"App Store Connect refused the API key (HTTP {response.status_code}): check "
                f"the key in {collector.options.private_key_env}",
                definite=True,
                permanent=True,
            )
        if response.status_code == 404:
            return None
        if response.status_code == 409 or response.status_code == 422:
            raise SinkError(
                f"App Store Connect refused the reply (HTTP {response.status_code}): "
                f"{_detail(response)}",
                definite=True,
                permanent=True,
            )
        if response.status_code >= 400:
            raise SinkError(f"HTTP {response.status_code} {_detail(response)}", definite=True)
        return response.json() if response.content else {}

    def send(self, out: Outgoing) -> SinkRef:
        if out.method != "post":
            raise SinkError(
                "review replies are posted, never edited or threaded", definite=True, permanent=True
            )
        message = out.raw if out.raw is not None else out.notice.extra
        collector = self._collector(out.channel)
        review_id, text = str(message["review_id"]), str(message["text"])
        body = {
            "data": {
                "type": "customerReviewResponses",
                "attributes": {"responseBody": text},
                "relationships": {"review": {"data": {"type": "customerReviews", "id": review_id}}},
            }
        }
        data = self._call(
            collector, "POST", f"{collector.base_url}/v1/customerReviewResponses", body
        )
        if data is None:
            raise SinkError(f"review {review_id} no longer exists", definite=True, permanent=True)
        # Only a short reference fits the outbox row; the response itself is read back
        # from the review by the collector.
        return SinkRef("appstore", str(data.get("data", {}).get("id", ""))[:32])

    def find(self, out: Outgoing) -> SinkRef | None:
        """The review's response if it changed since the reply was queued: this reply."""
        collector = self._collector(out.channel)
        _, review_id = _parts(out.channel)
        since = out.created_at
        url = f"{collector.base_url}/v1/customerReviews/{review_id}/response"
        data = self._call(collector, "GET", url)
        item = data.get("data") if isinstance(data, dict) else None
        if not isinstance(item, dict):
            return None
        modified = (item.get("attributes") or {}).get("lastModifiedDate")
        try:
            changed = datetime.fromisoformat(str(modified))
        except ValueError:
            return None
        # Apple's dates are to the second; the reply was queued at `since`.
        fresh = changed >= since.replace(microsecond=0)
        return SinkRef("appstore", str(item.get("id", ""))[:32]) if fresh else None


def _detail(response: Any) -> str:
    try:
        errors = response.json().get("errors") or []
        first = errors[0] if errors else {}
        return " ".join(str(first.get(k, ""))[:200] for k in ("code", "detail") if first.get(k))
    except (ValueError, AttributeError):
        return ""


class RoutingSink:
    """Apple for rows whose channel names a review source; another sink for the rest.

    Its capabilities are those of Slack and the console, the sinks it fronts; review
    replies are plain posts either way.
    """

    kind: ClassVar[str] = "slack"
    threads: ClassVar[bool] = True
    edits: ClassVar[bool] = True
    buttons: ClassVar[bool] = True
    files: ClassVar[bool] = True
    mentions: ClassVar[bool] = True
    lookup: ClassVar[bool] = True
    max_bytes: ClassVar[int] = 160_000
    rate_per_minute: ClassVar[int] = 60
    rate_source: ClassVar[str] = "https://api.slack.com/methods/chat.postMessage#rate_limiting"

    def __init__(self, default: Sink, replies: AppStoreReplySink) -> None:
        self.default = default
        self.replies = replies
        self.name = default.name

    def _for(self, channel: str) -> Sink:
        return self.replies if channel.startswith(PREFIX) else self.default

    def send(self, out: Outgoing) -> SinkRef:
        return self._for(out.channel).send(out)

    def find(self, out: Outgoing) -> SinkRef | None:
        return self._for(out.channel).find(out)
