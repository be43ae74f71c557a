"""Classification: graders that turn text (and its metadata) into a Verdict, and PII masking."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.domain import Verdict


@dataclass(frozen=True)
class GradeInput:
    """One text to grade with the metadata the policy reads."""

    text: str
    rating: int | None = None
    votes: int = 0
    amount: float | None = None


class Grader(Protocol):
    name: str

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        """Verdicts in input order; a model grader batches them."""
        ...

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict: ...


class BatchGrader(ABC):
    """A grader that grades in batches (a model's): one text is a batch of one."""

    name: str

    @abstractmethod
    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]: ...

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict:
        [verdict] = self.grade_many([GradeInput(text, rating, votes, amount)])
        return verdict
