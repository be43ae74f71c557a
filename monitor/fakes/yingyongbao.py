"""A fake 应用宝 review page with its `__NEXT_DATA__`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitor.fakes.server import FakeServer, Request, Response


@dataclass
class Comment:
    id: str
    nick: str
    content: str
    created: int  # epoch seconds
    score: float
    praise: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # replaces `comment` fields (hostile)


class FakeYingyongbao(FakeServer):
    def __init__(self, package: str, comments: list[Comment]) -> None:
        super().__init__()
        self.package = package
        self.comments = comments
        self.changed_layout = False

    def handle(self, request: Request) -> Response:
        if request.path != f"/appdetail/{self.package}/review":
            return Response(404, "not found")
        items = [
            {
                "comment": {
                    "commentID": c.id,
                    "content": c.content,
                    "createTime": c.created,
                    "mulDimensionScore": {"total": c.score},
                    "praiseNum": c.praise,
                    "replyNum": 0,
                }
                | c.fields,
                "user": {"nickName": c.nick},
            }
            for c in self.comments
        ]
        data: dict[str, Any] = {
            "props": {
                "pageProps": {
                    "dynamicCardResponse": {
                        "data": {
                            "components": [
                                {"cardId": "appInfo", "data": {}},
                                {"cardId": "comments", "data": {"itemData": items}},
                            ]
                        }
                    }
                }
            }
        }
        script = (
            ""
            if self.changed_layout
            else (
                '<script id="__NEXT_DATA__" type="application/json">'
                + json.dumps(data, ensure_ascii=False)
                + "</script>"
            )
        )
        return Response(
            200,
            f"<!DOCTYPE html><html><body><div id='__next'></div>{script}</body></html>",
            {"Content-Type": "text/html; charset=utf-8"},
        )
