"""A fake 聚投诉: the search API and complaint pages, with a switchable login wall."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from monitor.fakes.server import FakeServer, Request, Response

LOGIN = "<html><body><a href='/login'>登录聚投诉</a> 后查看更多</body></html>"


@dataclass
class Post:
    id: str
    title: str
    short: str
    text: str
    username: str
    ctime: int
    fields: dict[str, Any] = field(default_factory=dict)  # replaces list-item fields (hostile)


class FakeJutousu(FakeServer):
    def __init__(self, posts: list[Post], page_size: int = 10) -> None:
        super().__init__()
        self.posts = posts
        self.page_size = page_size
        self.login_wall = False
        self.queries: list[str] = []

    def handle(self, request: Request) -> Response:
        if self.login_wall:
            return Response(200, LOGIN, {"Content-Type": "text/html; charset=utf-8"})
        if request.path == "/front/api/search/searchPostList.do":
            self.queries.append(request.query.get("title", ""))
            page = int(request.query.get("pageNo", "1"))
            chunk = self.posts[(page - 1) * self.page_size : page * self.page_size]
            body: dict[str, Any] = {
                "postList": [
                    {
                        "id": p.id,
                        "title": p.title,
                        "shortTopic": p.short,
                        "username": p.username,
                        "ctime": p.ctime,
                    }
                    | p.fields
                    for p in chunk
                ]
            }
            return Response(200, body)
        if request.path.startswith("/tousu/show/id/"):
            ident = request.path.rsplit("/", 1)[-1]
            found = next((p for p in self.posts if p.id == ident), None)
            if found is None:
                return Response(404, "not found")
            document = (
                f"<html><body><h1>{html.escape(found.title)}</h1>"
                f"<div class='post_content'><p>{html.escape(found.text)}</p></div></body></html>"
            )
            return Response(200, document, {"Content-Type": "text/html; charset=utf-8"})
        return Response(404, "not found")
