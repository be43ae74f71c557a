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
from dataclasses import dataclass, field

from monitor.classify.fold import to_simplified
from monitor.classify.lexicon import Figures, Hit, NegationRule, TermGroup
from monitor.config import Lexicon, RaisePolicy
from monitor.domain import Sentiment, Severity, Verdict


def quoted(hits: Iterable[Hit], limit: int = 3) -> str:
    terms = list(dict.fromkeys(h.term for h in hits))
    return "、".join(f"“{t}”" for t in terms[:limit])


@dataclass(frozen=True)
class Evidence:
    """What the lexicon found in one text; only `denied` holds negated or reported terms."""

    signals: dict[str, list[Hit]]
    harm: list[Hit]
    blocking: list[Hit]
    categories: list[str]
    negative: list[Hit]
    positive: list[Hit]
    flipped: list[Hit]  # praise under a negation: "不方便", "不满意"
    is_question: bool
    # Complaint words the writer denies or reports: "没有暴力催收", "听说有砍头息".
    denied: list[Hit]
    # Words that say what went wrong, not only what the post is about ("服务费").
    claims: list[Hit]
    # A turn after the denial ("没有暴力催收，但是利息太高了"): a complaint follows.
    turns: bool
    # Money or personal data named ("钱", "余额", "相册"): what a P2 reading is about.
    money: list[Hit] = field(default_factory=list)
    # Escalation words read as idioms or jokes ("笑得我不想活了哈哈哈"): named in reasons.
    figurative: list[Hit] = field(default_factory=list)
    # Failures that stop the customer whatever the tone ("一直闪退", "根本进不去").
    failures: list[Hit] = field(default_factory=list)

    @property
    def complaint_words(self) -> int:
        return len(self.negative) + len(self.harm) + len(self.blocking) + len(self.flipped)

    @property
    def claim_words(self) -> int:
        """Complaint words that say something went wrong: a topic alone does not."""
        return len(self.claims) + len(self.flipped)

    @property
    def denies(self) -> bool:
        """Complaint words appear, every claim among them is denied or reported, no turn."""
        return bool(self.denied) and self.claim_words == 0 and not self.signals and not self.turns


class EvidenceFinder:
    def __init__(self, lexicon: Lexicon) -> None:
        self.negation = NegationRule(
            lexicon.negations,
            lexicon.negation_window,
            adjacent=lexicon.adjacent_negations,
            reported=lexicon.reported_markers,
            not_denials=lexicon.not_denials,
            rhetorical=lexicon.rhetorical_tails,
            confirming=lexicon.confirming_markers,
            either_or=lexicon.either_or,
        )
        self.questions = TermGroup("question", lexicon.question_markers, negatable=False)
        # "…你们是正规平台吗" asks without a question mark: 吗 ending a clause.
        endings = "".join(re.escape(e) for e in lexicon.question_endings)
        self._ends_asking = (
            re.compile(f"[{endings}](?=[\\s,，。.!！~～]*$|[，,。])") if endings else None
        )
        self.topics = frozenset(lexicon.topics)
        self.turn = TermGroup("turn", lexicon.contrast_markers, negatable=False)
        self.negative = TermGroup("negative", lexicon.negative)
        self.positive = TermGroup("positive", lexicon.positive)
        self.harm = TermGroup("harm", lexicon.harm)
        self.blocking = TermGroup("blocking", lexicon.blocking)
        self.failures = TermGroup("failures", lexicon.failures, patterns=lexicon.failure_patterns)
        self.money = TermGroup("money", lexicon.money_words)
        self.figures = Figures(lexicon.idioms, lexicon.joke_markers)
        # Self-harm words are never negated: a missed one costs a life. A joke is no claim.
        self.signals = [
            TermGroup(name, terms, negatable=(name != "self_harm"), jokes=True)
            for name, terms in lexicon.signals.items()
        ]
        self.categories = [TermGroup(name, terms) for name, terms in lexicon.categories.items()]

    def find(self, text: str) -> Evidence:
        # The terms are simplified Chinese: "閃退" is read as "闪退".
        text = to_simplified(text)
        fig = self.figures
        found = {g.name: g.find(text, self.negation, fig) for g in self.signals}
        # Idioms take over escalation, harm and topic words only: "烦死了" is still a gripe.
        negative, blocking, failures = (
            g.find(text, self.negation) for g in (self.negative, self.blocking, self.failures)
        )
        blocking = _distinct([*failures, *blocking])
        harm = self.harm.find(text, self.negation, fig)
        live = [h for h in negative if h.live]
        # "不推荐" is a negative term; the "推荐" inside it is not praise.
        pos_all = [
            h
            for h in self.positive.find(text, self.negation)
            if not any(n.start <= h.start and h.end <= n.end for n in live)
        ]
        # Category words are not among them: "没到账", "不放款" complain.
        words = [h for hits in (negative, harm, blocking, *found.values()) for h in hits]
        by_category = {g.name: g.find(text, self.negation, fig) for g in self.categories}
        denied = [h for h in words if not h.live]
        live_blocking = [h for h in blocking if h.live]
        first_denied = min((h.end for h in denied), default=len(text))
        return Evidence(
            signals={k: [h for h in v if h.live] for k, v in found.items() if _any_live(v)},
            harm=[h for h in harm if h.live],
            blocking=live_blocking,
            categories=[name for name, hits in by_category.items() if _any_live(hits)],
            negative=live,
            positive=[h for h in pos_all if h.live],
            flipped=[h for h in pos_all if h.negated],
            is_question=bool(self.questions.find(text, self.negation))
            or bool(self._ends_asking and self._ends_asking.search(text)),
            denied=denied,
            turns=any(h.start >= first_denied for h in self.turn.find(text, self.negation)),
            money=[h for h in self.money.find(text, self.negation) if h.live],
            figurative=[h for hits in found.values() for h in hits if h.figurative],
            failures=[h for h in failures if h.live],
            claims=_distinct(
                h for h in (*negative, *harm, *blocking) if h.live and h.term not in self.topics
            ),
        )


def _any_live(hits: list[Hit]) -> bool:
    return any(h.live for h in hits)


def _distinct(hits: Iterable[Hit]) -> list[Hit]:
    """One hit per span: "骚扰" is both a negative and a harm word."""
    seen: dict[tuple[int, int], Hit] = {}
    for h in hits:
        seen.setdefault((h.start, h.end), h)
    return list(seen.values())


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
    if evidence.figurative:
        reasons.append(f"no escalation: {quoted(evidence.figurative)} read as an idiom or a joke")
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
