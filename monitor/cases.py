"""Cases (工单): a graded complaint opens one, or joins an open one; deadlines from policy."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, any_, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col

from monitor.classify.neardup import bands, shingles
from monitor.config import Policy
from monitor.domain import CaseState, Severity, Verdict, most_severe
from monitor.store.rows import insert_later, insert_now
from monitor.store.tables import CaseEventRow, CaseRow, MinhashBandRow, PostRow

ACTIVE_STATES = (CaseState.OPEN, CaseState.ACKNOWLEDGED, CaseState.REOPENED)
_ACTIVE = frozenset(s.value for s in ACTIVE_STATES)


@dataclass(frozen=True)
class CaseOutcome:
    case: CaseRow
    opened: bool  # a new case: announce it
    raised_from: Severity | None  # an existing case got more severe: announce the regrade
    joined: float | None = None  # similarity, when the post joined a near-duplicate's case
    added: CaseEventRow | None = None  # the post_added event, when the post joined the case


def _after(start: datetime, minutes: float | None) -> datetime | None:
    return None if minutes is None else start + timedelta(minutes=minutes)


def apply_deadlines(case: CaseRow, policy: Policy, start: datetime | None = None) -> None:
    """Deadlines from `start` (default: when the case opened).

    A case held by quiet hours starts its clocks when the team is told.
    """
    grade = policy.grade(Severity(case.severity))
    start = start or case.opened_at
    case.ack_due = _after(start, grade.ack_minutes)
    case.response_due = _after(start, grade.response_minutes)
    case.resolve_due = _after(start, grade.resolve_minutes)


def clock_start(case: CaseRow, policy: Policy) -> datetime:
    """When the case's SLA clocks started (its opening, or the end of quiet hours)."""
    grade = policy.grade(Severity(case.severity))
    if case.ack_due is not None and grade.ack_minutes is not None:
        return case.ack_due - timedelta(minutes=grade.ack_minutes)
    return case.opened_at


def add_event(
    session: Session, case_id: int, kind: str, at: datetime, actor: str = "koubei", **detail: object
) -> CaseEventRow:
    """The event, written at once: its id names the notices about it."""
    event = CaseEventRow(case_id=case_id, kind=kind, actor=actor, at=at, detail=detail)
    insert_now(session, event)
    return event


def _page_event(
    session: Session, later: bool, case_id: int, kind: str, at: datetime, **detail: object
) -> CaseEventRow:
    """add_event; `later`: written with the transaction's other later events
    (`rows.insert_later`), its id unset until then (a page's events: what names them
    is written after them)."""
    event = CaseEventRow(case_id=case_id, kind=kind, actor="koubei", at=at, detail=detail)
    if later:
        insert_later(session, event)
    else:
        insert_now(session, event)
    return event


def _joinable_case(
    session: Session, post: PostRow, policy: Policy, now: datetime
) -> CaseRow | None:
    """The same author's open case on the same source, recent enough to be one complaint."""
    if not post.author:
        return None
    since = now - timedelta(hours=policy.case_join_window_hours)
    return session.execute(
        select(CaseRow)
        .where(
            col(CaseRow.source) == post.source,
            col(CaseRow.author) == post.author,
            col(CaseRow.state).in_([s.value for s in ACTIVE_STATES]),
            col(CaseRow.opened_at) >= since,
        )
        .order_by(col(CaseRow.opened_at).desc())
        .limit(1)
    ).scalar_one_or_none()


def nearest_case(
    session: Session, post: PostRow, policy: Policy, now: datetime, minhash: list[int] | None
) -> tuple[CaseRow, float] | None:
    """The open case holding a near-duplicate of this post (any platform), if close enough.

    LSH bands pick the candidates from an index; the exact shingle Jaccard of the
    best few decides, so estimation noise never merges two customers' complaints.
    """
    if not minhash:
        return None
    rules = policy.near_duplicates
    shared = func.count(col(MinhashBandRow.id))
    rows = session.execute(
        select(col(PostRow.case_id), col(PostRow.title), col(PostRow.body), shared)
        .join(MinhashBandRow, col(MinhashBandRow.post_id) == col(PostRow.id))
        .join(CaseRow, col(CaseRow.id) == col(PostRow.case_id))
        .where(
            col(MinhashBandRow.band).in_(bands(minhash)),
            col(CaseRow.state).in_([s.value for s in ACTIVE_STATES]),
            col(CaseRow.opened_at) >= now - timedelta(days=rules.window_days),
            col(PostRow.id) != post.id,
        )
        .group_by(col(PostRow.id), col(PostRow.case_id), col(PostRow.title), col(PostRow.body))
        .order_by(shared.desc())
        .limit(20)
    ).all()
    best: tuple[float, int] | None = None
    text = shingles(_text(post.title, post.body), rules.shingle)
    for case_id, title, body, _ in rows:
        if case_id is None:
            continue
        theirs = shingles(_text(title, body), rules.shingle)
        score = len(text & theirs) / len(text | theirs) if text | theirs else 0.0
        if score >= rules.threshold and (best is None or score > best[0]):
            best = (score, case_id)
    if best is None:
        return None
    case = session.get(CaseRow, best[1])
    return (case, round(best[0], 2)) if case is not None else None


class NearIndex:
    """nearest_case and _joinable_case for a page of posts, each read in one query.

    The page's own posts join the index as they are cased, so a later post of the
    page finds an earlier one as nearest_case would; their bands are written to
    the table once, by the page (`pending`). The same choice as nearest_case: the
    best few by shared bands among posts in active, recent cases, decided by the
    exact shingle Jaccard. One difference: a band shared by more than PER_BAND posts
    offers only its newest PER_BAND as candidates (nearest_case counts them all).
    """

    TOP = 20
    # A story told a thousand times shares its bands with a thousand posts: the newest
    # of them stand for it, so the lookup stays bounded as the tables grow.
    PER_BAND = 10
    TEXTS = 5000  # candidates whose texts are read with the index; beyond, as compared

    def __init__(
        self,
        session: Session,
        policy: Policy,
        now: datetime,
        band_keys: Iterable[str],
        authors: Iterable[tuple[str, str]] = (),
        known_bands: dict[tuple[int, ...], list[str]] | None = None,
    ) -> None:
        """`known_bands`: the bands of signatures the caller already cut (see `bands`)."""
        self.session = session
        self.rules = policy.near_duplicates
        self.since = now - timedelta(days=self.rules.window_days)
        self.posts_by_band: dict[str, set[int]] = defaultdict(set)
        self.bands_of: dict[int, list[str]] = defaultdict(list)
        self.case_of: dict[int, int] = {}
        self.grams: dict[int, set[str]] = {}
        self.pending: dict[int, list[str]] = {}
        self.join_since = now - timedelta(hours=policy.case_join_window_hours)
        self.by_author: dict[tuple[str, str], list[CaseRow]] = defaultdict(list)
        self.rows: dict[int, CaseRow] = {}  # the candidates' cases and those the page opened
        self.texts: dict[int, tuple[str, str]] = {}  # (title, body) of candidates not compared yet
        self._bands: dict[tuple[int, ...], list[str]] = dict(known_bands or {})
        self._own: dict[int, set[str]] = {}  # shingles of the page's posts looked up
        self._read_authors(sorted(set(authors)))
        keys = sorted(set(band_keys))
        state: Any = col(CaseRow.state)
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            # Without statistics SQLite starts from the active cases and reads every band
            # of their posts, which grows with the table; an expression has no index, so
            # it starts from the page's bands instead.
            state = state.concat("")
        if dialect == "postgresql":
            # Each band must be read newest first from its index, stopping at PER_BAND. Where
            # its statistics are stale or missing (a new database, autovacuum off), PostgreSQL
            # instead read all of a band's posts and sorted them (10 s where the index read
            # takes 70 ms): sorting is made the last resort, for this query only.
            session.connection().exec_driver_sql("SET LOCAL enable_sort = off")
            # Thousands of index lookups, costed high enough to be compiled: 0.3 s lost.
            session.connection().exec_driver_sql("SET LOCAL jit = off")
        # One statement for the page: the bands travel as one array (or JSON) parameter.
        # _index inlined: tens of thousands of rows per page.
        posts_by_band, bands_of, case_of = self.posts_by_band, self.bands_of, self.case_of
        for band, post_id, case_id in _newest_per_band(
            session, keys, state, self.since, self.PER_BAND
        ):
            posts_by_band[band].add(post_id)
            bands_of[post_id].append(band)
            case_of[post_id] = case_id
        if dialect == "postgresql":
            session.connection().exec_driver_sql("SET LOCAL enable_sort = DEFAULT")
            session.connection().exec_driver_sql("SET LOCAL jit = DEFAULT")
        self._load_cases()

    def _load_cases(self) -> None:
        """The candidates' cases into the session, in one query per 500: a join finds its
        case there instead of reading it alone."""
        ids = sorted(set(self.case_of.values()))
        for start in range(0, len(ids), 500):
            # Held here: the session keeps only weak references to what it loaded.
            for case in self.session.execute(
                select(CaseRow).where(
                    _among(self.session, col(CaseRow.id), ids[start : start + 500])
                )
            ).scalars():
                assert case.id is not None
                self.rows[case.id] = case
        # The candidates' texts too, while they are few (a lookup reads those it compares).
        if len(self.case_of) <= self.TEXTS:
            self._read_texts(sorted(self.case_of))

    def _read_texts(self, post_ids: list[int]) -> None:
        for start in range(0, len(post_ids), 500):
            for pid, title, body in self.session.execute(
                select(col(PostRow.id), col(PostRow.title), col(PostRow.body)).where(
                    _among(self.session, col(PostRow.id), post_ids[start : start + 500])
                )
            ).all():
                self.texts[pid] = (title, body)

    def cases(self) -> set[int]:
        """The cases a post of the page may join: its candidates' and its authors'."""
        found = set(self.case_of.values())
        found.update(c.id for cases in self.by_author.values() for c in cases if c.id is not None)
        return found

    def _read_authors(self, authors: list[tuple[str, str]]) -> None:
        """The open, recent cases of the page's authors, newest first: one query per source."""
        by_source: dict[str, list[str]] = defaultdict(list)
        for source, author in authors:
            if author:
                by_source[source].append(author)
        for source, names in by_source.items():
            for start in range(0, len(names), 500):
                cases = self.session.execute(
                    select(CaseRow)
                    .where(
                        col(CaseRow.source) == source,
                        col(CaseRow.author).in_(names[start : start + 500]),
                        col(CaseRow.state).in_([s.value for s in ACTIVE_STATES]),
                        col(CaseRow.opened_at) >= self.join_since,
                    )
                    .order_by(col(CaseRow.opened_at).desc(), col(CaseRow.id).desc())
                ).scalars()
                for case in cases:
                    self.by_author[(source, case.author)].append(case)

    def opened(self, case: CaseRow) -> None:
        """A case the page opened: the newest of its author's."""
        assert case.id is not None
        self.rows[case.id] = case
        if case.author:
            self.by_author[(case.source, case.author)].insert(0, case)

    def joinable(self, post: PostRow) -> CaseRow | None:
        """_joinable_case from what was read: the author's newest case still open and recent."""
        if not post.author:
            return None
        for case in self.by_author.get((post.source, post.author), ()):
            active = case.state in {s.value for s in ACTIVE_STATES}
            if active and case.opened_at >= self.join_since:
                return case
        return None

    def _index(self, post_id: int, keys: list[str], case_id: int) -> None:
        for key in keys:
            self.posts_by_band[key].add(post_id)
        self.bands_of[post_id].extend(keys)
        self.case_of[post_id] = case_id

    def forget(self, post_id: int) -> None:
        """An edited post: its old signature no longer stands for it."""
        for key in self.bands_of.pop(post_id, []):
            self.posts_by_band[key].discard(post_id)
        self.case_of.pop(post_id, None)
        self.grams.pop(post_id, None)
        self.texts.pop(post_id, None)

    def add(self, post: PostRow, keys: list[str]) -> None:
        """A post of the page now in a case: a candidate for the posts after it."""
        assert post.id is not None and post.case_id is not None
        self._index(post.id, keys, post.case_id)
        own = self._own.pop(post.id, None)  # as `nearest` cut them, when it looked the post up
        self.grams[post.id] = (
            own if own is not None else shingles(_text(post.title, post.body), self.rules.shingle)
        )
        self.pending[post.id] = keys

    def bands(self, minhash: list[int]) -> list[str]:
        """neardup.bands, once per signature: a post's are asked for again when it is added."""
        key = tuple(minhash)
        if key not in self._bands:
            self._bands[key] = bands(minhash)
        return self._bands[key]

    def _active(self, case_id: int) -> bool:
        """Active and recent: as read (the query asked), or as the page has it now."""
        case = self.rows.get(case_id)
        if case is None:
            found = self.session.identity_map.get(Session.identity_key(CaseRow, case_id))
            if not isinstance(found, CaseRow):
                return True  # not touched by this page: as the query found it
            case = found
        return case.state in _ACTIVE and case.opened_at >= self.since

    def nearest(self, post: PostRow, minhash: list[int] | None) -> tuple[CaseRow, float] | None:
        if not minhash:
            return None
        # Counted band by band in C (Counter.update), first seen in the same order as one
        # generator over them: most_common breaks ties by that order.
        shared: Counter[int] = Counter()
        posts_by_band = self.posts_by_band
        for key in self.bands(minhash):
            sharing = posts_by_band.get(key)
            if sharing:
                shared.update(sharing)
        shared.pop(post.id or -1, None)
        top: list[int] = []
        for pid, _ in shared.most_common():
            if self._active(self.case_of[pid]):
                top.append(pid)
                if len(top) == self.TOP:
                    break
        missing = [pid for pid in top if pid not in self.grams]
        if missing:
            self._read_texts([pid for pid in missing if pid not in self.texts])
            for pid in missing:
                self.grams[pid] = shingles(_text(*self.texts.pop(pid)), self.rules.shingle)
        text = shingles(_text(post.title, post.body), self.rules.shingle)
        if post.id is not None:
            self._own[post.id] = text
        best: tuple[float, int] | None = None
        for pid in top:
            theirs = self.grams[pid]
            score = len(text & theirs) / len(text | theirs) if text | theirs else 0.0
            if score >= self.rules.threshold and (best is None or score > best[0]):
                best = (score, self.case_of[pid])
        if best is None:
            return None
        case = self.session.get(CaseRow, best[1])
        return (case, round(best[0], 2)) if case is not None else None


def _newest_per_band(
    session: Session, keys: list[str], state: Any, since: datetime, per_band: int
) -> list[Any]:
    """(band, post id, case id) of the newest `per_band` posts of each band in `keys`
    whose case is active and opened since `since`.

    Each band is read newest first from the (band, post_id) index and the read stops
    at `per_band` posts, so the cost follows the page's bands, not how many posts
    share them (ranking every sharing post grew with the table: 6.9 s per 5,000
    posts at the start of a backfill, 36 s by 30,000).
    """
    active = (state.in_([s.value for s in ACTIVE_STATES]), col(CaseRow.opened_at) >= since)
    of_post = col(MinhashBandRow.post_id) == col(PostRow.id)
    of_case = col(CaseRow.id) == col(PostRow.case_id)
    mb = MinhashBandRow.__table__.alias("mb")  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        wanted = (
            func.unnest(bindparam("bands", keys, type_=ARRAY(String)))
            .table_valued("band")
            .render_derived(name="wanted")
        )
        # The post and its case are looked up by primary key for each band entry, newest
        # first, until per_band qualify. OFFSET 0 keeps PostgreSQL from joining them any
        # other way: on stale statistics it matched every band entry against all active
        # cases' posts (0.9 s for 500 bands where these lookups take 17 ms).
        post = (
            select(col(PostRow.case_id)).where(col(PostRow.id) == mb.c.post_id).offset(0)
        ).lateral("post")
        case = (
            select(literal(1).label("one"))
            .where(col(CaseRow.id) == post.c.case_id, *active)
            .offset(0)
            .lateral("active_case")
        )
        newest = (
            select(mb.c.post_id.label("id"), post.c.case_id)
            .select_from(mb.join(post, true()).join(case, true()))
            .where(mb.c.band == wanted.c.band)
            .order_by(mb.c.post_id.desc())
            .limit(per_band)
            .lateral("newest")
        )
        stmt = select(wanted.c.band, newest.c.id, newest.c.case_id).select_from(
            wanted.join(newest, true())
        )
        return list(session.connection().execute(stmt).all())
    # SQLite has no LATERAL: per band, the id of its per_band-th newest qualifying post
    # bounds an index range read of the band (all of it when it has fewer).
    # One JSON parameter rather than a VALUES row per band: the statement is compiled once.
    wanted_c = select(
        func.json_each(bindparam("bands", json.dumps(keys)))
        .table_valued("value")
        .c.value.label("band")
    ).cte("wanted")
    floor = (
        select(col(MinhashBandRow.post_id))
        .select_from(MinhashBandRow)
        .join(PostRow, of_post)
        .join(CaseRow, of_case)
        .where(col(MinhashBandRow.band) == wanted_c.c.band, *active)
        .order_by(col(MinhashBandRow.post_id).desc())
        .limit(1)
        .offset(per_band - 1)
        .scalar_subquery()
    )
    cut = select(wanted_c.c.band, func.coalesce(floor, 0).label("floor")).cte("cut")
    stmt = (
        select(mb.c.band, col(PostRow.id), col(PostRow.case_id))
        .select_from(cut)
        .join(mb, (mb.c.band == cut.c.band) & (mb.c.post_id >= cut.c.floor))
        .join(PostRow, mb.c.post_id == col(PostRow.id))
        .join(CaseRow, of_case)
        .where(*active)
    )
    return list(session.connection().execute(stmt).all())


def _among(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values`; on PostgreSQL `= ANY` of one array: psycopg parses a statement
    with hundreds of placeholders again at each run (10 ms for 500), an array is one."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _text(title: str, body: str) -> str:
    return f"{title}。{body}" if title and title not in body else body


def attach_to_case(
    session: Session,
    post: PostRow,
    verdict: Verdict,
    policy: Policy,
    now: datetime,
    minhash: list[int] | None = None,
    near: NearIndex | None = None,
) -> CaseOutcome | None:
    """Open, join or regrade the post's case; None when the grade opens no case.

    `near` answers the near-duplicate and same-author lookups for a page of posts
    (default: a query each).
    """
    assert post.id is not None
    later = near is not None  # a page's events go out together, after its posts are cased
    case = session.get(CaseRow, post.case_id) if post.case_id is not None else None
    joined = None
    added = None
    if case is None:
        if verdict.severity is Severity.NONE:
            return None
        found = (
            near.nearest(post, minhash)
            if near is not None
            else nearest_case(session, post, policy, now, minhash)
        )
        if found is not None:
            case, joined = found
        elif verdict.severity.opens_case:
            case = (
                near.joinable(post)
                if near is not None
                else _joinable_case(session, post, policy, now)
            )
        else:
            return None  # P4: waits for the digest
        if case is None:
            case = CaseRow(
                severity=verdict.severity.value,
                state=CaseState.OPEN.value,
                title=(post.title or post.body)[:120],
                source=post.source,
                author=post.author,
                opened_at=now,
                updated_at=now,
            )
            apply_deadlines(case, policy)
            # Written at once for its id, without a flush of everything the page changed
            # so far (its posts' case ids go out together, with the next flush).
            insert_now(session, case)
            assert case.id is not None
            if near is not None:
                near.opened(case)
            post.case_id = case.id
            _page_event(
                session, later, case.id, "opened", now, severity=case.severity, post_id=post.id
            )
            return CaseOutcome(case, opened=True, raised_from=None)
        assert case.id is not None
        post.case_id = case.id
        added = _page_event(
            session,
            later,
            case.id,
            "post_added",
            now,
            post_id=post.id,
            source=post.source,
            similarity=joined,
        )

    previous = Severity(case.severity)
    if verdict.severity.rank <= previous.rank:
        return CaseOutcome(case, opened=False, raised_from=None, joined=joined, added=added)
    case.severity = most_severe(previous, verdict.severity).value
    case.updated_at = now
    apply_deadlines(case, policy)
    assert case.id is not None
    _page_event(
        session,
        later,
        case.id,
        "regraded",
        now,
        old=previous.value,
        new=case.severity,
        post_id=post.id,
    )
    return CaseOutcome(case, opened=False, raised_from=previous, joined=joined, added=added)
