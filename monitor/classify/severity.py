"""The severity policy (DESIGN.md, "Severity policy"), shared by every grader.

A grader decides the sentiment; the lexicon finds the evidence; this module
turns both into a grade. Only negative posts are graded: an escalation signal
makes P1, harm words P2, blocking failures P3, any other complaint P4. A model
grader may add floors (a category such as deduction; the model's own reading
of harm or blocking): they raise a grade below P1, never lower one. Metadata
(votes, amount in dispute) may raise one step, never lower. Every step that
decides the grade adds a line to `reasons`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.classify.lexicon import Hit, NegationRule, TermGroup
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Severity, Verdict

# "…你们是正规平台吗" asks even without a question mark: 吗/么 ending a clause.
_ENDS_ASKING = re.compile(r"[吗么](?=[\s,，。.!！~～]*$|[，,。])")


def quoted(hits: Iterable[Hit], limit: int = 3) -> str:
    terms = list(dict.fromkeys(h.term for h in hits))
    return "、".join(f"“{t}”" for t in terms[:limit])


@dataclass(frozen=True)
class Evidence:
    """What the lexicon found in one text, negated terms already dropped."""

    signals: dict[str, list[Hit]]
    harm: list[Hit]
    blocking: list[Hit]
    categories: list[str]
    negative: list[Hit]
    positive: list[Hit]
    flipped: list[Hit]  # praise under a negation: "不方便", "不满意"
    is_question: bool

    @property
    def complaint_words(self) -> int:
        return len(self.negative) + len(self.harm) + len(self.blocking) + len(self.flipped)


class EvidenceFinder:
    def __init__(self, lexicon: Lexicon) -> None:
        self.negation = NegationRule(lexicon.negations, lexicon.negation_window)
        self.questions = TermGroup("question", lexicon.question_markers, negatable=False)
        self.negative = TermGroup("negative", lexicon.negative)
        self.positive = TermGroup("positive", lexicon.positive)
        self.harm = TermGroup("harm", lexicon.harm)
        self.blocking = TermGroup("blocking", lexicon.blocking)
        # Self-harm words are never negated: a missed one costs a life.
        self.signals = [
            TermGroup(name, terms, negatable=(name != "self_harm"))
            for name, terms in lexicon.signals.items()
        ]
        self.categories = [TermGroup(name, terms) for name, terms in lexicon.categories.items()]

    def _live(self, group: TermGroup, text: str) -> list[Hit]:
        return [h for h in group.find(text, self.negation) if not h.negated]

    def find(self, text: str) -> Evidence:
        signals = {g.name: self._live(g, text) for g in self.signals}
        negative = self._live(self.negative, text)
        # "不推荐" is a negative term; the "推荐" inside it is not praise.
        pos_all = [
            h
            for h in self.positive.find(text, self.negation)
            if not any(n.start <= h.start and h.end <= n.end for n in negative)
        ]
        return Evidence(
            signals={k: v for k, v in signals.items() if v},
            harm=self._live(self.harm, text),
            blocking=self._live(self.blocking, text),
            categories=[g.name for g in self.categories if self._live(g, text)],
            negative=negative,
            positive=[h for h in pos_all if not h.negated],
            flipped=[h for h in pos_all if h.negated],
            is_question=bool(self.questions.find(text, self.negation))
            or bool(_ENDS_ASKING.search(text)),
        )


# What P2 and P3 mean, said the same way whether lexicon words or the model's reading decide.
_MEANING = {
    Severity.P2: "money or rights harmed",
    Severity.P3: "service failure blocks the customer",
}


def decide(
    sentiment: Sentiment,
    score: float,
    categories: list[str],
    evidence: Evidence,
    reasons: list[str],
    grader: str,
    raise_policy: RaisePolicy,
    *,
    votes: int = 0,
    amount: float | None = None,
    floors: dict[str, Severity] | None = None,
    model_level: tuple[Severity, float] | None = None,
) -> Verdict:
    signals = tuple(evidence.signals)
    if sentiment is Sentiment.NEGATIVE and not categories:
        categories = ["other"]
    if sentiment is not Sentiment.NEGATIVE:
        reasons.append(f"not a complaint ({sentiment.value}): no grade")
        return Verdict(
            sentiment, score, tuple(categories), signals, Severity.NONE, tuple(reasons), grader
        )
    if evidence.signals:
        severity = Severity.P1
        for name, hits in evidence.signals.items():
            reasons.append(f"P1 {name} signal: {quoted(hits)}")
    elif evidence.harm:
        severity = Severity.P2
        reasons.append(f"P2 {_MEANING[Severity.P2]}: {quoted(evidence.harm)}")
    elif evidence.blocking:
        severity = Severity.P3
        reasons.append(f"P3 {_MEANING[Severity.P3]}: {quoted(evidence.blocking)}")
    else:
        severity = Severity.P4
    floor = max(
        ((floors or {}).get(c, Severity.P4) for c in categories),
        key=lambda s: s.rank,
        default=Severity.P4,
    )
    if floor.rank > severity.rank:
        severity = floor
        named = [c for c in categories if (floors or {}).get(c) is floor]
        reasons.append(f"{floor.value} by category: {'、'.join(named)}")
    if model_level is not None and model_level[0].rank > severity.rank:
        severity = model_level[0]
        reasons.append(
            f"{severity.value} {_MEANING[severity]}: the model reads {model_level[1]:.2f}"
        )
    if severity is Severity.P4:
        reasons.append("P4 mild dissatisfaction: no harm, block or escalation words")
    severity = _raise(severity, votes, amount, raise_policy, reasons)
    return Verdict(sentiment, score, tuple(categories), signals, severity, tuple(reasons), grader)


def _raise(
    severity: Severity,
    votes: int,
    amount: float | None,
    policy: RaisePolicy,
    reasons: list[str],
) -> Severity:
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
