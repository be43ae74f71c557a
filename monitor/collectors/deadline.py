"""A total deadline for one HTTP exchange, enforced at the socket.

httpx's timeouts bound each network operation, so a server that sends a byte
every two seconds never trips a 15 s read timeout and holds its caller for as
long as it likes. Here every socket operation (connect, TLS, write, read) waits
at most until the deadline of the exchange running on its thread, and one that
would start past it fails as a timeout. The deadline is per thread because one
client (and its connection pool) serves several collectors at once.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx


class Deadlines(threading.local):
    """The deadline (a time.monotonic() value) of the exchange on the current thread."""

    at: float | None = None

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        previous, self.at = self.at, time.monotonic() + seconds
        try:
            yield
        finally:
            self.at = previous

    def bound(self, timeout: float | None, error: type[Exception]) -> float | None:
        """The timeout for the next socket operation: the smaller of its own and what is left."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the exchange's total deadline has passed")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadlines: Deadlines) -> None:
        self._inner = inner
        self._deadlines = deadlines

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadlines.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadlines.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadlines.bound(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._inner.start_tls(ssl_context, server_hostname, bounded), self._deadlines
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadlines: Deadlines) -> None:
        self._inner = inner
        self._deadlines = deadlines

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadlines.bound(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _Stream(stream, self._deadlines)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadlines.bound(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._inner.connect_unix_socket(path, bounded, socket_options), self._deadlines
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound_by(client: httpx.Client, deadlines: Deadlines) -> None:
    """Put `deadlines` under every HTTP transport of `client` (proxy ones included).

    httpx does not expose its connection pool's network backend, so this reaches
    into the pools it builds. A transport the caller injected (a test's
    MockTransport) has no sockets and is left alone; an httpx transport that
    cannot be bounded is an error here rather than a collector that can hang.
    """
    for transport in [client._transport, *client._mounts.values()]:
        if not isinstance(transport, httpx.HTTPTransport):
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError(
                "cannot bound HTTP exchanges by a deadline: this httpx/httpcore version "
                "keeps its network backend elsewhere"
            )
        if not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend, deadlines)  # type: ignore[union-attr]
