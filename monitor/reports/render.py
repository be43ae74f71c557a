"""Writing a report: HTML (self-contained, charts inline), PDF, the case list CSV, figures JSON."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.domain import strong
from monitor.notices import CATEGORY_LABELS
from monitor.reports import charts
from monitor.reports.figures import jsonable
from monitor.reports.period import SHANGHAI

KPIS = (
    ("cases", "投诉工单", "count"),
    ("handling_rate", "办结率", "rate"),
    ("on_time_rate", "按时办结率", "rate"),
    ("fifteen_day_rate", "15日办结率", "rate"),
    ("response_rate", "响应率", "rate"),
    ("satisfaction_rate", "满意度", "rate"),
    ("followup_rate", "回访率", "rate"),
)
PUBLIC_KPIS = (
    "cases",
    "handling_rate",
    "fifteen_day_rate",
    "response_rate",
    "satisfaction_rate",
    "followup_rate",
)
NO_COMPARISON = "无可比数据"
NO_RATING = "无评价"
NO_FOLLOWUP = "无应回访工单"
CSV_FIELDS = (
    "case_id",
    "grade",
    "filed_at",
    "opened_at",
    "state",
    "owner",
    "source",
    "sources",
    "categories",
    "posts",
    "title",
    "acknowledged_at",
    "first_response_at",
    "resolved_at",
    "ack_due",
    "response_due",
    "resolve_due",
    "resolved",
    "on_time",
    "within_15_days",
    "satisfaction",
    "sla",
    "breaches",
    "open_deadlines",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell as text a spreadsheet shows and never evaluates (scraped titles are hostile)."""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def change(now: float | int | None, before: float | int | None, kind: str) -> str:
    if now is None or before is None:
        return "—"
    if kind == "rate":
        return f"{(now - before) * 100:+.1f} 个百分点"
    if before == 0:
        return f"{now - before:+d}" if isinstance(now, int) and isinstance(before, int) else "—"
    return f"{now - before:+g}（{(now - before) / before * 100:+.0f}%）"


@dataclass(frozen=True)
class Written:
    html: Path
    pdf: Path
    figures: Path
    csv: Path | None


def comparable(previous: dict[str, Any]) -> bool:
    """A previous period with no collection run before its end was not monitored."""
    return bool(previous["monitoring"]["monitored"])


def kpis(
    current: dict[str, Any], previous: dict[str, Any], public: bool = False
) -> list[dict[str, str]]:
    out = []
    for key, label, kind in KPIS:
        if public and key not in PUBLIC_KPIS:
            continue
        value = current["summary"][key]
        if kind == "count":
            shown = str(value)
        elif key == "satisfaction_rate" and value is None:
            shown = NO_RATING
        elif key == "followup_rate" and value is None:
            shown = NO_FOLLOWUP
        else:
            shown = pct(value)
        before = previous["summary"][key]
        out.append(
            {
                "key": key,
                "label": label,
                "value": shown,
                "change": change(value, before, kind) if comparable(previous) else NO_COMPARISON,
            }
        )
    return out


def _local(iso: str | None) -> str:
    if iso is None:
        return "—"
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def write_report(
    out_dir: Path,
    current: dict[str, Any],
    previous: dict[str, Any],
    *,
    public: bool,
    generated: datetime,
) -> Written:
    from weasyprint import HTML  # heavy import, only when writing PDFs

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "report-public" if public else "report"
    data = jsonable(current, public=public)
    data["previous"] = {
        "key": previous["period"]["key"],
        "comparable": comparable(previous),
        "summary": jsonable(previous, public=public)["summary"],
    }
    figures_path = out_dir / ("figures-public.json" if public else "figures.json")
    figures_path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    env = Environment(
        loader=PackageLoader("monitor.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    period = dict(current["period"])
    period["start_local"] = _local(period["start"])
    period["end_local"] = _local(period["end"])
    period["as_of_local"] = _local(period["as_of"])
    summary = current["summary"]
    html = env.get_template("report.html.j2").render(
        f={**current, "period": period},
        public=public,
        empty=summary["cases"] == 0 and summary["posts_collected"] == 0,
        kpis=kpis(current, previous, public),
        comparable=comparable(previous),
        previous_label=previous["period"]["label"],
        monitoring_start=_local(current["monitoring"]["started_at"]),
        charts={
            "daily": charts.daily_chart(current["daily"]),
            "category": charts.bar_chart(
                "投诉分类",
                {CATEGORY_LABELS.get(k, k): v for k, v in current["by_category"].items()},
            ),
            "rating": charts.rating_chart(current["daily"]),
        },
        font=charts.cjk_font(),
        generated=generated.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        pct=pct,
        num=num,
        local=_local,
        satisfaction=lambda r: NO_RATING if r is None else pct(r),
        cat=lambda c: CATEGORY_LABELS.get(c, c),
    )
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = out_dir / f"{stem}.pdf"
    HTML(string=html, base_url=str(out_dir)).write_pdf(pdf_path)

    csv_path = None
    if not public:
        csv_path = out_dir / "cases.csv"
        with csv_path.open("w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel reads UTF-8
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for row in data["cases"]:
                writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return Written(html_path, pdf_path, figures_path, csv_path)


def summary_text(current: dict[str, Any], previous: dict[str, Any], public: bool) -> str:
    """The report's summary as notice text: its title marked bold, each sink writes it."""
    s = current["summary"]
    period = current["period"]
    title = strong(f"消费者权益保护报告 · {period['label']}") + ("（公开版）" if public else "")
    if period["partial"]:
        title += f"（截至 {_local(period['as_of'])}，本期未结束）"
    lines = [title]
    for k in kpis(current, previous, public):
        lines.append(f"• {k['label']}：{k['value']}（环比 {k['change']}）")
    monitoring = current["monitoring"]
    if not monitoring["monitored"]:
        lines.append("本期尚未开始监测：数字仅来自回溯采集，可能不完整。")
    elif monitoring["began_in_period"]:
        lines.append(f"监测自 {_local(monitoring['started_at'])} 起，此前的数字来自回溯采集。")
    gaps = [h["source"] for h in current["source_health"] if h["gap"]]
    if gaps and not public:
        lines.append(f"⚠️ 数据缺口：{', '.join(gaps)}，相关数字可能偏低")
    if s["cases"] == 0:
        lines.append("本期无投诉工单。")
    return "\n".join(lines)
