"""Tencent 应用宝 reviews, read from the review page's embedded `__NEXT_DATA__` JSON.

props.pageProps.dynamicCardResponse.data.components[*].data.itemData[*] hold
{comment: {commentID, content, createTime (epoch s), mulDimensionScore: {total}},
user: {nickName}} (SOURCES.md). A page without that script has changed layout.
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
from monitor.errors import FetchError, ParseError


class YingyongbaoOptions(CollectorOptions):
    package: str = Field(pattern=r"^[A-Za-z][\w.]+$", description="the Android package name")


def review_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    components = (
        data.get("props", {})
        .get("pageProps", {})
        .get("dynamicCardResponse", {})
        .get("data", {})
        .get("components", [])
    )
    items: list[dict[str, Any]] = []
    for component in components if isinstance(components, list) else []:
        found = (
            (component.get("data") or {}).get("itemData") if isinstance(component, dict) else None
        )
        if isinstance(found, list):
            items += [
                i for i in found if isinstance(i, dict) and isinstance(i.get("comment"), dict)
            ]
    return items


class Yingyongbao(Collector, kind="yingyongbao"):
    Options = YingyongbaoOptions
    options: YingyongbaoOptions

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        url = f"{self.base_url}/appdetail/{self.options.package}/review"
        response = client.get(url, source=self.source.name)
        if response.status_code != 200:
            raise FetchError(self.source.name, url, f"HTTP {response.status_code}")
        script = BeautifulSoup(response.text, "html.parser").find("script", id="__NEXT_DATA__")
        if script is None:
            raise ParseError(self.source.name, url, "no __NEXT_DATA__ script: the page changed")
        try:
            data = json.loads(script.get_text())
        except json.JSONDecodeError:
            raise ParseError(self.source.name, url, "__NEXT_DATA__ is not JSON") from None
        for item in review_items(data):
            post = self.read_item(
                item, partial(self.parse, item, url), item["comment"].get("commentID")
            )
            if post is not None:
                yield post

    def parse(self, item: dict[str, Any], url: str) -> RawPost:
        comment, user = item["comment"], item.get("user") or {}
        score = (comment.get("mulDimensionScore") or {}).get("total")
        try:
            rating: int | None = round(float(score)) if score is not None else None
        except (TypeError, ValueError, OverflowError):
            rating = None
        created = comment.get("createTime")
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=text_id(comment.get("commentID")),  # null is no id, never "None"
            url=url,
            author=text_field(user.get("nickName"), "user.nickName"),
            title="",
            body=text_field(comment.get("content"), "comment.content"),
            rating=rating if rating is not None and 1 <= rating <= 5 else None,
            app_version=None,
            published_at=datetime.fromtimestamp(int(created), UTC) if created else None,
            votes=int(comment.get("praiseNum") or 0),
        )
