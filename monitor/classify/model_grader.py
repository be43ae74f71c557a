"""The transformer grader: the model reads sentiment and categories; the policy grades.

Sentiment is the model's, nudged by the star rating where a store gives one.
A question or praise without complaint words that the model is not sure of is
not a complaint, nor is a post whose complaint words are all denied or
reported ("从来没有乱扣过钱", "听说这家暴力催收"), however sure the model is:
a small model trained from scratch misreads negation. Topic words ("会员费")
are no complaint words here; they only grade a complaint.

Categories are the model's above `category_threshold`, plus the lexicon's;
escalation signals, harm and blocking words come from the lexicon. Two model
readings may raise a complaint's grade: a category with a floor (policy.yaml
`category_floor`), and the model's grade level ("at least P2: money or rights
harmed", "at least P3: blocked", above `level_threshold`; where no lexicon word
backs the complaint, only if the model is sure it is one). P1 needs a named
escalation signal (or a P2 raised a step by votes or amount), so a crisis page
always quotes its words or its reach. Every grade is
explained in `reasons`: the words, categories or model reading that set it.

Safety overrides: a self-harm signal makes the post a complaint whatever the
model says (a missed one costs a life; a false one costs a look), and so does
any other escalation signal in a post that neither asks nor praises: a threat or
abuse of third parties ("恐吓我") always, a named regulator, medium, court or
group ("已经起诉") unless the model is sure it is no complaint (at most 0.1) and
no word says something went wrong ("利息太高了，已经向人行反映了" is one). The
model's sentiment alone never hides harm done to a customer, while "请问12378是
什么电话", "打12378投诉后客服解决了，满意" and "律师朋友说借款合同要仔细看" stay calm.

A failure that stops the customer ("一直闪退", "登不了", "Can't log in") makes the
post a complaint too, whatever the model reads: praise of an older version and
sarcasm ("真棒，又打不开了") are how real reviews say it. In a mostly English
post the model is never "sure" against the lexicon's calm cues: it learnt Chinese.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from monitor.classify import BatchGrader, GradeInput
from monitor.classify.labels import LEVELS
from monitor.classify.onnx_model import Prediction
from monitor.classify.severity import Evidence, EvidenceFinder, decide, quoted
from monitor.classify.textprep import normalize
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Severity, Verdict

# Log-odds a star rating adds: a 1★ "还行" is a complaint, a 5★ "还行" is not.
_RATING_SHIFT = {1: -1.5, 2: -1.0, 3: -0.3, 4: 0.7, 5: 1.2}
_ORDER = (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)
# Above this the model's "negative" stands even for a question ("这利息合法吗？").
_SURE = 0.9
# Signals that are harm done to someone, not a place named: no calm reading outweighs them.
_HARM_DONE = frozenset({"threat", "third_party"})


def _mostly_latin(text: str) -> bool:
    """More Latin letters than Chinese characters: an English or mostly English post."""
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    han = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    return latin > han


class TextModel(Protocol):
    """What the grader reads: OnnxClassifier, or a baseline measured under the same policy."""

    version: str

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]: ...


class ModelGrader(BatchGrader):
    def __init__(
        self,
        classifier: TextModel,
        lexicon: Lexicon,
        raise_policy: RaisePolicy,
        category_threshold: float = 0.35,
        category_floor: Mapping[str, str] | None = None,
        level_threshold: float = 0.5,
    ) -> None:
        self.classifier = classifier
        self.finder = EvidenceFinder(lexicon)
        self.raise_policy = raise_policy
        self.category_threshold = category_threshold
        self.floors = {k: Severity(v) for k, v in (category_floor or {}).items()}
        self.level_threshold = level_threshold
        self.money = frozenset(lexicon.money_categories)
        self.name = f"model:{classifier.version}"

    def grade_many(self, items: Sequence[GradeInput], batch_size: int = 64) -> list[Verdict]:
        preds = self.classifier.predict([i.text for i in items], batch_size)
        return [self._verdict(item, pred) for item, pred in zip(items, preds, strict=True)]

    def _verdict(self, item: GradeInput, pred: Prediction) -> Verdict:
        reasons: list[str] = []
        # The lexicon reads what the model reads: entities decoded, tags gone, full width folded.
        ev = self.finder.find(normalize(item.text))
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
        # The lexicon's counter-evidence: a question ("请问…"), praise ("放心", "满意") or
        # complaint words all denied or reported ("从没收过服务费", "听说有砍头息"), and no
        # live word saying something went wrong (a topic such as "会员费" says nothing).
        calm_cue = ev.is_question or bool(ev.positive) or ev.denies
        if sentiment is Sentiment.NEGATIVE and calm_cue and ev.claim_words == 0:
            # A denial outweighs even a sure model: it misreads negation, the lexicon does not.
            # Nor is it sure of English: it learnt Chinese ("I love this app, fast approval").
            if probs[0] < _SURE or ev.denies or _mostly_latin(item.text):
                sentiment, score = self._calm(ev, probs, reasons)
            else:
                reasons.append(f"calm cues outweighed: the model is sure ({probs[0]:.2f})")
        if ev.failures and sentiment is not Sentiment.NEGATIVE:
            # "以前很好用，更新后打不开": a failure that stops the customer is a complaint
            # however the post sounds; a small model reads the praise, or sarcasm, instead.
            reasons.append(f"failure words {quoted(ev.failures)} make it a complaint")
            sentiment, score = Sentiment.NEGATIVE, round(probs[0], 3)
        if "self_harm" in ev.signals and sentiment is not Sentiment.NEGATIVE:
            reasons.append(f"self-harm words {quoted(ev.signals['self_harm'])} override the model")
            # The score stays the model's own: how sure it was, not how sure the override is.
            sentiment, score = Sentiment.NEGATIVE, round(probs[0], 3)
        elif (
            ev.signals
            and sentiment is not Sentiment.NEGATIVE
            and not calm_cue
            and (_HARM_DONE.intersection(ev.signals) or probs[0] > 1 - _SURE or ev.claim_words)
        ):
            words = quoted(h for hits in ev.signals.values() for h in hits)
            reasons.append(f"escalation words {words}, neither asking nor praising: a complaint")
            sentiment, score = Sentiment.NEGATIVE, round(probs[0], 3)
        model_cats = [c for c, p in pred.categories.items() if p >= self.category_threshold]
        categories = list(dict.fromkeys([*model_cats, *ev.categories]))
        if sentiment is Sentiment.NEGATIVE and "other" in categories and len(categories) > 1:
            categories.remove("other")
        level = None
        if sentiment is Sentiment.NEGATIVE:
            level = self._level(pred, probs[0], ev, categories, reasons)
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
            floors={c: self.floors[c] for c in model_cats if c in self.floors},
            model_level=level,
        )

    def _calm(
        self, ev: Evidence, probs: list[float], reasons: list[str]
    ) -> tuple[Sentiment, float]:
        """The calm reading the lexicon's cue points to, scored with half the model's doubt."""
        if ev.is_question:
            reasons.append("a question without complaint words")
            return Sentiment.NEUTRAL, round(probs[1] + probs[0] / 2, 3)
        if ev.positive:
            reasons.append(f"praise {quoted(ev.positive)} without complaint words")
            return Sentiment.POSITIVE, round(probs[2] + probs[0] / 2, 3)
        reasons.append(f"complaint words {quoted(ev.denied)} denied or reported, or idioms")
        calm = Sentiment.POSITIVE if probs[2] > probs[1] else Sentiment.NEUTRAL
        return calm, round(max(probs[1], probs[2]) + probs[0] / 2, 3)

    def _level(
        self,
        pred: Prediction,
        p_negative: float,
        ev: Evidence,
        categories: list[str],
        reasons: list[str],
    ) -> tuple[Severity, float] | None:
        """The gravest level the model reads at `level_threshold` or above, if it may be used.

        The level raises a grade on the model's word alone when no lexicon word backs the
        complaint; then the model must also be sure it is a complaint at all. Its P2
        reading needs a money or rights topic in the post (harm words, a category such
        as fees or deduction, or a money word such as "钱"): on real posts an angry app
        review reads as P2 to a model that learnt anger from fee complaints.
        """
        complaint_words = ev.complaint_words
        for grade in LEVELS:  # gravest first
            p = pred.levels.get(grade)
            if p is not None and p >= self.level_threshold:
                if grade == "P2" and not (
                    ev.harm or ev.money or self.money.intersection(categories)
                ):
                    reasons.append(f"model's P2 reading ({p:.2f}) unused: no money or rights topic")
                    continue
                if complaint_words == 0 and p_negative < _SURE:
                    reasons.append(
                        f"model's {grade} reading ({p:.2f}) unused: "
                        f"a complaint only at {p_negative:.2f}"
                    )
                    return None
                return Severity(grade), p
        return None
