"""A page of posts stored in one transaction: upserted in bulk, graded in one batch, cased.

The page commits whole or not at all. The run's state ("last run complete")
moves only after its pages committed, so a process killed mid-page loses
nothing: the next run pages back over what was not stored, and alert dedup keys
keep an alert that did commit from going out twice.

One post that cannot be stored must not cost the page: when the page fails for
anything but the database being unreachable, it is stored again post by post,
each in its own transaction, and the post that fails alone goes to `rejected`
(quarantine) while the rest is stored.

Inside the page each post is cased in order, oldest first, with its own
statements, so a post sees the cases the posts before it opened (the same
author's second post in one page joins the first one's case, and so does a
near-duplicate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from monitor.cases import CaseOutcome, NearIndex, attach_to_case
from monitor.classify import GradeInput, Grader
from monitor.classify.neardup import bands, signature
from monitor.domain import Post, Rejected, Severity, Verdict
from monitor.errors import describe
from monitor.platform import apply_platform
from monitor.store.bulk import replace_bands, upsert_posts
from monitor.store.notices import remember
from monitor.store.posts import Change, Upserted
from monitor.store.rows import table_of
from monitor.store.tables import PostRow, VerdictRow

if TYPE_CHECKING:
    from monitor.pipeline import RunResult, Services

log = logging.getLogger(__name__)

PAGE = 200  # posts per transaction: a feed page or a few, a fraction of a second to store

# The opaque per-post alert step (pipeline._announce), given the post's Verdict (the page
# writes its VerdictRows by one INSERT and keeps no row objects): True when an alert was queued.
Announce = Callable[["Services", Session, CaseOutcome, PostRow, Verdict, datetime], bool]
# Grades worked out before the page's transaction (page_writer), by what was graded.
Graded = Mapping[GradeInput, Verdict]


def pages(posts: Sequence[Post], size: int = PAGE) -> list[list[Post]]:
    """The posts cut into pages, each (source, external_id) once: its first occurrence."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for post in posts:
        key = (post.source, post.external_id)
        if key not in seen:
            seen.add(key)
            unique.append(post)
    return [unique[i : i + size] for i in range(0, len(unique), size)]


def store_page(
    svc: Services,
    posts: Sequence[Post],
    result: RunResult,
    rejected: list[Rejected],
    announce: Announce,
    graded: Graded | None = None,
) -> None:
    """Store the page in one transaction; on an error, post by post, quarantining the culprit.

    The database being unreachable is not a post's fault: that raises (the run
    fails, and the next one reads the page again).
    """
    if not posts:
        return
    part = type(result)(source=result.source)  # counted only once the page committed
    try:
        store_strict(svc, posts, part, announce, ahead=graded)
    except OperationalError:
        raise
    except Exception as exc:
        if len(posts) > 1:
            log.info(
                "%s: a page of %d posts failed (%s); storing it post by post",
                result.source,
                len(posts),
                describe(exc, limit=200),
            )
            for post in posts:
                store_page(svc, [post], result, rejected, announce, graded)
            return
        [post] = posts
        error = describe(exc, limit=500)
        log.warning(
            "%s: post %s could not be stored (quarantined): %s",
            post.source,
            post.external_id,
            error,
        )
        rejected.append(Rejected(post.source, post.external_id, "store", error, post))
        return
    result.absorb(part)


def grade_input(post: Post) -> GradeInput:
    return GradeInput(
        post.text,
        rating=post.rating,
        votes=post.votes,
        amount=post.platform.amount if post.platform else None,
    )


def grade_page(
    grader: Grader, posts: Sequence[Post], batch_size: int, known: Graded | None = None
) -> list[Verdict]:
    """One verdict per post, in order; identical inputs (a repost, a copied review) graded once.

    Inputs already in `known` (graded ahead of the page's transaction) are not graded again.
    """
    inputs = [grade_input(p) for p in posts]
    graded = dict(known or {})
    distinct = [i for i in dict.fromkeys(inputs) if i not in graded]
    if distinct:
        graded.update(zip(distinct, grader.grade_many(distinct, batch_size), strict=True))
    return [graded[i] for i in inputs]


def store_strict(
    svc: Services,
    posts: Sequence[Post],
    result: RunResult,
    announce: Announce,
    ahead: Graded | None = None,
) -> None:
    """The page in one transaction; any error rolls all of it back and raises."""
    now = svc.clock.now()
    with Session(svc.engine) as session, session.begin():
        upserted = upsert_posts(session, posts, now)
        fresh = [
            (post, up)
            for post, up in zip(posts, upserted, strict=True)
            if up.change in (Change.NEW, Change.EDITED)
        ]
        verdicts = grade_page(
            svc.grader, [p for p, _ in fresh], svc.settings.app.classifier.batch_size, ahead
        )
        touched = [up.id for up in upserted if up.change is not Change.UNCHANGED]
        rows = {
            r.id: r
            for r in session.execute(
                select(PostRow)
                .where(col(PostRow.id).in_(touched))
                .execution_options(populate_existing=True)
            ).scalars()
        }
        graded = {up.id: v for (_, up), v in zip(fresh, verdicts, strict=True)}
        # One multi-row INSERT, in the page's order (so the ids are those a flush gives):
        # nothing in the page needs them as ORM objects, and building 200 SQLModel rows
        # (validated field by field) cost more than writing them.
        if fresh:
            session.connection().execute(
                insert(table_of(VerdictRow)),
                [
                    _verdict_values(up.id, p, v, now)
                    for (p, up), v in zip(fresh, verdicts, strict=True)
                ],
            )
        # Only posts in cases are near-duplicate candidates: others need no signature.
        shingle = svc.settings.policy.near_duplicates.shingle
        minhashes = {
            up.id: signature(p.text, shingle)
            for (p, up), v in zip(fresh, verdicts, strict=True)
            if v.severity is not Severity.NONE or rows[up.id].case_id is not None
        }
        # Cut once: the index asks for a post's bands again when it looks it up and adds it.
        cut = {tuple(m): bands(m) for m in minhashes.values() if m}
        keys = (k for b in cut.values() for k in b)
        authors = [(p.source, p.author) for p, _ in fresh]
        near = NearIndex(session, svc.settings.policy, now, keys, authors, known_bands=cut)
        step = Step(svc, session, near, announce, now)
        for post, up in zip(posts, upserted, strict=True):
            if up.change is Change.UNCHANGED:
                continue
            row = rows[up.id]
            if up.change is Change.STATUS:
                assert post.platform is not None
                result.status_changes += 1
                apply_platform(session, svc.settings, row, post.platform, up.previous_status, now)
                continue
            verdict = graded[up.id]
            if up.change is Change.NEW:
                result.new += 1
            else:
                result.edited += 1
            grade = verdict.severity.value
            result.by_severity[grade] = result.by_severity.get(grade, 0) + 1
            step.settle(post, up, row, verdict, minhashes.get(up.id), result)
        edited = {up.id for up in upserted if up.change is Change.EDITED}
        replace_bands(session, near.pending, edited)  # the page's signatures, in one INSERT


def _verdict_values(post_id: int, post: Post, verdict: Verdict, now: datetime) -> dict[str, Any]:
    """The post's VerdictRow, as the values of its INSERT."""
    return {
        "post_id": post_id,
        "content_hash": post.content_hash,
        "model": verdict.model,
        "sentiment": verdict.sentiment.value,
        "sentiment_score": verdict.sentiment_score,
        "severity": verdict.severity.value,
        "categories": list(verdict.categories),
        "signals": list(verdict.signals),
        "reasons": list(verdict.reasons),
        "created_at": now,
        "digest_alert_id": None,
    }


@dataclass
class Step:
    """What casing one post of the page needs besides the post itself."""

    svc: Services
    session: Session
    near: NearIndex
    announce: Announce
    now: datetime

    def __post_init__(self) -> None:
        # The page's alert step asks the same things of the database post after post,
        # about the cases its posts may join: read for all of them at once.
        remember(self.session).prefetch(self.session, self.near.cases())

    def settle(
        self,
        post: Post,
        up: Upserted,
        row: PostRow,
        verdict: Verdict,
        minhash: list[int] | None,
        result: RunResult,
    ) -> None:
        """A new or edited post, graded: open, join or regrade its case and announce it."""
        svc, session, now = self.svc, self.session, self.now
        assert row.id is not None
        if up.change is Change.EDITED:  # an edit replaces the old signature
            self.near.forget(row.id)
        policy = svc.settings.policy
        outcome = attach_to_case(session, row, verdict, policy, now, minhash, self.near)
        if minhash and row.case_id is not None:
            self.near.add(row, self.near.bands(minhash))
        if outcome is None:
            return
        if outcome.opened:
            result.cases_opened += 1
            assert outcome.case.id is not None
            remember(session).opened(outcome.case.id)
        # A complaint first seen already settled on its platform is recorded, not alerted.
        settled = up.change is Change.NEW and post.platform is not None and post.platform.final
        if not settled and self.announce(svc, session, outcome, row, verdict, now):
            result.alerts += 1
        if post.platform is not None:
            apply_platform(
                session,
                svc.settings,
                row,
                post.platform,
                up.previous_status,
                now,
                settled_on_arrival=settled and outcome.opened,
            )
