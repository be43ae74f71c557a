"""The transformer grader: the model reads sentiment and categories; the policy grades.

Sentiment is the model's (nudged by the star rating where a store gives one);
categories are the model's above `category_threshold`, plus the lexicon's;
escalation signals, harm and blocking words come from the lexicon, so every
grade is explained by named words in `reasons`.

One safety override: a self-harm signal makes the post a complaint whatever
the model says. A missed one costs a life; a false one costs a look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.classify.onnx_model import OnnxClassifier, Prediction
from monitor.classify.severity import EvidenceFinder, decide, quoted
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Verdict

# Log-odds a star rating adds: a 1★ "还行" is a complaint, a 5★ "还行" is not.
_RATING_SHIFT = {1: -1.5, 2: -1.0, 3: -0.3, 4: 0.7, 5: 1.2}
_ORDER = (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)


@dataclass(frozen=True)
class GradeInput:
    text: str
    rating: int | None = None
    votes: int = 0
    amount: float | None = None


class ModelGrader:
    def __init__(
        self,
        classifier: OnnxClassifier,
        lexicon: Lexicon,
        raise_policy: RaisePolicy,
        category_threshold: float = 0.5,
    ) -> None:
        self.classifier = classifier
        self.finder = EvidenceFinder(lexicon)
        self.raise_policy = raise_policy
        self.category_threshold = category_threshold
        self.name = f"model:{classifier.version}"

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
        preds = self.classifier.predict([i.text for i in items], batch_size)
        return [self._verdict(item, pred) for item, pred in zip(items, preds, strict=True)]

    def _verdict(self, item: GradeInput, pred: Prediction) -> Verdict:
        reasons: list[str] = []
        ev = self.finder.find(item.text)
        logp = [math.log(max(p, 1e-9)) for p in pred.sentiment]
        if item.rating is not None and item.rating in _RATING_SHIFT:
            shift = _RATING_SHIFT[item.rating]
            logp[0] -= shift / 2
            logp[2] += shift / 2
            reasons.append(f"rating {item.rating}★")
        total = sum(math.exp(x) for x in logp)
        probs = [math.exp(x) / total for x in logp]
        best = max(range(3), key=lambda i: probs[i])
        sentiment, score = _ORDER[best], round(probs[best], 3)
        reasons.append(f"model: {sentiment.value} {score:.2f}")
        if "self_harm" in ev.signals and sentiment is not Sentiment.NEGATIVE:
            reasons.append(f"self-harm words {quoted(ev.signals['self_harm'])} override the model")
            sentiment = Sentiment.NEGATIVE
        model_cats = [c for c, p in pred.categories.items() if p >= self.category_threshold]
        categories = list(dict.fromkeys([*model_cats, *ev.categories]))
        if sentiment is Sentiment.NEGATIVE and "other" in categories and len(categories) > 1:
            categories.remove("other")
        return decide(
            sentiment,
            score,
            categories,
            ev,
            reasons,
            self.name,
            self.raise_policy,
            votes=item.votes,
            amount=item.amount,
        )
