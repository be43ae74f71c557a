"""The rules grader: lexicon signals and categories, star rating, and the severity policy.

Policy (DESIGN.md, "Severity policy"): only negative posts are graded; an
escalation signal makes P1, harm words P2, blocking failures P3, any other
complaint P4. Metadata (votes, amount in dispute) may raise one step, never lower.
Every step that decides the grade adds a line to `reasons`.
"""

from __future__ import annotations

import math

from monitor.classify.lexicon import Hit, NegationRule, TermGroup
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Severity, Verdict

# Star ratings as sentiment evidence: three stars on a lending app is a mild complaint.
_RATING_PRIOR = {1: -2.5, 2: -1.5, 3: -0.5, 4: 1.0, 5: 2.0}


def _quoted(hits: list[Hit], limit: int = 3) -> str:
    terms = list(dict.fromkeys(h.term for h in hits))
    return "、".join(f"“{t}”" for t in terms[:limit])


class RulesGrader:
    name = "rules-v1"

    def __init__(self, lexicon: Lexicon, raise_policy: RaisePolicy) -> None:
        self.raise_policy = raise_policy
        self.negation = NegationRule(lexicon.negations, lexicon.negation_window)
        self.questions = TermGroup("question", lexicon.question_markers, negatable=False)
        self.negative = TermGroup("negative", lexicon.negative)
        self.positive = TermGroup("positive", lexicon.positive)
        self.harm = TermGroup("harm", lexicon.harm)
        self.blocking = TermGroup("blocking", lexicon.blocking)
        self.signals = [
            TermGroup(name, terms, negatable=(name != "self_harm"))
            for name, terms in lexicon.signals.items()
        ]
        self.categories = [TermGroup(name, terms) for name, terms in lexicon.categories.items()]

    def _live(self, group: TermGroup, text: str) -> list[Hit]:
        return [h for h in group.find(text, self.negation) if not h.negated]

    def grade(
        self,
        text: str,
        *,
        rating: int | None = None,
        votes: int = 0,
        amount: float | None = None,
    ) -> Verdict:
        reasons: list[str] = []
        signal_hits = {g.name: self._live(g, text) for g in self.signals}
        signal_hits = {k: v for k, v in signal_hits.items() if v}
        harm = self._live(self.harm, text)
        blocking = self._live(self.blocking, text)
        categories = [g.name for g in self.categories if self._live(g, text)]

        sentiment, score = self._sentiment(text, rating, signal_hits, harm, blocking, reasons)
        if sentiment is Sentiment.NEGATIVE and not categories:
            categories = ["other"]
        if sentiment is not Sentiment.NEGATIVE:
            reasons.append(f"not a complaint ({sentiment.value}): no grade")
            return Verdict(
                sentiment,
                score,
                tuple(categories),
                tuple(signal_hits),
                Severity.NONE,
                tuple(reasons),
                self.name,
            )

        if signal_hits:
            severity = Severity.P1
            for name, hits in signal_hits.items():
                reasons.append(f"P1 {name} signal: {_quoted(hits)}")
        elif harm:
            severity = Severity.P2
            reasons.append(f"P2 money or rights harmed: {_quoted(harm)}")
        elif blocking:
            severity = Severity.P3
            reasons.append(f"P3 service failure blocks the customer: {_quoted(blocking)}")
        else:
            severity = Severity.P4
            reasons.append("P4 mild dissatisfaction: no harm, block or escalation words")

        severity = self._raise(severity, votes, amount, reasons)
        return Verdict(
            sentiment,
            score,
            tuple(categories),
            tuple(signal_hits),
            severity,
            tuple(reasons),
            self.name,
        )

    def _sentiment(
        self,
        text: str,
        rating: int | None,
        signal_hits: dict[str, list[Hit]],
        harm: list[Hit],
        blocking: list[Hit],
        reasons: list[str],
    ) -> tuple[Sentiment, float]:
        negative = self._live(self.negative, text)
        # "不推荐" is a negative term; the "推荐" inside it is not praise.
        pos_all = [
            h
            for h in self.positive.find(text, self.negation)
            if not any(n.start <= h.start and h.end <= n.end for n in negative)
        ]
        positive = [h for h in pos_all if not h.negated]
        flipped = [h for h in pos_all if h.negated]  # "不方便", "不满意"
        neg_count = len(negative) + len(harm) + len(blocking) + len(flipped)
        # An escalation signal outweighs a star: "五星是反话，你们威胁我家人".
        neg_count += 2 * sum(len(v) for v in signal_hits.values())
        lexical = min(len(positive), 4) - min(neg_count, 5)
        score = lexical + (_RATING_PRIOR.get(rating, 0.0) if rating is not None else 0.0)
        if rating is not None:
            reasons.append(f"rating {rating}★")
        if negative or flipped:
            reasons.append(f"negative words: {_quoted(negative + flipped)}")
        if positive:
            reasons.append(f"positive words: {_quoted(positive)}")

        complaint_words = len(negative) + len(harm) + len(blocking) + len(flipped)
        is_question = bool(self.questions.find(text, self.negation))
        if is_question and complaint_words == 0 and (rating is None or rating >= 3):
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

    def _raise(
        self, severity: Severity, votes: int, amount: float | None, reasons: list[str]
    ) -> Severity:
        policy = self.raise_policy
        steps = []
        if policy.votes_at_least is not None and votes >= policy.votes_at_least:
            steps.append(f"spreading: {votes} votes ≥ {policy.votes_at_least}")
        if (
            policy.amount_yuan_at_least is not None
            and amount is not None
            and amount >= policy.amount_yuan_at_least
        ):
            steps.append(f"amount ¥{amount:,.0f} ≥ ¥{policy.amount_yuan_at_least:,.0f}")
        if not steps or severity is Severity.P1:
            return severity
        raised = severity.raised(1)  # metadata raises one step at most, however many apply
        reasons.append(f"raised {severity.value}→{raised.value}: {'; '.join(steps)}")
        return raised
