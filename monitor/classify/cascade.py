"""Two model graders in turn: the first decides crisis pages, the second grades the rest.

The shipped 4-layer model finds crises on real posts and on the lending files more
reliably than the pretrained encoder does, and the encoder reads every grade below
P1 better (fewer calm posts paged, more failures alerted at once); the figures that
decided this are in the grader's write-up in `docs/grader-real-posts.md`. So a post
the first pages as P1 keeps that verdict; every other post takes the second's
verdict, unless the second would page it as P1, where the first's stands: a crisis
page needs the model that is trusted with crises.

Under the policy a grade reaches P1 only through an escalation signal the lexicon
names, or a P2 raised by its votes or amount; so the first model need only read
those posts (about one real post in fifty), and the cascade costs little more than
the second model alone. Both graders apply the same policy and lexicon, so each
verdict names the words or readings that decided it; the cascade adds which
model's verdict it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.classify import BatchGrader, GradeInput
from monitor.classify.model_grader import ModelGrader
from monitor.domain import Severity, Verdict
from monitor.errors import ModelError

MAX_NAME = 64  # the verdicts table's model column


class CascadeGrader(BatchGrader):
    def __init__(self, first: ModelGrader, second: ModelGrader) -> None:
        self.first, self.second = first, second
        self.name = f"cascade:{first.classifier.version}+{second.classifier.version}"
        if len(self.name) > MAX_NAME:
            # Every verdict stores the grader's name; a longer one would fail each insert.
            raise ModelError(
                f"the cascade's name {self.name!r} is over {MAX_NAME} characters: give the "
                "models shorter names (config.json's koubei_version, or the folder's name)"
            )

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        seconds = self.second.grade_many(items, batch_size)
        first, second = self.first.classifier.version, self.second.classifier.version
        out = [self._tag(v, f"graded by {second}") for v in seconds]
        # The lexicon's signals are the same whichever model reads the post.
        todo = [i for i, v in enumerate(seconds) if v.signals or self._may_raise(items[i])]
        firsts = self.first.grade_many([items[i] for i in todo], batch_size)
        for i, v in zip(todo, firsts, strict=True):
            if v.severity is Severity.P1:
                out[i] = self._tag(v, f"crisis page by {first}")
            elif seconds[i].severity is Severity.P1:
                out[i] = self._tag(v, f"{second} would page P1, {first} does not")
        return out

    def _may_raise(self, item: GradeInput) -> bool:
        """Whether the policy would raise this post's grade a step: a P2 may become a P1."""
        policy = self.first.raise_policy
        votes = policy.votes_at_least is not None and item.votes >= policy.votes_at_least
        amount = (
            policy.amount_yuan_at_least is not None
            and item.amount is not None
            and item.amount >= policy.amount_yuan_at_least
        )
        return votes or amount

    def _tag(self, v: Verdict, why: str) -> Verdict:
        return replace(v, reasons=(*v.reasons, f"cascade: {why}"), model=self.name)
