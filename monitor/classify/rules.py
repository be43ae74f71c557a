"""The rules grader: sentiment from lexicon cues and the star rating, then the severity policy.

Kept beside the transformer as a fallback (`classifier.kind: rules`) and as
the baseline the model is measured against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monitor.classify import GradeInput
from monitor.classify.severity import Evidence, EvidenceFinder, decide, quoted
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Verdict

# Star ratings as sentiment evidence: three stars on a lending app is a mild complaint.
_RATING_PRIOR = {1: -2.5, 2: -1.5, 3: -0.5, 4: 1.0, 5: 2.0}


class RulesGrader:
    name = "rules-v1"

    def __init__(self, lexicon: Lexicon, raise_policy: RaisePolicy) -> None:
        self.raise_policy = raise_policy
        self.finder = EvidenceFinder(lexicon)

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        return [self.grade(i.text, rating=i.rating, votes=i.votes, amount=i.amount) for i in items]

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict:
        reasons: list[str] = []
        ev = self.finder.find(text)
        sentiment, score = self._sentiment(ev, rating, reasons)
        return decide(
            sentiment,
            score,
            list(ev.categories),
            ev,
            reasons,
            self.name,
            self.raise_policy,
            votes=votes,
            amount=amount,
        )

    def _sentiment(
        self, ev: Evidence, rating: int | None, reasons: list[str]
    ) -> tuple[Sentiment, float]:
        neg_count = ev.complaint_words
        # An escalation signal outweighs a star: "五星是反话，你们威胁我家人".
        neg_count += 2 * sum(len(v) for v in ev.signals.values())
        lexical = min(len(ev.positive), 4) - min(neg_count, 5)
        score = lexical + (_RATING_PRIOR.get(rating, 0.0) if rating is not None else 0.0)
        if rating is not None:
            reasons.append(f"rating {rating}★")
        if ev.negative or ev.flipped:
            reasons.append(f"negative words: {quoted(ev.negative + ev.flipped)}")
        if ev.positive:
            reasons.append(f"positive words: {quoted(ev.positive)}")

        if ev.failures:
            reasons.append(f"failure words {quoted(ev.failures)} make it a complaint")
            return Sentiment.NEGATIVE, round(1 / (1 + math.exp(-max(1.0, -score))), 3)
        if ev.is_question and ev.complaint_words == 0 and (rating is None or rating >= 3):
            reasons.append("a question without complaint words")
            return Sentiment.NEUTRAL, 0.6
        if score <= -1:
            label = Sentiment.NEGATIVE
        elif score >= 1:
            label = Sentiment.POSITIVE
        else:
            label = Sentiment.NEUTRAL
        # Confidence of the chosen label, from the evidence margin.
        margin = abs(score) if label is not Sentiment.NEUTRAL else 1.5 - abs(score)
        return label, round(1 / (1 + math.exp(-margin)), 3)
