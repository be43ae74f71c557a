"""Two model graders in turn: the first decides crisis pages, the second grades the rest.

The shipped 4-layer model finds crises on real posts and on the lending files more
reliably than the pretrained encoder does, and the encoder reads every grade below
P1 better (fewer calm posts paged, more failures alerted at once); the figures that
decided this are in the grader's write-up in `docs/grader-real-posts.md`. So every
post is graded by the first; a post it pages as P1 keeps that verdict; every other
post takes the second's verdict, unless the second would page it as P1, where the
first's stands: a crisis page needs the model that is trusted with crises.

Both graders apply the same policy and lexicon, so each verdict names the words or
readings that decided it; the cascade adds which model's verdict it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.classify import GradeInput
from monitor.classify.model_grader import ModelGrader
from monitor.domain import Severity, Verdict


class CascadeGrader:
    def __init__(self, first: ModelGrader, second: ModelGrader) -> None:
        self.first, self.second = first, second
        self.name = f"cascade:{first.classifier.version}+{second.classifier.version}"

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict:
        return self.grade_many([GradeInput(text, rating, votes, amount)])[0]

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        firsts = self.first.grade_many(items, batch_size)
        first, second = self.first.classifier.version, self.second.classifier.version
        # The second model reads only what the first does not page: most posts, on a real feed.
        todo = [i for i, v in enumerate(firsts) if v.severity is not Severity.P1]
        out = [self._tag(v, f"crisis page by {first}") for v in firsts]
        for i, v in zip(
            todo, self.second.grade_many([items[i] for i in todo], batch_size), strict=True
        ):
            if v.severity is Severity.P1:
                out[i] = self._tag(firsts[i], f"{second} would page P1, {first} does not")
            else:
                out[i] = self._tag(v, f"graded by {second}")
        return out

    def _tag(self, v: Verdict, why: str) -> Verdict:
        return replace(v, reasons=(*v.reasons, f"cascade: {why}"), model=self.name)
