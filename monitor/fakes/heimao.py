"""A fake 黑猫投诉: the company-complaints API (signed, optionally JSONP) and detail pages."""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.collectors.heimao import SALT, sign
from monitor.fakes.server import FakeServer, Request, Response

SHANGHAI = ZoneInfo("Asia/Shanghai")
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>新浪通行证</title></head><body>请先登录</body></html>"
)


@dataclass
class Complaint:
    sn: str
    title: str  # may hold highlight HTML, as the API sends it
    text: str
    filed: datetime
    author: str = "匿名用户"
    appeal: str = "退款"
    issue: str = "乱收费"
    cost: str = "0"
    status: int = 4
    companies: list[str] = field(default_factory=lambda: ["某消费金融"])
    replies: list[tuple[datetime, str]] = field(default_factory=list)
    completed: datetime | None = None
    stars: tuple[int, int, int] | None = None  # 服务态度, 处理速度, 满意度
    collective: bool = False
    fields: dict[str, Any] = field(default_factory=dict)  # replaces `main` fields (hostile)

    @property
    def summary(self) -> str:
        return self.text[:60]


@dataclass
class HeimaoFaults:
    login_wall: bool = False
    risk_block: bool = False  # an empty list with a non-zero item count
    malformed: bool = False
    changed_layout: bool = False
    jsonp: bool = False
    delay_s: float = 0.0
    # Serve the first item with this `sn` (a tampered or broken answer, e.g. a path).
    first_sn: str | None = None


class FakeHeimao(FakeServer):
    def __init__(
        self, couid: str = "5650743478", complaints: list[Complaint] | None = None
    ) -> None:
        super().__init__()
        self.couid = couid
        self.complaints = list(complaints or [])  # newest first
        self.faults = HeimaoFaults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
        if self.faults.delay_s:
            time.sleep(self.faults.delay_s)
        if request.path == "/api/company/received_complaints":
            return self._list(request.query)
        if request.path.startswith("/complaint/view/"):
            sn = request.path.strip("/").split("/")[-1]
            found = next((c for c in self.complaints if c.sn == sn), None)
            if found is None:
                return Response(404, "not found")
            if self.faults.login_wall:
                return Response(200, LOGIN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            return Response(200, self.page(found), {"Content-Type": "text/html; charset=utf-8"})
        return Response(404, "not found")

    def _items(self) -> list[dict[str, Any]]:
        items = []
        for c in self.complaints:
            for offset, company in enumerate(c.companies):  # one item per company, sn consecutive
                main: dict[str, Any] = {
                    "sn": str(int(c.sn) + offset),
                    "title": c.title,
                    "summary": c.summary,
                    "appeal": c.appeal,
                    "issue": c.issue,
                    "cost": c.cost,
                    "status": c.status,
                    "timestamp": str(int(c.filed.timestamp())),
                    "url": f"//tousu.sina.com.cn/complaint/view/{int(c.sn) + offset}/?sld=a1b2",
                    "cotitle": company,
                } | c.fields
                if c.stars:
                    main["evaluate_u"] = {
                        "attitude": c.stars[0],
                        "process": c.stars[1],
                        "satisfaction": c.stars[2],
                        "evalContent": "还可以",
                    }
                items.append({"main": main, "author": {"title": c.author, "avatar": ""}})
        if items and self.faults.first_sn is not None:
            items[0]["main"]["sn"] = self.faults.first_sn
        return items

    def _list(self, q: dict[str, str]) -> Response:
        if self.faults.login_wall:
            return Response(200, LOGIN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        expected = sign(
            [
                q.get("ts", ""),
                q.get("rs", ""),
                SALT,
                q.get("couid", ""),
                q.get("type", ""),
                q.get("page_size", ""),
                q.get("page", ""),
            ]
        )
        if q.get("signature") != expected or q.get("couid") != self.couid:
            body: dict[str, Any] = {"result": {"status": {"code": 1001, "msg": "签名错误"}}}
            return Response(200, body)
        items = self._items()
        size, page = int(q.get("page_size", "10")), int(q.get("page", "1"))
        chunk = [] if self.faults.risk_block else items[(page - 1) * size : page * size]
        body = {
            "result": {
                "status": {"code": 0, "msg": ""},
                "data": {
                    "pager": {
                        "current": page,
                        "page_amount": -(-len(items) // size),
                        "item_count": len(items),
                    },
                    "complaints": chunk,
                },
            }
        }
        text = json.dumps(body, ensure_ascii=False)
        if self.faults.malformed:
            text = text[: len(text) // 2]
        if self.faults.jsonp:
            text = f"try{{jQuery1124_17000({text});}}catch(e){{}};"
        return Response(200, text, {"Content-Type": "application/json; charset=utf-8"})

    def page(self, c: Complaint) -> str:
        word = {1: "通过审核", 3: "待分配", 4: "处理中", 6: "已回复", 7: "已完成", 8: "已关闭"}
        esc = html.escape
        steps = [("发起投诉", c.filed, c.text)] + [("商家已回复", t, r) for t, r in c.replies]
        if c.completed:
            steps.append(("投诉已完成", c.completed, "用户确认完成"))
        step_html = "".join(
            f'<div class="ts-d-item"><span class="u-status">{s}</span>'
            f'<span class="u-date">{t.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}</span>'
            f'<div class="ts-d-cont"><p>{esc(body)}</p></div></div>'
            for s, t, body in steps
        )
        stars = ""
        if c.stars:
            stars = (
                '<div class="ts-d-pj">'
                + "".join(
                    f'<span>{n}</span><i class="star star{v}"></i>'
                    for n, v in zip(("服务态度", "处理速度", "满意度"), c.stars, strict=True)
                )
                + "</div>"
            )
        group = '<a href="/grp_comp/view/G17000001">查看集体投诉</a>' if c.collective else ""
        title_tag = "h2" if self.faults.changed_layout else "h1"
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{esc(c.summary)}</title></head>"
            f"<body><{title_tag} class='article'>{esc(c.summary)}</{title_tag}>"
            f"<ul class='ts-q-list'><li><label>投诉编号</label>{c.sn}</li>"
            f"<li><label>投诉对象</label><a>{esc(c.companies[0])}</a></li>"
            f"<li><label>投诉问题</label>{esc(c.issue)}</li><li><label>投诉要求</label>{esc(c.appeal)}</li>"
            f"<li><label>涉诉金额</label>{esc(c.cost)}元</li>"
            f"<li><label>投诉进度</label><b>{word.get(c.status, '处理中')}</b></li></ul>"
            f"<div class='ts-d-steplist'>{step_html}</div>{stars}{group}</body></html>"
        )
