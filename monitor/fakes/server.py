"""A threaded stdlib HTTP server on a free port, started and stopped as a context manager."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


class Request:
    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = unquote(parts.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.body = body

    def form(self) -> dict[str, Any]:
        """Query, form and JSON parameters merged, the way Slack's API reads them."""
        params: dict[str, Any] = dict(self.query)
        ctype = self.headers.get("content-type", "")
        if self.body and "json" in ctype:
            loaded = json.loads(self.body)
            if isinstance(loaded, dict):
                params.update(loaded)
        elif self.body:
            params.update({k: v[-1] for k, v in parse_qs(self.body.decode()).items()})
        return params


class Response:
    def __init__(
        self,
        status: int = 200,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, dict):
            self.body = json.dumps(body, ensure_ascii=False).encode()
            self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            self.body = body.encode()
            self.headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            self.body = body


class DropConnection(Exception):
    """Raised by a handler to close the socket without answering (an ambiguous failure)."""


class FakeServer:
    """Subclasses implement `handle(request) -> Response`."""

    def __init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    response = fake.handle(Request(self, body))
                except DropConnection:
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
