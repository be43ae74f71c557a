"""A fake App Store customer-review RSS server with Apple's quirks, switchable per test.

Hostile input is served in the same format: `Review.fields` replaces whole
entry fields (a null id, `link.attributes` as a string), and
`Quirks.byte_patches` rewrites the encoded page (invalid UTF-8, nesting deeper
than JSON libraries recurse) where a dict cannot say it.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.fakes.server import FakeServer, Request, Response

PAGE_SIZE = 50
MAX_DEPTH = 10
_SEG = re.compile(r"^(page|id|sortby)=(.+)$", re.IGNORECASE)


@dataclass
class Review:
    id: str
    author: str
    rating: int
    title: str
    content: str
    updated: str  # ISO 8601 with the Cupertino offset, as Apple sends it
    version: str = "5.2.0"
    votes: int = 0
    vote_sum: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # replaces entry fields as given

    def entry(self, app_id: str) -> dict[str, Any]:
        """One feed entry, keys in Apple's order, every scalar wrapped in {"label": ...}."""
        entry: dict[str, Any] = {
            "author": {
                "uri": {
                    "label": f"https://itunes.apple.com/cn/reviews/id{zlib.crc32(self.author.encode())}"
                },
                "name": {"label": self.author},
                "label": "",
            },
            "updated": {"label": self.updated},
            "im:rating": {"label": str(self.rating)},
            "im:version": {"label": self.version},
            "id": {"label": self.id},
            "title": {"label": self.title},
            "content": {"label": self.content, "attributes": {"type": "text"}},
            "link": {
                "attributes": {
                    "rel": "related",
                    "href": f"https://itunes.apple.com/cn/review?id={app_id}&type=Purple%20Software",
                }
            },
            "im:voteSum": {"label": str(self.vote_sum)},
            "im:contentType": {"attributes": {"term": "Application", "label": "应用"}},
            "im:voteCount": {"label": str(self.votes)},
        }
        return entry | self.fields


@dataclass
class Quirks:
    """Failure modes to switch on; each list is consumed one request at a time."""

    empty_pages: dict[int, int] = field(default_factory=dict)  # page -> how many empty answers
    statuses: dict[int, list[int]] = field(default_factory=dict)  # page -> statuses to answer first
    retry_after: str = "1"
    app_metadata_entry: bool = False  # old feeds: an app entry without im:rating first
    omit_updated: bool = False
    # Applied to the encoded JSON page: bytes a JSON encoder would never write.
    byte_patches: dict[bytes, bytes] = field(default_factory=dict)
    # Location headers to answer with (302) before serving, one request each: a
    # store front that moved, or a hostile answer pointing into our network.
    redirects: list[str] = field(default_factory=list)


class FakeAppStore(FakeServer):
    def __init__(
        self, reviews: Sequence[Review], app_id: str = "1440195432", country: str = "cn"
    ) -> None:
        super().__init__()
        self.reviews = list(reviews)  # newest first, as sortby=mostrecent
        self.app_id = app_id
        self.country = country
        self.quirks = Quirks()
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def add_newer(self, reviews: Sequence[Review]) -> None:
        with self._lock:
            self.reviews = list(reviews) + self.reviews

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            segments = [s for s in request.path.split("/") if s]
            if len(segments) < 3 or segments[0] != self.country or "rss" not in segments:
                return Response(404, "not found")
            params = {m.group(1).lower(): m.group(2) for s in segments if (m := _SEG.match(s))}
            if params.get("id") != self.app_id or "json" not in segments:
                return Response(404, "not found")
            if self.quirks.redirects:
                return Response(302, "", {"Location": self.quirks.redirects.pop(0)})
            page = int(params.get("page", "1"))
            if page > MAX_DEPTH:
                return Response(400, "CustomerReviews RSS page depth is limited to 10")
            queued = self.quirks.statuses.get(page)
            if queued:
                status = queued.pop(0)
                headers = {"Retry-After": self.quirks.retry_after} if status == 429 else {}
                return Response(status, f"error {status}", headers)
            feed = self._feed(page)
            if self.quirks.empty_pages.get(page, 0) > 0:
                self.quirks.empty_pages[page] -= 1
                feed.pop("entry", None)
            response = Response(200, {"feed": feed})
            for old, new in self.quirks.byte_patches.items():
                response.body = response.body.replace(old, new)
            return response

    def _feed(self, page: int) -> dict[str, Any]:
        last = max(1, min(MAX_DEPTH, -(-len(self.reviews) // PAGE_SIZE)))
        chunk = self.reviews[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        entries = [r.entry(self.app_id) for r in chunk]
        if self.quirks.omit_updated:
            for e in entries:
                e.pop("updated")
        if self.quirks.app_metadata_entry and page == 1:
            entries.insert(
                0,
                {
                    "id": {"label": self.app_id},
                    "title": {"label": "借款App - 贷款"},
                    "im:name": {"label": "借款App"},
                },
            )
        base = f"https://itunes.apple.com/{self.country}/rss/customerreviews"
        tail = f"id={self.app_id}/sortby=mostrecent/json"
        feed: dict[str, Any] = {
            "author": {
                "name": {"label": "iTunes Store"},
                "uri": {"label": "http://www.apple.com/cn/itunes/"},
            },
            "updated": {"label": "2026-11-28T01:00:00-07:00"},
            "rights": {"label": "Copyright 2008 Apple Inc."},
            "title": {"label": "iTunes Store：客户评论"},
            "icon": {"label": "http://itunes.apple.com/favicon.ico"},
            "link": [
                {
                    "attributes": {
                        "rel": "alternate",
                        "type": "text/html",
                        "href": f"https://apps.apple.com/{self.country}/app/id{self.app_id}",
                    }
                },
                {"attributes": {"rel": "self", "href": f"{base}/page={page}/{tail}"}},
                {"attributes": {"rel": "first", "href": f"{base}/page=1/{tail}"}},
                {"attributes": {"rel": "last", "href": f"{base}/page={last}/{tail}"}},
                {
                    "attributes": {
                        "rel": "previous",
                        "href": f"{base}/page={max(1, page - 1)}/{tail}",
                    }
                },
                {
                    "attributes": {
                        "rel": "next",
                        "href": f"{base}/page={min(last, page + 1)}/{tail}",
                    }
                },
            ],
            "id": {"label": f"{base}/page={page}/{tail}"},
        }
        if entries:
            feed["entry"] = entries[0] if len(entries) == 1 else entries
        return feed
