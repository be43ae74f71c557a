"""The one HTTP client every collector uses: politeness and bounded retries built in.

- a User-Agent that names us, timeouts on every read and a total deadline on
  every try (`http.deadline_s`: a source dripping bytes cannot hold us);
- redirects followed only to the source's own host or the hosts configured
  for it, never into our own network from a public source (redirects.py);
- a per-host rate limit (requests per second, from config);
- bounded retries with exponential backoff on timeouts, connection errors,
  5xx and 429, honouring Retry-After (capped, so a hostile value cannot stall us);
- errors come out as FetchError naming the source and the URL.
Sleep and the monotonic clock are injected so tests run fast and can assert waits.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from monitor.collectors.deadline import Deadlines, bound_by
from monitor.collectors.redirects import Resolve, refusal, resolve_host
from monitor.config import HttpConfig
from monitor.errors import FetchError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5


class RedirectRefused(Exception):
    """A redirect the policy in redirects.py does not allow (becomes a FetchError)."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


class RateLimiter(Protocol):
    def wait(self, host: str) -> None:
        """Block until a request to `host` is allowed."""


class HostRateLimiter:
    """At most `rate` requests per second to each host, across threads."""

    def __init__(
        self,
        default_rate: float,
        rates: Mapping[str, float],
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = default_rate
        self._rates = dict(rates)
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self._monotonic = monotonic

    def wait(self, host: str) -> None:
        interval = 1.0 / self._rates.get(host, self._default)
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + interval
        if slot > now:
            self._sleep(slot - now)


class HttpClient:
    def __init__(
        self,
        config: HttpConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        resolve: Resolve = resolve_host,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._resolve = resolve
        self._deadlines = Deadlines()
        # Several instances share a limiter in the database; one process keeps its own.
        self._limiter = limiter or HostRateLimiter(
            config.default_rate_per_s, config.rate_per_s, sleep=sleep, monotonic=monotonic
        )
        self._client = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,  # followed in _exchange, host by host
            transport=transport,
        )
        bound_by(self._client, self._deadlines)

    @property
    def raw(self) -> httpx.Client:
        """The underlying client, for calls outside the collector retry policy."""
        return self._client

    def pause(self, seconds: float) -> None:
        """Wait between polite retries; tests inject a sleep that does not block."""
        self._sleep(seconds)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        source: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with retries; returns any response below 500 except 429 for the caller to judge."""
        return self.request("GET", url, source=source, params=params, headers=headers)

    def post(
        self,
        url: str,
        *,
        source: str,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST with the same politeness and retries (for APIs that only answer POST)."""
        return self.request("POST", url, source=source, json=json, headers=headers)

    def request(
        self,
        method: str,
        url: str,
        *,
        source: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: object = None,
    ) -> httpx.Response:
        host = urlsplit(url).netloc
        attempts = self.config.max_retries + 1
        reason = ""
        for attempt in range(1, attempts + 1):
            self._limiter.wait(host)
            delay = self.config.backoff_base_s * (2 ** (attempt - 1))
            began = time.monotonic()
            try:
                with self._deadlines.within(self.config.deadline_s):
                    response = self._exchange(method, url, params, headers, json)
            except RedirectRefused as exc:
                raise FetchError(source, url, str(exc)) from None
            except httpx.TimeoutException:
                if time.monotonic() - began >= self.config.deadline_s:
                    reason = (
                        f"no complete answer within http.deadline_s="
                        f"{self.config.deadline_s:g}s (the server sends too slowly)"
                    )
                else:
                    reason = f"timed out after {self.config.timeout_s:g}s"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None:
                    if retry_after > self.config.max_retry_after_s:
                        raise FetchError(
                            source,
                            url,
                            f"{reason} asks to wait {retry_after:.0f}s, more than "
                            f"http.max_retry_after_s={self.config.max_retry_after_s:g}; "
                            "will try again on the next scheduled run",
                        )
                    delay = max(delay, retry_after)
            if attempt < attempts:
                shown = host.rpartition("@")[2]  # never the user:password part
                log.info("%s: %s from %s, retry %d in %.1fs", source, reason, shown, attempt, delay)
                self._sleep(delay)
        raise FetchError(source, url, f"{reason} (gave up after {attempts} tries)")

    def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json: object,
    ) -> httpx.Response:
        """One try: the request and the redirects the policy allows, bodies read."""
        request = self._client.build_request(method, url, params=params, headers=headers, json=json)
        origin = request.url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._client.send(request)
            target = response.next_request
            if target is None:
                return response
            response.close()
            why = refusal(origin, target.url, self.config.redirect_hosts, self._resolve)
            if why is not None:
                raise RedirectRefused(f"HTTP {response.status_code}: {why}")
            request = target
        raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects")
