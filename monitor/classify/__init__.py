"""Classification: graders that turn text (and its metadata) into a Verdict, and PII masking."""

from __future__ import annotations

from typing import Protocol

from monitor.domain import Verdict


class Grader(Protocol):
    name: str

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict: ...
