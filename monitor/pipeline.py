"""run_source: one source end to end (collect -> normalize -> store -> grade -> case -> alert).

Used alike by the scheduler, the CLI and the tests. A failing source never
raises out of here: its error is recorded on its run and its state, and the
posts fetched before the failure are kept. Whatever stops a run (a collector
bug, a payload nobody foresaw) records it as failed. An item that cannot become
a stored post is quarantined with its error, and the rest of the page is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from monitor.bursts import group_for
from monitor.case_actions import announce
from monitor.cases import CaseOutcome, apply_deadlines
from monitor.classify import Grader
from monitor.clock import Clock
from monitor.collectors import collector_class
from monitor.collectors.http import HttpClient
from monitor.config import Settings, SourceConfig
from monitor.domain import AlertKind, Post, RawPost, Rejected, Severity, Verdict
from monitor.errors import CollectorFailed, KoubeiError, SourceBlocked, describe
from monitor.health import evaluate
from monitor.normalize import clean_id, normalize
from monitor.notices import Said, case_notice, quiet_until
from monitor.page_store import PAGE, pages, store_page, store_strict
from monitor.page_writer import PageWriter
from monitor.redact import redact
from monitor.store.notices import case_told, enqueue
from monitor.store.quarantine import keep, release_stored
from monitor.store.sql import lock_source_state
from monitor.store.tables import (
    CaseEventRow,
    CaseRow,
    PostRow,
    SourceRunRow,
)

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a stage needs, injected: tests hand in fakes and a fixed clock."""

    settings: Settings
    engine: Engine
    http: HttpClient
    grader: Grader
    clock: Clock

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.app.timezone)


@dataclass
class RunResult:
    source: str
    fetched: int = 0
    new: int = 0
    edited: int = 0
    cases_opened: int = 0
    alerts: int = 0
    error: str | None = None
    blocked: bool = False
    status_changes: int = 0
    health: str | None = None  # the health alert this run raised, if any
    by_severity: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0  # items read that could not be stored: kept in quarantine

    @property
    def ok(self) -> bool:
        return self.error is None

    def absorb(self, part: RunResult) -> None:
        """Add the counts of one stored post (kept apart until its transaction committed)."""
        self.new += part.new
        self.edited += part.edited
        self.cases_opened += part.cases_opened
        self.alerts += part.alerts
        self.status_changes += part.status_changes
        for grade, n in part.by_severity.items():
            self.by_severity[grade] = self.by_severity.get(grade, 0) + n


def fetch_posts(
    http: HttpClient,
    clock: Clock,
    source: SourceConfig,
    *,
    is_known: Callable[[str], bool] = lambda _id: False,
    stop_at_known: bool = False,
    revisit: Sequence[str] = (),
    memory: dict[str, Any] | None = None,
    rejected: list[Rejected] | None = None,
) -> tuple[list[Post], KoubeiError | None]:
    """Fetch and normalise, newest first; the error (if any) comes back with what was read.

    Items that could not be read or normalised are left out and added to `rejected`.
    """
    raw: list[RawPost] = []
    error: KoubeiError | None = None
    bad = rejected if rejected is not None else []
    collector = None
    try:
        collector = collector_class(source.kind)(
            source, is_known=is_known, stop_at_known=stop_at_known, revisit=revisit, memory=memory
        )
        for item in collector.fetch(http):
            raw.append(item)
    except KoubeiError as exc:
        error = exc
    except Exception as exc:  # a collector bug or a payload nobody foresaw: a failed run
        error = CollectorFailed(source.name, exc)
    if collector is not None:
        bad.extend(collector.rejected)
    now = clock.now()
    posts = [p for r in raw if (p := normalized(r, now, bad)) is not None]
    return posts, error


def normalized(raw: RawPost, now: datetime, rejected: list[Rejected]) -> Post | None:
    """The normalised post, or None with the item added to `rejected`."""
    try:
        return normalize(raw, now)
    except Exception as exc:
        error = describe(exc, limit=500)
        rejected.append(Rejected(raw.source, raw.external_id or None, "normalize", error, raw))
        return None


def store_post(svc: Services, post: Post, result: RunResult, rejected: list[Rejected]) -> None:
    """process_post; a post the grader or the database refuses goes to `rejected`.

    The database being unreachable is not the post's fault: that fails the run,
    and the next run reads the post again.
    """
    store_page(svc, [post], result, rejected, _announce)


def page_writer(svc: Services, result: RunResult, rejected: list[Rejected]) -> PageWriter:
    """A writer for one run: pages go in as they are read, each graded while the one
    before it is stored, with one grade memo for the whole run."""
    return PageWriter(svc, result, rejected, _announce)


def store_posts(
    svc: Services, posts: Sequence[Post], result: RunResult, rejected: list[Rejected]
) -> None:
    """The posts in order, a page per transaction (page_store), each page graded in one batch
    while the page before it is stored (page_writer)."""
    with page_writer(svc, result, rejected) as writer:
        for page in pages(posts):
            writer.add(page)
        writer.finish()


def quarantine(svc: Services, source: str, rejected: list[Rejected]) -> int:
    """Keep the rejected items; returns how many are new to quarantine."""
    with Session(svc.engine) as session, session.begin():
        new = keep(session, rejected, svc.clock.now()) if rejected else 0
        release_stored(session, source)
    if rejected:
        log.warning(
            "%s: %d items quarantined (%d new), first: %s; `koubei quarantine` lists them",
            source,
            len(rejected),
            new,
            rejected[0].error,
        )
    return new


REVISIT_DAYS = 60  # complaint platforms settle most complaints well within two months


def open_complaints(engine: Engine, source: str, now: datetime) -> list[str]:
    """Complaints on this source not settled yet: the collector reads them again."""
    with Session(engine) as session:
        rows = session.execute(
            select(col(PostRow.external_id), col(PostRow.extra)).where(
                col(PostRow.source) == source,
                col(PostRow.platform_status).is_not(None),
                col(PostRow.published_at) >= now - timedelta(days=REVISIT_DAYS),
            )
        ).all()
    return [ext for ext, extra in rows if not (extra or {}).get("platform", {}).get("final")]


def _stored(engine: Engine, source: str) -> Callable[[str], bool]:
    def is_known(external_id: str) -> bool:
        try:  # the collector asks with the id as read; posts are stored under the clean one
            external_id = clean_id(external_id)
        except ValueError:
            return False
        with Session(engine) as session:
            row = session.execute(
                select(col(PostRow.id)).where(
                    col(PostRow.source) == source, col(PostRow.external_id) == external_id
                )
            ).first()
            return row is not None

    return is_known


def run_source(svc: Services, source: SourceConfig) -> RunResult:
    result = RunResult(source=source.name)
    started = svc.clock.now()
    with Session(svc.engine) as session, session.begin():
        state = lock_source_state(session, source.name)
        stop_at_known = state.last_run_complete
        memory = dict(state.memory or {})
        # Cleared until this run completes: a run killed part-way makes the next
        # one page back fully instead of stopping at what is already stored.
        state.last_run_complete = False
        run = SourceRunRow(source=source.name, started_at=started, status="running")
        session.add(run)
        session.flush()
        run_id = run.id

    rejected: list[Rejected] = []
    posts: list[Post] = []
    unchanged = False
    try:
        posts, error = fetch_posts(
            svc.http,
            svc.clock,
            source,
            is_known=_stored(svc.engine, source.name),
            stop_at_known=stop_at_known,
            revisit=open_complaints(svc.engine, source.name, svc.clock.now()),
            memory=memory,
            rejected=rejected,
        )
        # A 304 (conditional GET) says nothing changed: an empty run that is not a gap.
        unchanged = bool(memory.pop("unchanged", False))
        result.fetched = len(posts) + len(rejected)
        result.error = redact(str(error)) if error else None
        result.blocked = isinstance(error, SourceBlocked)
        # Oldest first, one transaction per page: an interrupted run leaves a stored
        # suffix of the feed, and the next run (paging back fully) fills the rest.
        store_posts(svc, posts[::-1], result, rejected)
    except Exception as exc:  # whatever stopped the run, it is recorded as failed
        result.error = redact(f"source {source.name!r}: the run stopped: {describe(exc)}")
    new_in_quarantine = 0
    try:
        new_in_quarantine = quarantine(svc, source.name, rejected)
    except Exception as exc:
        result.error = result.error or (
            f"source {source.name!r}: could not quarantine {len(rejected)} items: {describe(exc)}"
        )
    result.quarantined = len(rejected)

    finished = svc.clock.now()
    with Session(svc.engine) as session, session.begin():
        state = lock_source_state(session, source.name)
        run = session.get_one(SourceRunRow, run_id)
        run.finished_at = finished
        run.fetched, run.new, run.updated = result.fetched, result.new, result.edited
        state.memory = memory
        run.status = (
            ("unchanged" if unchanged else "ok")
            if result.ok
            else ("blocked" if result.blocked else ("partial" if posts else "failed"))
        )
        run.error = result.error
        state.last_run_at = finished
        state.last_run_complete = result.ok
        if result.ok:
            state.last_success_at = finished
            state.consecutive_failures = 0
            state.last_error = None
        else:
            state.consecutive_failures += 1
            state.last_error = result.error
        result.health = evaluate(
            session,
            svc.settings,
            state,
            run,
            blocked=result.blocked,
            now=finished,
            quarantined=new_in_quarantine,
        )
    if result.error:
        log.error("%s", result.error)
    return result


def backfill(
    svc: Services,
    source: SourceConfig,
    since: datetime,
    progress: Callable[[Post], None] = lambda _post: None,
) -> RunResult:
    """Walk back through the source's history to `since`, storing as it goes.

    Posts are stored a page per transaction as they are read, so an interrupted
    backfill loses at most the page in hand, which is read again when it is run
    again (posts already stored are skipped cheaply). The oldest point reached is
    kept in source_state.memory.
    """
    result = RunResult(source=source.name)
    with Session(svc.engine) as session, session.begin():
        state = lock_source_state(session, source.name)
        state.last_run_complete = False  # the next scheduled run pages back fully
        memory = dict(state.memory or {})
    options = dict(source.options)
    fields = collector_class(source.kind).Options.model_fields
    if "max_pages" in fields:  # as deep as the source allows
        limit = next((m.le for m in fields["max_pages"].metadata if hasattr(m, "le")), None)
        options["max_pages"] = limit or 100
    deep = source.model_copy(update={"options": options})
    collector = collector_class(source.kind)(deep, stop_at_known=False, memory={})
    oldest: datetime | None = None
    rejected: list[Rejected] = []
    page: list[Post] = []

    def got_to(stored: list[Post]) -> None:
        nonlocal oldest
        for post in stored:  # stored (or quarantined): the backfill reached it
            oldest = post.published_at if oldest is None else min(oldest, post.published_at)
            progress(post)

    with page_writer(svc, result, rejected) as writer:

        def feed() -> list[Post]:  # the page as read, each post once
            stored = [p for part in pages(page) for p in writer.add(part)]
            page.clear()
            return stored

        try:
            for raw in collector.fetch(svc.http):
                post = normalized(raw, svc.clock.now(), rejected)
                if post is None:
                    continue
                if post.published_at < since:
                    break
                result.fetched += 1
                page.append(post)
                if len(page) >= PAGE:
                    got_to(feed())
        except KoubeiError as exc:
            result.error = redact(str(exc))
        except Exception as exc:  # a collector bug or a payload nobody foresaw
            result.error = redact(str(CollectorFailed(source.name, exc)))
        try:  # what was read before a failure is kept
            got_to(feed() + writer.finish())
        except Exception as exc:
            result.error = result.error or redact(
                f"could not store the last posts read: {describe(exc)}"
            )
    rejected[:0] = collector.rejected
    try:
        quarantine(svc, source.name, rejected)
    except Exception as exc:
        result.error = (
            result.error or f"could not quarantine {len(rejected)} items: {describe(exc)}"
        )
    result.quarantined = len(rejected)
    with Session(svc.engine) as session, session.begin():
        state = lock_source_state(session, source.name)
        reached = memory.get("backfill", {}).get("oldest")
        if oldest is not None and (reached is None or oldest.isoformat() < reached):
            reached = oldest.isoformat()
        state.memory = {
            **memory,
            "backfill": {"since": since.isoformat(), "oldest": reached, "complete": result.ok},
        }
    return result


def process_post(svc: Services, post: Post, result: RunResult) -> None:
    """Store, grade, open or join a case and enqueue its alert: one transaction."""
    store_strict(svc, [post], result, _announce)


def _tell_join(
    svc: Services,
    session: Session,
    case: CaseRow,
    post: PostRow,
    score: float,
    now: datetime,
    added: CaseEventRow | None = None,
) -> None:
    """A near-duplicate joined the case: say where, in the case's thread.

    The message hangs on the case's newest post_added event: `added`, the one the
    join just made, when the caller has it.
    """
    assert case.id is not None and post.id is not None
    if not case_told(session, case.id):
        return
    event = added or (
        session.execute(
            select(CaseEventRow)
            .where(col(CaseEventRow.case_id) == case.id, col(CaseEventRow.kind) == "post_added")
            .order_by(col(CaseEventRow.id).desc())
        )
        .scalars()
        .first()
    )
    if event is None:
        return
    said = Said()
    text = f"📎 同一投诉也出现在 {post.source}（相似度 {score:.2f}）：{said.link('原帖', post.url)}"
    announce(session, svc.settings, case, event, text, now, edit=False, said=said)


def _announce(
    svc: Services,
    session: Session,
    outcome: CaseOutcome,
    post: PostRow,
    verdict: Verdict,
    now: datetime,
) -> bool:
    case = outcome.case
    assert case.id is not None
    policy = svc.settings.policy
    severity = Severity(case.severity)
    channel_key = policy.grade(severity).channel
    group_id = None
    quiet = quiet_until(policy.quiet_hours, severity, now, svc.tz)
    if outcome.joined is not None:
        _tell_join(svc, session, case, post, outcome.joined, now, outcome.added)
    if outcome.opened:
        kind, key, headline = AlertKind.NEW_CASE, f"case:{case.id}:new", "新投诉"
        if quiet is not None:
            apply_deadlines(case, policy, start=quiet)
        if severity is Severity.P3:
            group_id = group_for(session, svc.settings, channel_key, now, not_before=quiet)
    elif outcome.raised_from is not None:
        kind = AlertKind.REGRADED
        key = f"case:{case.id}:regraded:{case.severity}"
        headline = f"升级 {outcome.raised_from.value}→{case.severity}"
    else:
        return False

    notice = case_notice(
        svc.settings, case, post, verdict, kind=kind, dedup_key=key, headline=headline, now=now
    )
    # Written with the page's other alerts: nothing needs its id before the outbox rows.
    alert = enqueue(
        session, svc.settings, notice, now, not_before=quiet, group_id=group_id, later=True
    )
    return alert is not None
