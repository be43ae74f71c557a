"""Huawei AppGallery comments: the older plain GET, and the token flow where it fails.

Older: GET /uowap/index?method=internal.user.commenList3&... with a Referer on
appgallery.huawei.com. Newer (2025+): POST /webedge/getInterfaceCode gives a
token; calls carry `interface-code: {token}_{ms}` and POST /index/commentlist3;
HTTP 403 with rtnCode 1002 means the token expired: get a new one. Pages can
repeat items: comments are deduplicated on their id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.collectors.payload import loads_json, text_field, text_id
from monitor.domain import RawPost
from monitor.errors import FetchError, ParseError

SHANGHAI = ZoneInfo("Asia/Shanghai")
REFERER = {"Referer": "https://appgallery.huawei.com/"}


class HuaweiOptions(CollectorOptions):
    appid: str = Field(pattern=r"^C\d+$", description="AppGallery id, e.g. C100148961")
    max_pages: int = Field(default=4, ge=1, le=100)
    page_size: int = Field(default=25, ge=1, le=50)


class Huawei(Collector, kind="huawei"):
    Options = HuaweiOptions
    options: HuaweiOptions

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        seen: set[str] = set()
        token: str | None = None
        for page in range(1, self.options.max_pages + 1):
            data = None if token else self._old_api(client, page)
            if data is None:  # the old form is gone: the token flow
                data, token = self._new_api(client, page, token)
            items = data.get("list") or []
            items = items if isinstance(items, list) else []
            reached_known = False
            for item in items:
                ident = item.get("commentId") or item.get("id") if isinstance(item, dict) else None
                post = self.read_item(item, partial(self.parse, item), ident)
                if post is None or post.external_id in seen:
                    continue
                seen.add(post.external_id)
                reached_known = reached_known or self.is_known(post.external_id)
                yield post
            total = _int(data.get("totalPages"))
            if not items or page >= total or (self.stop_at_known and reached_known):
                return

    def _old_api(self, client: HttpClient, page: int) -> dict[str, Any] | None:
        o = self.options
        url = f"{self.base_url}/uowap/index"
        params = {
            "method": "internal.user.commenList3",
            "serviceType": "20",
            "reqPageNum": str(page),
            "maxResults": str(o.page_size),
            "appid": o.appid,
            "version": "10.0.0",
            "zone": "",
            "locale": "zh",
        }
        response = client.get(url, source=self.source.name, params=params, headers=REFERER)
        data = _json(response)
        if response.status_code != 200 or data is None or str(data.get("rtnCode")) != "0":
            return None
        return data

    def _new_api(
        self, client: HttpClient, page: int, token: str | None
    ) -> tuple[dict[str, Any], str]:
        url = f"{self.base_url}/index/commentlist3"
        body = {"appid": self.options.appid, "pageNum": page, "pageSize": self.options.page_size}
        for _ in range(2):
            token = token or self._token(client)
            headers = {**REFERER, "interface-code": f"{token}_{int(time.time() * 1000)}"}
            response = client.post(url, source=self.source.name, json=body, headers=headers)
            data = _json(response)
            if response.status_code == 403 and data and str(data.get("rtnCode")) == "1002":
                token = None  # expired: ask for a new one, once
                continue
            if response.status_code != 200 or data is None:
                raise FetchError(self.source.name, url, f"HTTP {response.status_code}")
            if str(data.get("rtnCode")) != "0":
                raise FetchError(self.source.name, url, f"rtnCode {data.get('rtnCode')}")
            return data, token
        raise FetchError(self.source.name, url, "the interface code was refused twice")

    def _token(self, client: HttpClient) -> str:
        url = f"{self.base_url}/webedge/getInterfaceCode"
        response = client.post(url, source=self.source.name, json={}, headers=REFERER)
        data = _json(response)
        if response.status_code != 200 or data is None:
            raise FetchError(
                self.source.name, url, f"no interface code (HTTP {response.status_code})"
            )
        token = data.get("data") if isinstance(data.get("data"), str) else data.get("interfaceCode")
        if not token:
            raise ParseError(self.source.name, url, "no interface code in the answer")
        return str(token)

    def parse(self, item: dict[str, Any]) -> RawPost:
        ident = text_id(item.get("commentId")) or text_id(item.get("id"))  # never "None"
        try:
            rating: int | None = int(str(item.get("rating", "")))
        except ValueError:
            rating = None
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=ident,
            url=f"https://appgallery.huawei.com/app/{self.options.appid}",
            author=text_field(item.get("accountName") or item.get("nickName"), "accountName"),
            title=text_field(item.get("title"), "title"),
            body=text_field(item.get("commentInfo"), "commentInfo"),
            rating=rating if rating is not None and 1 <= rating <= 5 else None,
            app_version=text_field(item.get("versionName"), "versionName") or None,
            published_at=_local(str(item.get("operTime") or "")),
            votes=_int(item.get("approveCounts")),
        )


def _int(value: object) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:  # one comment's bad bytes spoil that comment only (read_item rejects it)
        data = loads_json(response.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _local(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    return None
