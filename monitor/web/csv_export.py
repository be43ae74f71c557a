"""/cases.csv: the board's rows as a spreadsheet, masked and formula-safe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.classify.pii import mask_pii
from monitor.web.board import BoardRow

COLUMNS = (
    ("id", "工单"),
    ("grade", "分级"),
    ("state", "状态"),
    ("title", "标题"),
    ("sources", "来源"),
    ("categories", "类别"),
    ("owner", "负责人"),
    ("opened_at", "开单时间"),
    ("ack_due", "确认时限"),
    ("response_due", "首次回应时限"),
    ("resolve_due", "解决时限"),
    ("next_deadline", "下一时限"),
    ("next_due", "下一时限时间"),
    ("overdue", "已超时"),
    ("acknowledged_at", "确认时间"),
    ("first_response_at", "首次回应时间"),
    ("resolved_at", "解决时间"),
    ("public_reply_url", "公开回复链接"),
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows and never evaluates (scraped titles are hostile)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cases_csv(rows: Iterable[BoardRow], names: dict[str, str], tz: ZoneInfo) -> str:
    def when(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat(timespec="minutes") if value else ""

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in COLUMNS])
    for row in rows:
        case = row.case
        values = {
            "id": case.id,
            "grade": case.severity,
            "state": case.state,
            "title": mask_pii(case.title),
            "sources": ";".join(row.sources),
            "categories": ";".join(row.categories),
            "owner": names.get(case.owner or "", case.owner or ""),
            "opened_at": when(case.opened_at),
            "ack_due": when(case.ack_due),
            "response_due": when(case.response_due),
            "resolve_due": when(case.resolve_due),
            "next_deadline": row.next_kind or "",
            "next_due": when(row.next_due),
            "overdue": "是" if row.overdue else "",
            "acknowledged_at": when(case.acknowledged_at),
            "first_response_at": when(case.first_response_at),
            "resolved_at": when(case.resolved_at),
            "public_reply_url": case.public_reply_url or "",
        }
        writer.writerow([safe_cell(values[key]) for key, _ in COLUMNS])
    return "\ufeff" + out.getvalue()  # BOM: Excel opens UTF-8 as UTF-8
