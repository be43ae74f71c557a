"""Every figure of the report, each defined once, here (DESIGN.md, "Report figures").

docs/report-figures.md explains these rules with a worked example. Period =
[start, end) in Asia/Shanghai; "as of" = the end of the period, or now for a
period not over yet (a partial period, labelled 截至 … 本期未结束). A period
that has not begun is refused.

One rule places everything in a period: **a case belongs to the period its
complaint was filed in**, and its response, resolution and rating are counted
with it there, as they stood "as of". The filing time is the platform's own:
the publish time of the case's earliest post (or when Koubei opened the case,
if that is earlier). Posts belong to the period they were published in, so a
period's cases always come from its own posts. A complaint found late (a
backfill) joins the period it was filed in.

- Complaints (投诉量): cases filed in the period, P1-P3 (one case per complaint,
  duplicates and reposts merged into it), false positives excluded. Posts: the
  posts behind those cases; posts collected: posts published in the period.
- Response rate (响应率): cases with a first response as of end / cases. A first
  response is the platform's reply time or the recorded public reply
  (first_response_at), or the resolution if that came first.
- Handling rate (办结率): cases resolved as of end / cases. A case reopened and
  not resolved again by the end is not resolved.
- On-time rate (按时办结率): resolved as of end and by its resolve deadline / cases.
- 15-day rate (15日办结率): resolved as of end within 15 days of filing / cases.
- Durations (首次响应/办结时长): from filing to the first response / resolution,
  in hours (mean, median, 90th percentile by nearest rank). A platform time
  before the filing time (clock skew) counts as 0 and is counted in `clamped`.
- SLA compliance per grade: each deadline (acknowledge, first response,
  resolve; clocks start when Koubei opened the case) is met, missed, or open
  (未到期: not done and not yet due). A case is met when all its deadlines are
  met, breached when any is missed, open otherwise; rate = met / (met + breached).
- Satisfaction (满意度): of the period's cases resolved as of end with a rating,
  the share with 4-5 stars; no rated case -> None (无评价).
- App-store rating: average and share of 4-5 stars of the period's app-store posts.
- Monitoring start: the first collection run of any source. A previous period
  that ended before monitoring began has no comparison (无可比数据); a source
  whose first run fell inside the period is shown as 监测自 …, and its coverage
  gap is measured from that run.
Rates with nothing to divide are None ("—"), never a division by zero.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from monitor.classify.pii import mask_pii
from monitor.config import Settings
from monitor.domain import CaseState
from monitor.followups import CHANNEL_LABELS, CHANNELS, reached_by, satisfaction_by_channel
from monitor.reports.period import SHANGHAI, Period, refuse_future
from monitor.store.sql import latest_verdict_only
from monitor.store.tables import (
    CaseEventRow,
    CaseRow,
    PostRow,
    SourceRunRow,
    VerdictRow,
)

FIFTEEN_DAYS = timedelta(days=15)
SATISFIED_AT_LEAST = 4
GRADES = ("P1", "P2", "P3")
DEADLINES = ("确认", "首次回应", "解决")


@dataclass
class CaseFacts:
    """One case as of the end of the period: a row of cases.csv."""

    case_id: int
    grade: str
    filed_at: datetime
    opened_at: datetime
    state: str
    owner: str | None
    source: str
    sources: list[str]
    categories: list[str]
    posts: int
    app_version: str
    title: str
    acknowledged_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    ack_due: datetime | None
    response_due: datetime | None
    resolve_due: datetime | None
    satisfaction: int | None
    resolution_note: str | None
    deadlines: dict[str, str] = field(default_factory=dict)  # name -> met | missed | open
    # channel (followup, platform, resolve) -> the customer's satisfaction it recorded
    satisfaction_by: dict[str, int] = field(default_factory=dict)
    followup_due_at: datetime | None = None  # 回访 due by the end of the period
    followed_up_at: datetime | None = None  # the customer first reached

    @property
    def breaches(self) -> list[str]:
        return [name for name, status in self.deadlines.items() if status == "missed"]

    @property
    def open_deadlines(self) -> list[str]:
        return [name for name, status in self.deadlines.items() if status == "open"]

    @property
    def sla(self) -> str:
        """met, breached, or open (a deadline still running and none missed)."""
        if self.breaches:
            return "breached"
        return "open" if self.open_deadlines else "met"

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def on_time(self) -> bool:
        return self.resolved_at is not None and (
            self.resolve_due is None or self.resolved_at <= self.resolve_due
        )

    @property
    def within_15_days(self) -> bool:
        return self.resolved_at is not None and self.resolved_at - self.filed_at <= FIFTEEN_DAYS


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def durations(values: list[timedelta]) -> dict[str, float | int | None]:
    """Hours; a negative span (a platform clock ahead of the filing time) counts as 0."""
    clamped = sum(1 for v in values if v < timedelta(0))
    hours = sorted(max(0.0, v.total_seconds() / 3600) for v in values)
    if not hours:
        return {"count": 0, "mean_h": None, "median_h": None, "p90_h": None, "clamped": 0}
    p90 = hours[max(0, math.ceil(0.9 * len(hours)) - 1)]  # nearest rank
    return {
        "count": len(hours),
        "mean_h": round(statistics.fmean(hours), 2),
        "median_h": round(statistics.median(hours), 2),
        "p90_h": round(p90, 2),
        "clamped": clamped,
    }


# --- the queries ----------------------------------------------------------------------


def cohort(
    session: Session, period: Period, as_of: datetime, settings: Settings | None = None
) -> list[CaseFacts]:
    """Cases filed in the period (not false positives), as they stood at `as_of`.

    A case filed in the period either opened in it or has its earliest post
    published in it, so those two sets hold every candidate; the filing time
    itself is then computed from the posts.
    """
    in_period = (col(CaseRow.opened_at) >= period.start) & (col(CaseRow.opened_at) < period.end)
    posted = select(col(PostRow.case_id)).where(
        col(PostRow.case_id).is_not(None),
        col(PostRow.published_at) >= period.start,
        col(PostRow.published_at) < period.end,
    )
    cases = (
        session.execute(
            select(CaseRow)
            .where(
                in_period | col(CaseRow.id).in_(posted),
                col(CaseRow.state) != CaseState.FALSE_POSITIVE.value,
                col(CaseRow.severity).in_(GRADES),
            )
            .order_by(col(CaseRow.id))
        )
        .scalars()
        .all()
    )
    facts = case_facts(session, list(cases), as_of, settings)
    mine = [f for f in facts if period.start <= f.filed_at < period.end]
    return sorted(mine, key=lambda f: (f.filed_at, f.case_id))


def case_facts(
    session: Session, cases: list[CaseRow], end: datetime, settings: Settings | None = None
) -> list[CaseFacts]:
    """What each case looked like at `end`."""
    ids = [c.id for c in cases if c.id is not None]
    resolved_at = _resolved_as_of(session, ids, end)
    posts = _posts_of(session, ids)
    channels = satisfaction_by_channel(session, ids, end)
    reached = reached_by(session, ids, end)
    facts = []
    for case in cases:
        assert case.id is not None
        case_posts = posts.get(case.id, [])
        resolved = resolved_at.get(case.id)
        first_response = _before(case.first_response_at, end)
        if first_response is None or (resolved is not None and resolved < first_response):
            first_response = resolved
        acknowledged = _before(case.acknowledged_at, end)
        fact = CaseFacts(
            case_id=case.id,
            grade=case.severity,
            filed_at=min([case.opened_at, *(p.published_at for p, _ in case_posts)]),
            opened_at=case.opened_at,
            state="resolved" if resolved else ("acknowledged" if acknowledged else "open"),
            owner=case.owner,
            source=case.source,
            sources=sorted({p.source for p, _ in case_posts}) or [case.source],
            categories=sorted({c for _, v in case_posts for c in v.categories}) or ["other"],
            posts=len(case_posts),
            app_version=next((p.app_version for p, _ in case_posts if p.app_version), "—"),
            title=mask_pii(case.title),
            acknowledged_at=acknowledged,
            first_response_at=first_response,
            resolved_at=resolved,
            ack_due=case.ack_due,
            response_due=case.response_due,
            resolve_due=case.resolve_due,
            satisfaction=_satisfaction(case, channels.get(case.id, {})) if resolved else None,
            resolution_note=(
                mask_pii(case.resolution_note) if resolved and case.resolution_note else None
            ),
        )
        fact.deadlines = _deadlines(fact, end)
        if resolved:
            fact.satisfaction_by = channels.get(case.id, {})
            days = _followup_days(settings, case.severity)
            due = None if days is None else resolved + timedelta(days=days)
            fact.followup_due_at = due if due is not None and due <= end else None
            fact.followed_up_at = reached.get(case.id)
        facts.append(fact)
    return facts


def _satisfaction(case: CaseRow, by_channel: dict[str, int]) -> int | None:
    """The follow-up's answer first, then the platform's rating, then the agent's entry."""
    for channel in CHANNELS:
        if channel in by_channel:
            return by_channel[channel]
    return case.satisfaction


def _followup_days(settings: Settings | None, grade: str) -> float | None:
    if settings is None or grade not in settings.policy.grades:
        return None
    return settings.policy.grades[grade].followup_days


def _before(value: datetime | None, end: datetime) -> datetime | None:
    return value if value is not None and value < end else None


def _resolved_as_of(session: Session, case_ids: list[int], end: datetime) -> dict[int, datetime]:
    """The resolution standing at `end`: the last resolved event not followed by a reopen."""
    events = session.execute(
        select(col(CaseEventRow.case_id), col(CaseEventRow.kind), col(CaseEventRow.at))
        .where(
            col(CaseEventRow.case_id).in_(case_ids),
            col(CaseEventRow.kind).in_(["resolved", "reopened"]),
            col(CaseEventRow.at) < end,
        )
        .order_by(col(CaseEventRow.at), col(CaseEventRow.id))
    ).all()
    standing: dict[int, datetime] = {}
    for case_id, kind, at in events:
        if kind == "resolved":
            standing[case_id] = at
        else:
            standing.pop(case_id, None)
    return standing


def _posts_of(session: Session, case_ids: list[int]) -> dict[int, list[tuple[PostRow, VerdictRow]]]:
    rows = session.execute(
        select(PostRow, VerdictRow)
        .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
        .where(col(PostRow.case_id).in_(case_ids), latest_verdict_only())
        .order_by(col(PostRow.id))
    ).all()
    out: dict[int, list[tuple[PostRow, VerdictRow]]] = defaultdict(list)
    for post, verdict in rows:
        assert post.case_id is not None
        out[post.case_id].append((post, verdict))
    return out


def _deadlines(fact: CaseFacts, end: datetime) -> dict[str, str]:
    """Each deadline at `end`: met (done by its due time), missed (done late, or not
    done and already past), open (not done and still running)."""
    out = {}
    for name, due, done in zip(
        DEADLINES,
        (fact.ack_due, fact.response_due, fact.resolve_due),
        (fact.acknowledged_at or fact.resolved_at, fact.first_response_at, fact.resolved_at),
        strict=True,
    ):
        if due is None:
            continue
        if done is not None:
            out[name] = "met" if done <= due else "missed"
        else:
            out[name] = "missed" if due < end else "open"
    return out


def period_posts(session: Session, period: Period) -> list[tuple[PostRow, VerdictRow]]:
    """Posts published in the period, each with its latest verdict."""
    rows = session.execute(
        select(PostRow, VerdictRow)
        .join(VerdictRow, col(VerdictRow.post_id) == col(PostRow.id))
        .where(
            col(PostRow.published_at) >= period.start,
            col(PostRow.published_at) < period.end,
            latest_verdict_only(),
        )
        .order_by(col(PostRow.published_at))
    ).all()
    return [(p, v) for p, v in rows]


def source_runs(session: Session, period: Period) -> list[SourceRunRow]:
    """Collection runs started in the period."""
    rows = session.execute(
        select(SourceRunRow)
        .where(
            col(SourceRunRow.started_at) >= period.start,
            col(SourceRunRow.started_at) < period.end,
        )
        .order_by(col(SourceRunRow.started_at))
    ).scalars()
    return list(rows.all())


def first_runs(session: Session, as_of: datetime) -> dict[str, datetime]:
    """Each source's first collection run before `as_of`: when its monitoring began."""
    rows = session.execute(
        select(col(SourceRunRow.source), func.min(col(SourceRunRow.started_at)))
        .where(col(SourceRunRow.started_at) < as_of)
        .group_by(col(SourceRunRow.source))
    ).all()
    return {source: started for source, started in rows if started is not None}


# --- the figures ----------------------------------------------------------------------


def compute(engine: Engine, settings: Settings, period: Period, now: datetime) -> dict[str, Any]:
    """All figures; a period not over yet is reported as it stands `now`."""
    refuse_future(period, now)
    as_of = min(period.end, now)
    with Session(engine) as session:
        cases = cohort(session, period, as_of, settings)
        posts = period_posts(session, period)
        runs = source_runs(session, period)
        started = first_runs(session, as_of)
    monitoring_start = min(started.values(), default=None)
    return {
        "period": {
            "key": period.key,
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": "Asia/Shanghai",
            "as_of": as_of.isoformat(),
            "partial": as_of < period.end,
        },
        "monitoring": {
            "started_at": monitoring_start.isoformat() if monitoring_start else None,
            "monitored": monitoring_start is not None,
            "began_in_period": monitoring_start is not None and monitoring_start > period.start,
        },
        "summary": summary(cases, posts),
        "by_grade": dict(Counter(c.grade for c in cases)),
        "by_category": dict(Counter(cat for c in cases for cat in c.categories).most_common()),
        "by_source": dict(Counter(c.source for c in cases).most_common()),
        "sla": sla_by_grade(cases),
        "response_time": durations(
            [c.first_response_at - c.filed_at for c in cases if c.first_response_at]
        ),
        "resolution_time": durations([c.resolved_at - c.filed_at for c in cases if c.resolved_at]),
        "satisfaction": satisfaction(cases),
        "ratings": ratings(posts),
        "daily": daily(period, posts),
        "top_causes": top_causes(cases, posts),
        "actions": [
            {"case_id": c.case_id, "grade": c.grade, "note": c.resolution_note}
            for c in cases
            if c.resolution_note
        ],
        "source_health": source_health(settings, period, runs, started, as_of),
        "cases": cases,
    }


def summary(cases: list[CaseFacts], posts: list[tuple[PostRow, VerdictRow]]) -> dict[str, Any]:
    n = len(cases)
    rated = [c for c in cases if c.satisfaction is not None]
    return {
        "cases": n,
        "case_posts": sum(c.posts for c in cases),
        "posts_collected": len(posts),
        "negative_posts": sum(1 for _, v in posts if v.sentiment == "negative"),
        "responded": sum(1 for c in cases if c.first_response_at),
        "response_rate": rate(sum(1 for c in cases if c.first_response_at), n),
        "resolved": sum(1 for c in cases if c.resolved),
        "handling_rate": rate(sum(1 for c in cases if c.resolved), n),
        "on_time_rate": rate(sum(1 for c in cases if c.on_time), n),
        "fifteen_day_rate": rate(sum(1 for c in cases if c.within_15_days), n),
        "followup_due": len(due := [c for c in cases if c.followup_due_at is not None]),
        "followed_up": sum(1 for c in due if c.followed_up_at is not None),
        "followup_rate": rate(sum(1 for c in due if c.followed_up_at is not None), len(due)),
        "rated": len(rated),
        "satisfaction_rate": rate(
            sum(1 for c in rated if (c.satisfaction or 0) >= SATISFIED_AT_LEAST), len(rated)
        ),
    }


def sla_by_grade(cases: list[CaseFacts]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for grade in GRADES:
        of_grade = [c for c in cases if c.grade == grade]
        met = sum(1 for c in of_grade if c.sla == "met")
        breached = sum(1 for c in of_grade if c.sla == "breached")
        out[grade] = {
            "cases": len(of_grade),
            "met": met,
            "breached": breached,
            "open": len(of_grade) - met - breached,
            "rate": rate(met, met + breached),
            "breaches": [
                {"case_id": c.case_id, "missed": c.breaches} for c in of_grade if c.breaches
            ],
        }
    return out


def satisfaction(cases: list[CaseFacts]) -> dict[str, Any]:
    def block(of: list[CaseFacts]) -> dict[str, Any]:
        rated = [c for c in of if c.satisfaction is not None]
        good = sum(1 for c in rated if (c.satisfaction or 0) >= SATISFIED_AT_LEAST)
        return {"rated": len(rated), "satisfied": good, "rate": rate(good, len(rated))}

    resolved = [c for c in cases if c.resolved]
    by_source: dict[str, list[CaseFacts]] = defaultdict(list)
    by_version: dict[str, list[CaseFacts]] = defaultdict(list)
    for c in resolved:
        by_source[c.source].append(c)
        by_version[c.app_version].append(c)

    def channel(name: str) -> dict[str, Any]:
        rated = [c.satisfaction_by[name] for c in resolved if name in c.satisfaction_by]
        good = sum(1 for score in rated if score >= SATISFIED_AT_LEAST)
        return {
            "label": CHANNEL_LABELS[name],
            "rated": len(rated),
            "satisfied": good,
            "rate": rate(good, len(rated)),
        }

    return {
        "all": block(resolved),
        "by_channel": {name: channel(name) for name in CHANNELS},
        "by_source": {k: block(v) for k, v in sorted(by_source.items())},
        "by_app_version": {k: block(v) for k, v in sorted(by_version.items())},
    }


def ratings(posts: list[tuple[PostRow, VerdictRow]]) -> dict[str, Any]:
    def block(rows: list[PostRow]) -> dict[str, Any]:
        stars = [p.rating for p in rows if p.rating is not None]
        return {
            "count": len(stars),
            "average": round(statistics.fmean(stars), 2) if stars else None,
            "share_4_5": rate(sum(1 for s in stars if s >= 4), len(stars)),
        }

    rated = [p for p, _ in posts if p.rating is not None]
    by_source: dict[str, list[PostRow]] = defaultdict(list)
    by_version: dict[str, list[PostRow]] = defaultdict(list)
    for p in rated:
        by_source[p.source].append(p)
        by_version[p.app_version or "—"].append(p)
    return {
        "all": block(rated),
        "by_source": {k: block(v) for k, v in sorted(by_source.items())},
        "by_app_version": {k: block(v) for k, v in sorted(by_version.items())},
    }


def daily(period: Period, posts: list[tuple[PostRow, VerdictRow]]) -> list[dict[str, Any]]:
    per_day: dict[str, list[VerdictRow]] = {d.isoformat(): [] for d in period.days}
    stars: dict[str, list[int]] = defaultdict(list)
    for post, verdict in posts:
        day = post.published_at.astimezone(SHANGHAI).date().isoformat()
        per_day.setdefault(day, []).append(verdict)
        if post.rating is not None:
            stars[day].append(post.rating)
    return [
        {
            "day": day,
            "posts": len(vs),
            "negative_share": rate(sum(1 for v in vs if v.sentiment == "negative"), len(vs)),
            "average_rating": round(statistics.fmean(stars[day]), 2) if stars[day] else None,
        }
        for day, vs in sorted(per_day.items())
    ]


def top_causes(
    cases: list[CaseFacts], posts: list[tuple[PostRow, VerdictRow]], limit: int = 5
) -> list[dict[str, Any]]:
    counts = Counter(cat for c in cases for cat in c.categories)
    by_case = {c.case_id for c in cases}
    out = []
    for category, count in counts.most_common(limit):
        examples = [
            mask_pii(p.title + "：" + p.body if p.title else p.body)[:120]
            for p, v in posts
            if p.case_id in by_case and category in v.categories
        ][:2]
        out.append({"category": category, "cases": count, "examples": examples})
    return out


def source_health(
    settings: Settings,
    period: Period,
    runs: list[SourceRunRow],
    started: dict[str, datetime],
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Per source: runs, failures, and the longest stretch without a successful run.

    The stretch is measured from when the source's monitoring began (its first run)
    if that fell inside the period: the time before it is not a coverage gap.
    """
    began = min(started.values(), default=None)
    out = []
    for source in settings.app.sources:
        mine = [r for r in runs if r.source == source.name]
        good = [r.started_at for r in mine if r.status in ("ok", "unchanged")]
        first = started.get(source.name)
        if first is None:
            # Never run: a gap only while monitoring is on for the other sources.
            from_ = max(period.start, began) if began and source.enabled else as_of
        else:
            from_ = max(period.start, first)
        ok_times = [from_, *good, as_of]
        longest = max((b - a for a, b in itertools.pairwise(ok_times)), default=timedelta(0))
        allowed = timedelta(minutes=source.interval_minutes * 2)
        out.append(
            {
                "source": source.name,
                "monitored_from": (
                    first.isoformat() if first is not None and first > period.start else None
                ),
                "monitored": first is not None,
                "runs": len(mine),
                "ok": len(good),
                "failed": sum(1 for r in mine if r.status in ("failed", "partial")),
                "fetched": sum(r.fetched for r in mine),
                "longest_gap_h": round(longest.total_seconds() / 3600, 1),
                "gap": longest > allowed,
            }
        )
    return out


PUBLIC_SUMMARY = (
    "cases",
    "responded",
    "response_rate",
    "resolved",
    "handling_rate",
    "fifteen_day_rate",
    "rated",
    "satisfaction_rate",
    "followup_due",
    "followed_up",
    "followup_rate",
)


def public_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """What a regulator's disclosure shows: volume, response, handling and satisfaction
    rates, by category. No grades, sources, deadlines, cases or collection details."""
    return {
        "period": figures["period"],
        "monitoring": {"started_at": figures["monitoring"]["started_at"]},
        "summary": {k: figures["summary"][k] for k in PUBLIC_SUMMARY},
        "by_category": figures["by_category"],
        "response_time": figures["response_time"],
        "resolution_time": figures["resolution_time"],
        "satisfaction": {"all": figures["satisfaction"]["all"]},
    }


def jsonable(figures: dict[str, Any], public: bool = False) -> dict[str, Any]:
    """The figures as JSON; the public version keeps the disclosure's aggregates only."""
    if public:
        return public_figures(figures)
    out = {k: v for k, v in figures.items() if k != "cases"}
    out["cases"] = [_case_json(c) for c in figures["cases"]]
    return out


def _case_json(c: CaseFacts) -> dict[str, Any]:
    row = asdict(c)
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.astimezone(SHANGHAI).isoformat()
    row.update(
        resolved=c.resolved,
        on_time=c.on_time,
        within_15_days=c.within_15_days,
        sla=c.sla,
        breaches=c.breaches,
        open_deadlines=c.open_deadlines,
    )
    return row
