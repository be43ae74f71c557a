"""`koubei report`: compute, write, and (optionally) post a period's report to Slack."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.domain import AlertKind, InlineStyle, Notice, Severity, render_inline
from monitor.reports.figures import compute
from monitor.reports.period import Period
from monitor.reports.render import Written, summary_text, write_report
from monitor.store.notices import enqueue


@dataclass(frozen=True)
class ReportResult:
    period: Period
    written: Written
    summary: str  # notice text: the title marked bold (monitor.domain.strong)
    empty: bool

    def summary_for_terminal(self) -> str:
        """The summary as `koubei report` prints it: bold written *…*, as before."""
        notice = Notice(kind=AlertKind.DIGEST, dedup_key="", route="", headline=self.summary)
        style = InlineStyle(
            escape=lambda s: s,
            mention=lambda m: f"@{m.person or m.role or ''}",
            link=lambda x: f"{x.label} {x.url}",
            bold=("*", "*"),
        )
        return render_inline(self.summary, notice, style)


def make_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    now: datetime,
    *,
    public: bool = False,
    out_root: Path | None = None,
) -> ReportResult:
    current = compute(engine, settings, period, now)
    previous = compute(engine, settings, period.previous(), now)
    out_dir = (out_root or Path(settings.app.reports.out_dir)) / period.key
    written = write_report(out_dir, current, previous, public=public, generated=now)
    s = current["summary"]
    return ReportResult(
        period,
        written,
        summary_text(current, previous, public),
        empty=s["cases"] == 0 and s["posts_collected"] == 0,
    )


def queue_report_post(
    engine: Engine, settings: Settings, result: ReportResult, now: datetime
) -> bool:
    """Queue the summary with the PDF attached for the executives' channel (once per file)."""
    pdf = result.written.pdf
    with Session(engine) as session, session.begin():
        notice = Notice(
            kind=AlertKind.DIGEST,
            dedup_key=f"report:{result.period.key}:{pdf.name}",
            route=settings.app.reports.channel,
            headline=result.summary,
            grade=Severity.P4,
            file=str(pdf.resolve()),
        )
        alert = enqueue(session, settings, notice, now, method="file")
    return alert is not None
