"""Pages stored in order while the next one is graded: the model and the database overlap.

Grading a page with the model takes about as long as casing and storing it,
and ONNX Runtime releases the GIL while it runs, so a second thread grades page
k+1 while page k is stored. The grades are worked out ahead from the posts as
stored before the page's transaction (one read, no lock): the posts that are
new or whose text changed. The transaction itself still decides what is new;
a post whose outcome changed in between (another run stored or edited it) is
graded inside it, as before, so a grade is never missing or stale. It also
keeps the model out of SQLite's write lock for all but those posts.

A run also remembers what it graded (up to MEMO entries): about three App Store
reviews in ten repeat an earlier one word for word ("好用", "垃圾"), and a
backfill meets each of them once per page otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

from sqlmodel import Session

from monitor.classify import BatchGrader, GradeInput, Grader
from monitor.domain import Post, Rejected, Verdict
from monitor.errors import describe
from monitor.page_store import Announce, Graded, grade_input, grade_page, store_page
from monitor.store.bulk import stored_hashes

if TYPE_CHECKING:
    from monitor.pipeline import RunResult, Services

log = logging.getLogger(__name__)

MEMO = 20_000  # grades kept per run: a few MB


class _OneAtATime(BatchGrader):
    """The grader behind a lock: the thread ahead and a page's own fallback never overlap."""

    def __init__(self, grader: Grader) -> None:
        self._grader = grader
        self._lock = threading.Lock()
        self.name = grader.name

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        with self._lock:
            return self._grader.grade_many(items, batch_size)


class PageWriter:
    """`add` pages in order; each is stored once the next one is being graded; `finish` ends it.

    Use it as a context manager so the grading thread stops whatever happens.
    """

    def __init__(
        self,
        svc: Services,
        result: RunResult,
        rejected: list[Rejected],
        announce: Announce,
    ) -> None:
        self._svc = replace(svc, grader=_OneAtATime(svc.grader))
        self._result = result
        self._rejected = rejected
        self._announce = announce
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="koubei-grade-ahead")
        self._waiting: deque[tuple[list[Post], Future[Graded]]] = deque()
        self._memo: dict[GradeInput, Verdict] = {}
        self._asked: set[GradeInput] = set()  # handed to the grading thread, graded or not yet

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, page: list[Post]) -> list[Post]:
        """Queue the page and start grading it; returns the posts stored meanwhile."""
        if not page:
            return []
        self._waiting.append((page, self._ahead(page)))
        stored: list[Post] = []
        while len(self._waiting) > 1:
            stored += self._store_oldest()
        return stored

    def finish(self) -> list[Post]:
        """Store what is still queued; returns those posts."""
        stored: list[Post] = []
        while self._waiting:
            stored += self._store_oldest()
        return stored

    def _ahead(self, page: list[Post]) -> Future[Graded]:
        svc = self._svc
        try:
            with Session(svc.engine) as session:
                hashes = stored_hashes(session, [(p.source, p.external_id) for p in page])
        except Exception as exc:  # the page's own transaction will say what is wrong
            log.debug("grading ahead skipped: %s", describe(exc, limit=200))
            done: Future[Graded] = Future()
            done.set_result({})
            return done
        todo = [
            p
            for p in page
            if hashes.get((p.source, p.external_id)) != p.content_hash
            and grade_input(p) not in self._asked
        ]
        self._asked.update(grade_input(p) for p in todo)
        batch = svc.settings.app.classifier.batch_size
        return self._pool.submit(_graded, svc.grader, todo, batch)

    def _store_oldest(self) -> list[Post]:
        page, ahead = self._waiting.popleft()
        try:
            graded = ahead.result()
        except Exception as exc:  # a text the grader refuses: the page finds which, post by post
            log.debug("grading ahead failed: %s", describe(exc, limit=200))
            graded = {}
        if len(self._memo) + len(graded) > MEMO:
            # What was forgotten is graded again inside its page, should it come back.
            self._memo.clear()
            self._asked.clear()
        self._memo.update(graded)
        store_page(self._svc, page, self._result, self._rejected, self._announce, self._memo)
        return page


def _graded(grader: Grader, posts: Sequence[Post], batch_size: int) -> Graded:
    inputs = [grade_input(p) for p in posts]
    verdicts = grade_page(grader, posts, batch_size)
    return dict(zip(inputs, verdicts, strict=True))
