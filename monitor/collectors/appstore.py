"""Apple App Store customer-review RSS feed (JSON), the primary app-review source.

Quirks this module handles (see SOURCES.md):
- 50 entries a page, at most 10 pages; page 11 answers HTTP 400 with plain text.
- A page intermittently comes back with no `entry` key although reviews exist:
  retry it; it never means "no reviews". The `last` link tells the real depth.
- A page with one review carries `entry` as an object instead of a list.
- Old feeds put an app-metadata entry first, without `im:rating`: skipped.
- Every scalar is wrapped as {"label": ...}; `updated` has a Cupertino offset.

One bad entry (no id, a bad date, a field that is not text, bytes that are
not UTF-8) is rejected on its own; the rest of the page is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.collectors.payload import loads_json, text_id
from monitor.domain import RawPost
from monitor.errors import FetchError, ParseError

MAX_DEPTH = 10  # Apple serves at most 10 pages of 50 reviews
_PAGE_IN_URL = re.compile(r"page=(\d+)", re.IGNORECASE)


class AppStoreOptions(CollectorOptions):
    app_id: str = Field(pattern=r"^\d+$", description="numeric id from the app's store URL")
    country: str = Field(default="cn", pattern=r"^[a-z]{2}$")
    max_pages: int = Field(default=MAX_DEPTH, ge=1, le=MAX_DEPTH)
    empty_page_retries: int = Field(default=3, ge=0, le=10)
    empty_page_delay_s: float = Field(default=2.0, ge=0)


def _label(node: Any, name: str, default: str = "") -> str:
    """A {"label": ...} field as text; a list or object where text belongs is an error."""
    if node is None:
        return default
    if not isinstance(node, dict):
        raise ValueError(f"`{name}` is {type(node).__name__}, not {{'label': ...}}")
    value = node.get("label")
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"`{name}.label` is {type(value).__name__}, not text")


def _number(node: Any) -> int | None:
    """A numeric label (rating, votes); anything unreadable counts as absent."""
    value = node.get("label") if isinstance(node, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _attributes(node: Any) -> dict[str, Any]:
    attrs = node.get("attributes") if isinstance(node, dict) else None
    return attrs if isinstance(attrs, dict) else {}


def _entries(feed: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The page's entries; None when the `entry` key is missing (the transient empty page)."""
    if "entry" not in feed:
        return None
    entry = feed["entry"]
    if isinstance(entry, dict):
        return [entry]
    if isinstance(entry, list):
        return [e for e in entry if isinstance(e, dict)]
    return []


def _last_page(feed: dict[str, Any]) -> int | None:
    links = feed.get("link")
    if isinstance(links, dict):
        links = [links]
    for link in links if isinstance(links, list) else []:
        attrs = _attributes(link)
        if attrs.get("rel") == "last":
            match = _PAGE_IN_URL.search(str(attrs.get("href", "")))
            if match:
                return int(match.group(1))
    return None


class AppStore(Collector, kind="appstore"):
    Options = AppStoreOptions
    options: AppStoreOptions

    def page_url(self, page: int) -> str:
        o = self.options
        return (
            f"{self.base_url}/{o.country}/rss/customerreviews/page={page}"
            f"/id={o.app_id}/sortby=mostrecent/json"
        )

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        for page in range(1, self.options.max_pages + 1):
            feed = self._fetch_feed(client, page)
            if feed is None:  # past the depth Apple serves
                return
            entries, last = feed
            reached_known = False
            url = self.page_url(page)
            for entry in entries:
                ident = entry.get("id")
                post = self.read_item(
                    entry,
                    partial(self.parse_entry, entry, url),
                    external_id=ident.get("label") if isinstance(ident, dict) else None,
                )
                if post is None:
                    continue
                reached_known = reached_known or self.is_known(post.external_id)
                yield post
            if (self.stop_at_known and reached_known) or (last is not None and page >= last):
                return

    def _fetch_feed(
        self, client: HttpClient, page: int
    ) -> tuple[list[dict[str, Any]], int | None] | None:
        url = self.page_url(page)
        for attempt in range(self.options.empty_page_retries + 1):
            response = client.get(url, source=self.source.name)
            if response.status_code == 400 and page > 1:
                return None  # "CustomerReviews RSS page depth is limited to 10"
            if response.status_code == 404 and page > 1:
                return None
            if response.status_code != 200:
                raise FetchError(self.source.name, url, f"HTTP {response.status_code}")
            try:
                data = loads_json(response.content)
            except ValueError:
                raise ParseError(self.source.name, url, "body is not JSON") from None
            feed = data.get("feed") if isinstance(data, dict) else None
            if not isinstance(feed, dict):
                raise ParseError(self.source.name, url, "no `feed` object in the JSON")
            last = _last_page(feed)
            if last is not None and page > last:
                return None
            entries = _entries(feed)
            if entries is not None:
                return entries, last
            if attempt < self.options.empty_page_retries:
                client.pause(self.options.empty_page_delay_s * (attempt + 1))
        raise FetchError(
            self.source.name,
            url,
            f"page {page} came back without entries {self.options.empty_page_retries + 1} "
            "times; Apple does this intermittently, the next run will try again",
        )

    def parse_entry(self, entry: dict[str, Any], page_url: str) -> RawPost | None:
        if "im:rating" not in entry:
            return None  # app-metadata entry of old feeds
        review_id = text_id(_label(entry.get("id"), "id"))
        if not review_id:
            raise ParseError(self.source.name, page_url, "a review entry has no id")
        rating = _number(entry.get("im:rating"))
        if rating is not None and not 1 <= rating <= 5:
            rating = None
        updated = _label(entry.get("updated"), "updated")
        try:
            published = datetime.fromisoformat(updated) if updated else None
        except ValueError:
            raise ParseError(
                self.source.name, page_url, f"review {review_id}: bad `updated` {updated[:40]!r}"
            ) from None
        author = entry.get("author")
        link = entry.get("link")
        if isinstance(link, list):
            link = next((x for x in link if isinstance(x, dict)), {})
        href = _attributes(link).get("href")
        o = self.options
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=review_id,
            url=href
            if isinstance(href, str) and href
            else f"https://apps.apple.com/{o.country}/app/id{o.app_id}?see-all=reviews",
            author=_label(author.get("name"), "author.name") if isinstance(author, dict) else "",
            title=_label(entry.get("title"), "title"),
            body=_label(entry.get("content"), "content"),
            rating=rating,
            app_version=_label(entry.get("im:version"), "im:version") or None,
            published_at=published,
            votes=_number(entry.get("im:voteCount")) or 0,
        )
