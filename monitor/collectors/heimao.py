"""Sina 黑猫投诉 (tousu.sina.com.cn): complaints received by one company.

Format facts (SOURCES.md): the JSON API wants a signature the site's script
computes (sha256 over the sorted values of ts, rs, a fixed salt and the query
values); with `callback=` it answers JSONP; titles carry highlight HTML; status
is a code; `cost` is yuan as a string; `timestamp` is epoch seconds. The
detail page has the full text, the steps (company replies) and the user's
evaluation. A login page or an empty list with a non-zero item count is a
block, never "no complaints". One complaint filed against several companies
comes as consecutive items with the same title and summary: one post.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from bs4 import BeautifulSoup
from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.collectors.payload import text_id
from monitor.domain import PlatformState, RawPost
from monitor.errors import FetchError, ParseError, SourceBlocked

SALT = "$d6eb7ff91ee257475%"
STATUS_WORDS = {1: "通过审核", 3: "待分配", 4: "处理中", 6: "已回复", 7: "已完成", 8: "已关闭"}
FINAL = {"已完成", "已关闭"}
SHANGHAI = ZoneInfo("Asia/Shanghai")
_JSONP = re.compile(
    r"^\s*(?:try\s*\{\s*)?[\w$.]+\s*\((.*)\)\s*;?\s*(?:\}\s*catch\s*\(\w*\)\s*\{\s*\}\s*;?)?\s*$",
    re.S,
)
_STAR = re.compile(r"star(\d)")


class HeimaoOptions(CollectorOptions):
    couid: str = Field(pattern=r"^\d+$", description="the company's id on tousu.sina.com.cn")
    page_size: int = Field(default=10, ge=1, le=50)
    max_pages: int = Field(default=5, ge=1, le=100)
    details: bool = True  # read each new complaint's page for its full text and steps
    salt: str = SALT


def sign(values: list[str]) -> str:
    """The site's signature: sha256 of the sorted values joined, as its script does."""
    return hashlib.sha256("".join(sorted(values)).encode()).hexdigest()


def unwrap_jsonp(text: str) -> str:
    m = _JSONP.match(text)
    return m.group(1) if m else text


def strip_html(text: str) -> str:
    return BeautifulSoup(text or "", "html.parser").get_text()


def _looks_like_login(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html") or "登录" in text[:2000]


class Heimao(Collector, kind="heimao"):
    Options = HeimaoOptions
    options: HeimaoOptions

    def _get(self, client: HttpClient, url: str, params: dict[str, str] | None = None) -> str:
        response = client.get(
            url,
            source=self.source.name,
            params=params,
            headers={
                "X-Requested-With": "XMLHttpRequest",
                "Referer": f"{self.base_url}/company/view/{self.options.couid}",
            },
        )
        if response.status_code != 200:
            raise FetchError(self.source.name, url, f"HTTP {response.status_code}")
        return response.text

    def list_page(self, client: HttpClient, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page of received complaints and the total item count."""
        o = self.options
        ts = str(int(time.time() * 1000))
        rs = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
        values = [ts, rs, o.salt, o.couid, "1", str(o.page_size), str(page)]
        params = {
            "ts": ts,
            "rs": rs,
            "signature": sign(values),
            "couid": o.couid,
            "type": "1",
            "page_size": str(o.page_size),
            "page": str(page),
        }
        url = f"{self.base_url}/api/company/received_complaints"
        text = self._get(client, url, params)
        if _looks_like_login(text):
            raise SourceBlocked(self.source.name, url, "answered a login page instead of JSON")
        try:
            data = json.loads(unwrap_jsonp(text))
        except json.JSONDecodeError:
            raise ParseError(self.source.name, url, "body is neither JSON nor JSONP") from None
        result = data.get("result", {}) if isinstance(data, dict) else {}
        code = result.get("status", {}).get("code")
        if code not in (0, "0"):
            raise FetchError(self.source.name, url, f"API status {code}: {result.get('status')}")
        payload = result.get("data") or {}
        items = payload.get("complaints") or []
        total = int((payload.get("pager") or {}).get("item_count") or 0)
        if not items and total > 0 and page == 1:
            raise SourceBlocked(
                self.source.name, url, f"empty list with item_count={total}: risk-control block"
            )
        return [i for i in items if isinstance(i, dict)], total

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        seen: set[str] = set()
        previous: tuple[str, str, str] | None = None
        for page in range(1, self.options.max_pages + 1):
            items, total = self.list_page(client, page)
            reached_known = False
            for item in items:
                main, author = item.get("main") or {}, item.get("author") or {}
                sn = text_id(main.get("sn")) if isinstance(main, dict) else ""  # never "None"
                if not sn or not isinstance(author, dict):
                    self.reject(item, "the complaint has no `main.sn` (or no `author` object)")
                    continue
                if (
                    self.url_id(sn, "sn") is None
                ):  # it goes into the detail URL: a path there is hostile
                    continue
                key = (
                    strip_html(str(main.get("title") or "")),
                    str(main.get("summary") or ""),
                    str(author.get("title") or ""),
                )
                if key == previous:  # the same complaint filed against another company
                    continue
                previous = key
                reached_known = reached_known or self.is_known(sn)
                seen.add(sn)
                if (post := self.complaint(client, {**main, "sn": sn}, author)) is not None:
                    yield post
            if not items or page * self.options.page_size >= total:
                break
            if self.stop_at_known and reached_known:
                break
        for sn in self.revisit:  # open complaints not on the pages read: their pages tell
            if sn in seen or self.url_id(sn, "stored sn") is None:
                continue
            if (post := self.complaint(client, {"sn": sn}, {})) is not None:
                yield post

    def complaint(
        self, client: HttpClient, main: dict[str, Any], author: dict[str, Any]
    ) -> RawPost | None:
        """The complaint with its page; None when its fields cannot be read (rejected).

        The page's own failures (the network, a block, a changed layout) end the run.
        """
        sn = str(main["sn"])
        url = f"{self.base_url}/complaint/view/{sn}/"
        detail = self.detail(client, url) if self.options.details else {}
        parse = partial(self._post, sn, url, main, author, detail)
        return self.read_item({"main": main, "author": author}, parse, sn)

    def _post(
        self,
        sn: str,
        url: str,
        main: dict[str, Any],
        author: dict[str, Any],
        detail: dict[str, Any],
    ) -> RawPost:
        status = detail.get("status") or STATUS_WORDS.get(_int(main.get("status")), "未知")
        evaluation = main.get("evaluate_u") or {}
        satisfaction = detail.get("satisfaction") or _int(evaluation.get("satisfaction")) or None
        published = (
            datetime.fromtimestamp(int(main["timestamp"]), UTC)
            if main.get("timestamp")
            else detail.get("filed_at")
        )
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=sn,
            url=url,
            author=str(author.get("title") or detail.get("author") or ""),
            title=strip_html(main.get("title") or detail.get("title") or ""),
            body=detail.get("text") or main.get("summary") or "",
            rating=None,
            app_version=None,
            published_at=published,
            extra={
                "company": main.get("cotitle") or detail.get("company"),
                "issue": main.get("issue") or detail.get("issue"),
                "collective": bool(detail.get("collective")),
            },
            platform=PlatformState(
                status=status,
                final=status in FINAL,
                resolved=status == "已完成",
                appeal=main.get("appeal") or detail.get("appeal"),
                amount=_amount(main.get("cost") or detail.get("amount")),
                replied_at=detail.get("replied_at"),
                completed_at=detail.get("completed_at"),
                satisfaction=satisfaction if satisfaction and 1 <= satisfaction <= 5 else None,
            ),
        )

    def detail(self, client: HttpClient, url: str) -> dict[str, Any]:
        html = self._get(client, url)
        soup = BeautifulSoup(html, "html.parser")
        h1 = soup.select_one("h1.article")
        if h1 is None:
            if "登录" in html[:5000]:
                raise SourceBlocked(self.source.name, url, "the complaint page asks to log in")
            raise ParseError(self.source.name, url, "no h1.article: the page layout changed")
        out: dict[str, Any] = {"title": h1.get_text(strip=True)}
        labels = {
            "投诉编号": "sn",
            "投诉对象": "company",
            "投诉问题": "issue",
            "投诉要求": "appeal",
            "涉诉金额": "amount",
            "投诉进度": "status",
        }
        for li in soup.select("ul.ts-q-list li"):
            label = li.find("label")
            if label is None:
                continue
            name = labels.get(label.get_text(strip=True).rstrip("：:"))
            if name is None:
                continue
            bold = li.find("b")
            label.extract()
            out[name] = (
                bold.get_text(strip=True)
                if bold and name == "status"
                else li.get_text(" ", strip=True)
            )
        for item in soup.select("div.ts-d-steplist div.ts-d-item"):
            status = item.select_one("span.u-status")
            when = item.select_one("span.u-date")
            text = " ".join(p.get_text(" ", strip=True) for p in item.select("div.ts-d-cont p"))
            word = status.get_text(strip=True) if status else ""
            at = _local_time(when.get_text(strip=True)) if when else None
            if word == "发起投诉":
                out.setdefault("text", text)
                out.setdefault("filed_at", at)
            elif word == "商家已回复" and at is not None:
                out.setdefault("replied_at", at)
            elif word == "投诉已完成" and at is not None:
                out["completed_at"] = at
        stars = soup.select("div.ts-d-pj i[class*=star]")
        if stars:
            found = [
                int(m.group(1))
                for i in stars
                for c in (i.get_attribute_list("class") or [])
                if (m := _STAR.fullmatch(str(c)))
            ]
            if found:
                out["satisfaction"] = found[-1]  # 服务态度, 处理速度, 满意度: the last one
        out["collective"] = soup.find("a", href=re.compile(r"/grp_comp/view/G")) is not None
        return out


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _amount(value: object) -> float | None:
    text = str(value or "").replace("元", "").replace(",", "").strip()
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _local_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=SHANGHAI).astimezone(UTC)
        except ValueError:
            continue
    return None
