"""RSS and Atom feeds (feedparser): news, Weibo or forum searches bridged to RSS.

Keyword filters keep what concerns the company (`include`, any of) and drop
the rest (`exclude`). Conditional GET: the feed's ETag and Last-Modified are
remembered between runs; a 304 means nothing changed and stores nothing.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import feedparser
from bs4 import BeautifulSoup
from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.domain import RawPost
from monitor.errors import FetchError, ParseError


class RssOptions(CollectorOptions):
    path: str = Field(default="", description="appended to base_url: the feed's address")
    include: list[str] = Field(default_factory=list, description="keep entries naming any of these")
    exclude: list[str] = Field(default_factory=list, description="drop entries naming any of these")
    max_items: int = Field(default=200, ge=1)


def _text(html: str) -> str:
    return BeautifulSoup(html or "", "html.parser").get_text(" ", strip=True)


def _when(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


class Rss(Collector, kind="rss"):
    Options = RssOptions
    options: RssOptions

    @property
    def url(self) -> str:
        return self.base_url + self.options.path

    def wanted(self, text: str) -> bool:
        lowered = text.lower()
        if self.options.include and not any(k.lower() in lowered for k in self.options.include):
            return False
        return not any(k.lower() in lowered for k in self.options.exclude)

    def parse(self, entry: Any) -> RawPost:
        title = _text(entry.get("title", ""))
        content = entry.get("content") or [{}]
        body = _text(content[0].get("value") or entry.get("summary", ""))
        link = entry.get("link", "")
        ident = entry.get("id") or link or hashlib.sha1(f"{title}{body}".encode()).hexdigest()
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=str(ident)[:128],
            url=link or self.url,
            author=_text(entry.get("author", "")),
            title=title,
            body=body,
            rating=None,
            app_version=None,
            published_at=_when(entry),
        )

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        headers = {}
        if etag := self.memory.get("etag"):
            headers["If-None-Match"] = str(etag)
        if modified := self.memory.get("last_modified"):
            headers["If-Modified-Since"] = str(modified)
        response = client.get(self.url, source=self.source.name, headers=headers)
        if response.status_code == 304:
            self.memory["unchanged"] = True
            return
        if response.status_code != 200:
            raise FetchError(self.source.name, self.url, f"HTTP {response.status_code}")
        feed = feedparser.parse(response.content)
        if not feed.get("version"):  # feedparser names the format it recognised
            raise ParseError(self.source.name, self.url, "not an RSS or Atom feed")
        for entry in feed.get("entries", [])[: self.options.max_items]:
            post = self.read_item(dict(entry), partial(self.parse, entry), entry.get("id"))
            if post is not None and self.wanted(f"{post.title} {post.body}"):
                yield post
        # Remember validators only once the whole feed was read.
        for key, header in (("etag", "ETag"), ("last_modified", "Last-Modified")):
            if response.headers.get(header):
                self.memory[key] = response.headers[header]
