"""One POST to a group robot's webhook, with a definite or indefinite outcome.

The robots are called with httpx directly, not through apprise: apprise's
`notify()` answers True or False, so a refused message, a connection that never
opened and an answer lost after the robot took the message all look the same,
and the outbox could neither wait out a rate limit nor tell a safe retry from a
possible duplicate. Here every attempt ends one of three ways:

- nothing was sent (no connection, pool exhausted): `SinkError(definite=True)`;
- the request went out and no answer came (read timeout, connection dropped,
  HTTP 5xx from a gateway): `SinkError(definite=False)`, the robot may have
  posted it and robots cannot be asked afterwards;
- the robot answered: the caller reads its code (`answer`), a rate limit carries
  `retry_after`, a refusal that a retry cannot change is `permanent`.

Error messages name the sink, never its URL: the webhook key is the credential
(WeCom's `key=`, DingTalk's `access_token=`, Feishu's path).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from monitor.alerting.robot_markdown import Ids
from monitor.clock import Clock, SystemClock
from monitor.domain import Outgoing, SinkRef
from monitor.errors import SinkError

HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def post(client: httpx.Client, url: str, body: bytes, robot: str) -> httpx.Response:
    try:
        return client.post(url, content=body, headers=HEADERS)
    except (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ProxyError,
        httpx.LocalProtocolError,
    ) as exc:
        raise SinkError(
            f"{robot}: could not connect ({type(exc).__name__}); nothing was sent, will try again",
            definite=True,
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise SinkError(
            f"{robot}: the webhook URL is not usable ({type(exc).__name__}); "
            "check the sink's url_env",
            definite=True,
            permanent=True,
        ) from None
    except httpx.TransportError as exc:
        # Written (or partly written) and unanswered: the robot may have posted it.
        raise SinkError(
            f"{robot}: sent, but no answer came ({type(exc).__name__}); "
            "the message may have arrived",
            definite=False,
        ) from None


def retry_after(response: httpx.Response, default: float) -> float:
    """The wait the service asks for (Retry-After, Feishu's x-ogw-ratelimit-reset), or `default`."""
    for header in ("retry-after", "x-ogw-ratelimit-reset"):
        value = response.headers.get(header)
        if value:
            try:
                return max(1.0, float(value))
            except ValueError:
                continue
    return default


def answer(response: httpx.Response, robot: str) -> dict[str, Any]:
    """The robot's JSON answer; an HTTP error without one becomes a SinkError here."""
    status = response.status_code
    if status == 429:
        raise SinkError(
            f"{robot}: rate limited (HTTP 429)",
            definite=True,
            retry_after=retry_after(response, 60.0),
        )
    if status >= 500:
        # A gateway may answer 5xx after the robot took the message.
        raise SinkError(
            f"{robot}: the service answered HTTP {status}; the message may have arrived",
            definite=False,
        )
    try:
        data = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        return data
    if 400 <= status < 500:
        raise SinkError(
            f"{robot}: HTTP {status} (check the webhook URL in the sink's url_env)",
            definite=True,
            permanent=status not in (408, 425),
        )
    # A 2xx or 3xx without the robot's JSON: something answered, but not the robot's API.
    raise SinkError(
        f"{robot}: HTTP {status} without the robot's answer; the message may have arrived",
        definite=False,
    )


def code_of(data: dict[str, Any], *keys: str) -> int | None:
    """The robot's result code under the first of `keys` it has, as an int (None: no code)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    return None


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def refusal(
    robot: str,
    code: int | None,
    msg: str,
    *,
    word: str,
    rate_limited: bool,
    rate_note: str,
    wait_s: float,
    permanent: dict[int, str],
) -> SinkError:
    """What a robot's non-zero result code means for the outbox, as its docs say.

    A rate limit waits `wait_s` (or the service's Retry-After) and is retried; a
    documented refusal for good (signature, keyword, token, malformed) is permanent;
    an answer without a code may have been a success; any other code was refused
    this time and is worth another try.
    """
    if rate_limited:
        return SinkError(
            f"{robot}: rate limited ({word} {code}: {rate_note})",
            definite=True,
            retry_after=wait_s,
        )
    if code is not None and code in permanent:
        return SinkError(
            f"{robot}: {word} {code} {msg} ({permanent[code]})", definite=True, permanent=True
        )
    if code is None:
        return SinkError(
            f"{robot}: an answer without {word}; the message may have arrived", definite=False
        )
    return SinkError(f"{robot}: {word} {code} {msg}", definite=True)


class RobotSink:
    """What the three group robots share: one group per webhook, no threads, edits,
    buttons, files or lookup (a robot cannot be asked what it posted), mentions by id."""

    threads: ClassVar[bool] = False
    edits: ClassVar[bool] = False
    buttons: ClassVar[bool] = False
    files: ClassVar[bool] = False
    mentions: ClassVar[bool] = True
    lookup: ClassVar[bool] = False

    def __init__(
        self, name: str, url: str, client: httpx.Client, *, ids: Ids = None, names: Ids = None
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.ids = ids
        self.names = names

    def find(self, out: Outgoing) -> SinkRef | None:
        return None

    def close(self) -> None:
        self.client.close()


class SignedRobotSink(RobotSink):
    """A robot with a signing secret (加签) and a keyword, signed with the clock's time."""

    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.Client,
        *,
        secret: str | None = None,
        ids: Ids = None,
        names: Ids = None,
        keyword: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, url, client, ids=ids, names=names)
        self.secret = secret or None
        self.keyword = keyword
        self.clock = clock or SystemClock()
