"""A fake RSS 2.0 feed with ETag and Last-Modified, honouring conditional GET."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from monitor.fakes.server import FakeServer, Request, Response


@dataclass
class Item:
    guid: str
    title: str
    description: str
    published: datetime
    link: str = ""
    author: str = ""


class FakeRss(FakeServer):
    def __init__(
        self, items: list[Item] | None = None, path: str = "/weibo/keyword/借款App"
    ) -> None:
        super().__init__()
        self.items = list(items or [])
        self.path = path
        self.requests: list[Request] = []
        self.not_modified = 0
        self.broken = False

    def body(self) -> str:
        entries = "".join(
            f"<item><title>{html.escape(i.title)}</title>"
            f"<description>{html.escape(i.description)}</description>"
            f"<link>{html.escape(i.link or 'https://weibo.example/' + i.guid)}</link>"
            f'<guid isPermaLink="false">{i.guid}</guid>'
            f"<author>{html.escape(i.author)}</author>"
            f"<pubDate>{format_datetime(i.published)}</pubDate></item>"
            for i in self.items
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            "<title>微博关键词：借款App</title><link>https://weibo.example/</link>"
            f"<description>RSSHub 风格的桥接源</description>{entries}</channel></rss>"
        )

    def handle(self, request: Request) -> Response:
        self.requests.append(request)
        if request.path != self.path:
            return Response(404, "not found")
        if self.broken:
            return Response(200, "<html><body>改版了</body></html>", {"Content-Type": "text/html"})
        body = self.body()
        etag = '"' + hashlib.sha1(body.encode()).hexdigest()[:16] + '"'
        modified = (
            format_datetime(
                max((i.published for i in self.items), default=datetime.now()), usegmt=True
            )
            if self.items
            else "Sat, 28 Nov 2026 00:00:00 GMT"
        )
        if request.headers.get("if-none-match") == etag:
            self.not_modified += 1
            return Response(304, b"", {"ETag": etag, "Last-Modified": modified})
        return Response(
            200,
            body,
            {
                "Content-Type": "application/rss+xml; charset=utf-8",
                "ETag": etag,
                "Last-Modified": modified,
            },
        )
