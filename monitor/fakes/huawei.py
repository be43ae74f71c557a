"""A fake AppGallery: the older GET form (switchable off) and the token flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.fakes.server import FakeServer, Request, Response


@dataclass
class Comment:
    id: str
    name: str
    text: str
    rating: int
    when: str  # local "YYYY-MM-DD HH:MM"
    version: str = "5.3.0"
    fields: dict[str, Any] = field(default_factory=dict)  # replaces item fields (hostile)


class FakeHuawei(FakeServer):
    def __init__(self, appid: str, comments: list[Comment], page_size: int = 25) -> None:
        super().__init__()
        self.appid = appid
        self.comments = comments
        self.page_size = page_size
        self.old_api = True
        self.tokens_issued = 0
        self.expire_next = 0  # answer 403/1002 this many times
        self.repeat_last = True  # pages repeat an item of the previous page

    def _page(self, page: int) -> dict[str, Any]:
        start = (page - 1) * self.page_size
        chunk = self.comments[start : start + self.page_size]
        if self.repeat_last and page > 1 and start > 0:
            chunk = [self.comments[start - 1], *chunk]
        items = [
            {
                "commentId": c.id,
                "id": c.id,
                "accountName": c.name,
                "commentInfo": c.text,
                "title": "",
                "rating": str(c.rating),
                "operTime": c.when,
                "versionName": c.version,
                "phone": "HUAWEI Mate 60",
                "approveCounts": 0,
                "replyCounts": 0,
            }
            | c.fields
            for c in chunk
        ]
        pages = -(-len(self.comments) // self.page_size)
        return {
            "rtnCode": 0,
            "count": len(self.comments),
            "totalPages": pages,
            "score": "3.1",
            "list": items,
        }

    def handle(self, request: Request) -> Response:
        if request.path == "/uowap/index":
            if not self.old_api:
                return Response(200, {"rtnCode": 1, "rtnDesc": "method offline"})
            if request.query.get("appid") != self.appid:
                return Response(200, {"rtnCode": 1})
            return Response(200, self._page(int(request.query.get("reqPageNum", "1"))))
        if request.path == "/webedge/getInterfaceCode":
            self.tokens_issued += 1
            return Response(200, {"data": f"tok{self.tokens_issued}"})
        if request.path == "/index/commentlist3":
            code = request.headers.get("interface-code", "")
            if not code.startswith(f"tok{self.tokens_issued}_") or self.expire_next > 0:
                self.expire_next = max(0, self.expire_next - 1)
                return Response(403, {"rtnCode": 1002, "rtnDesc": "interface code expired"})
            body = request.form()
            return Response(200, self._page(int(body.get("pageNum", 1))))
        return Response(404, "not found")
