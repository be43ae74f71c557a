"""聚投诉 (ts.21cn.com): keyword search API, then each complaint's page for its full text.

Search: GET /front/api/search/searchPostList.do?pageNo=&title=&listType=1 with a
Referer on the site -> {"postList": [{id, title, shortTopic, username, ctime}]}.
A page containing 登录聚投诉 is a login wall: a block, never "no complaints".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bs4 import BeautifulSoup
from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.collectors.payload import text_field, text_id
from monitor.domain import RawPost
from monitor.errors import FetchError, ParseError, SourceBlocked

LOGIN_WALL = "登录聚投诉"


class JutousuOptions(CollectorOptions):
    keyword: str = Field(min_length=1, description="the company or app name to search for")
    max_pages: int = Field(default=3, ge=1, le=50)
    details: bool = True


class Jutousu(Collector, kind="jutousu"):
    Options = JutousuOptions
    options: JutousuOptions

    def _get(self, client: HttpClient, url: str, params: dict[str, str] | None = None) -> str:
        response = client.get(
            url, source=self.source.name, params=params, headers={"Referer": f"{self.base_url}/"}
        )
        if response.status_code != 200:
            raise FetchError(self.source.name, url, f"HTTP {response.status_code}")
        if LOGIN_WALL in response.text:
            raise SourceBlocked(self.source.name, url, "login wall (登录聚投诉)")
        return response.text

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        url = f"{self.base_url}/front/api/search/searchPostList.do"
        for page in range(1, self.options.max_pages + 1):
            text = self._get(
                client, url, {"pageNo": str(page), "title": self.options.keyword, "listType": "1"}
            )
            try:
                posts = json.loads(text).get("postList")
            except (json.JSONDecodeError, AttributeError):
                raise ParseError(
                    self.source.name, url, "search answer is not the JSON we know"
                ) from None
            if not isinstance(posts, list) or not posts:
                return
            reached_known = False
            for item in posts:
                ident = text_id(item.get("id")) if isinstance(item, dict) else ""
                if not ident:  # never "None", never merged with another complaint
                    self.reject(item, "the complaint has no `id`")
                    continue
                if self.url_id(ident) is None:  # it goes into the detail URL
                    continue
                reached_known = reached_known or self.is_known(ident)
                link = f"{self.base_url}/tousu/show/id/{ident}"
                body = self.full_text(client, link) if self.options.details else ""
                post = self.read_item(item, partial(self.parse, item, ident, link, body), ident)
                if post is not None:
                    yield post
            if self.stop_at_known and reached_known:
                return

    def parse(self, item: dict[str, Any], ident: str, link: str, body: str) -> RawPost:
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=ident,
            url=link,
            author=text_field(item.get("username"), "username"),
            title=BeautifulSoup(text_field(item.get("title"), "title"), "html.parser").get_text(),
            body=body or text_field(item.get("shortTopic"), "shortTopic"),
            rating=None,
            app_version=None,
            published_at=datetime.fromtimestamp(int(item["ctime"]), UTC)
            if item.get("ctime")
            else None,
        )

    def full_text(self, client: HttpClient, url: str) -> str:
        soup = BeautifulSoup(self._get(client, url), "html.parser")
        block = soup.select_one("[class*=content]")
        return block.get_text(" ", strip=True) if block else ""
