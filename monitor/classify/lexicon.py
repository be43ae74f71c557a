"""Fast lexicon matching with negation, shared by the rules grader and the model's policy.

A term is not the writer's own claim when it is negated ("没有暴力催收", "不威胁")
or reported ("听说这家暴力催收", "比起某些收砍头息的平台"): both are scoped to the
clause, so "没有暴力催收，但是利息太高了" still complains of the interest. Nor is
it when it is figurative (`Figures`): part of an idiom that means something else
("内存泄露" is no privacy leak, "卡员上门" no collector at the door), or an
escalation word in a joke ("笑得我不想活了哈哈哈").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Reviews separate clauses with a space too: "刷脸登录也没有 垃圾".
_BREAK_CHARS = frozenset("，。！？、；：,.!?;:\n~～… ")
_BREAKS = re.escape("".join(sorted(_BREAK_CHARS)))  # for character classes


@dataclass(frozen=True)
class Hit:
    term: str
    start: int
    end: int
    negated: bool
    reported: bool = False
    figurative: bool = False

    @property
    def live(self) -> bool:
        """The writer says it happened: not denied, not someone else's story, not a figure."""
        return not (self.negated or self.reported or self.figurative)


def _pattern(terms: Iterable[str], patterns: Iterable[str] = ()) -> re.Pattern[str] | None:
    """One alternation of the terms (longest first), then any regular-expression `patterns`."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        escaped = re.escape(term)
        # "110" must not match inside "1100元"; digits need digit-free edges.
        if term[0].isdigit():
            escaped = r"(?<!\d)" + escaped
        if term[-1].isdigit():
            escaped += r"(?!\d)"
        parts.append(escaped)
    parts += [f"(?:{p})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def _clause_before(text: str, start: int, reach: int | None = None) -> str:
    """The text before `start` back to the clause break (at most `reach` characters).

    Walks back from `start`: a hit late in a long complaint post costs its clause,
    not the whole post before it.
    """
    stop = 0 if reach is None else max(0, start - reach)
    i = start
    while i > stop and text[i - 1] not in _BREAK_CHARS:
        i -= 1
    return text[i:start]


def _clause_after(text: str, end: int, clauses: int = 2) -> str:
    """The text after `end` to the end of its clause and of the next `clauses - 1`."""
    i, left = end, clauses
    while i < len(text):
        if text[i] in _BREAK_CHARS:
            # A run of breaks ("哈哈哈!!!") ends one clause, not several.
            while i < len(text) and text[i] in _BREAK_CHARS:
                i += 1
            left -= 1
            if left == 0:
                break
            continue
        i += 1
    return text[end:i]


class Figures:
    """Terms used figuratively: inside an idiom, or an escalation word in a joke.

    An `idioms` phrase that overlaps a term takes it over ("内存泄露" holds "泄露",
    "联名卡" holds "联名"). A `joke` marker in the term's clause or the next
    ("笑得我不想活了哈哈哈", "不想活了😂") makes a term of a joke-prone group (the
    escalation signals) no claim: nobody is paged for a laugh.
    """

    def __init__(self, idioms: Iterable[str] = (), jokes: Iterable[str] = ()) -> None:
        self._idioms = _pattern(idioms)
        self._jokes = _pattern(jokes)

    def idiom_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._idioms.finditer(text)] if self._idioms else []

    def joking(self, text: str, start: int, end: int) -> bool:
        if self._jokes is None:
            return False
        around = _clause_before(text, start) + text[start:end] + _clause_after(text, end)
        return self._jokes.search(around) is not None


class TermGroup:
    """A named set of terms compiled into one alternation (longest term wins).

    `jokes`: whether a joke marker near a term makes it figurative (escalation signals).
    `patterns`: regular expressions matched beside the terms ("登不了", "点不开": a verb
    and its "cannot" complement).
    """

    def __init__(
        self,
        name: str,
        terms: Iterable[str],
        negatable: bool = True,
        jokes: bool = False,
        patterns: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.negatable = negatable
        self.jokes = jokes
        self._re = _pattern(terms, patterns)

    def find(self, text: str, negation: NegationRule, figures: Figures | None = None) -> list[Hit]:
        if self._re is None:
            return []
        spans = figures.idiom_spans(text) if figures is not None else []
        return [
            Hit(
                m.group(),
                m.start(),
                m.end(),
                self.negatable and negation.applies(text, m.start()),
                self.negatable and negation.reported(text, m.start()),
                figures is not None
                and (
                    any(a < m.end() and m.start() < b for a, b in spans)
                    or (self.jokes and figures.joking(text, m.start(), m.end()))
                ),
            )
            for m in self._re.finditer(text)
        ]


class NegationRule:
    """Which terms the writer denies or reports, from the words before them in their clause.

    `negations` reach `window` characters ("没有任何威胁"); `adjacent` ones only the
    next word, because "不" is also the middle of "受不了催收" and "打不通客服".
    A `reported` marker ("听说", "别的平台") reaches back to the start of its clause.
    """

    def __init__(
        self,
        negations: Iterable[str],
        window: int,
        adjacent: Iterable[str] = (),
        reported: Iterable[str] = (),
        not_denials: Iterable[str] = (),
        rhetorical: Iterable[str] = (),
        confirming: Iterable[str] = (),
        either_or: Iterable[str] = (),
    ) -> None:
        self._re = _pattern(negations)
        self._not_denials = _pattern(not_denials)
        rhetorical_re = _pattern(rhetorical)
        self._rhetorical = (
            re.compile(f"[^{_BREAKS}]*(?:{rhetorical_re.pattern})") if rhetorical_re else None
        )
        either_re = _pattern(either_or)
        # "不是闪退就是黑屏", also across one break: "不是打不开，就是登陆慢".
        self._either_or = (
            re.compile(f"[^{_BREAKS}]*[{_BREAKS}]?(?:{either_re.pattern})") if either_re else None
        )
        self._confirming = _pattern(confirming)
        self._window = window
        adjacent_re = _pattern(adjacent)
        self._adjacent = re.compile(f"(?:{adjacent_re.pattern})$") if adjacent_re else None
        self._reported = _pattern(reported)

    def applies(self, text: str, start: int) -> bool:
        """A negation ends at most `window` characters before `start`, in the same clause.

        One inside a `not_denials` phrase ("是不是泄露了", "没说有会员费") denies
        nothing, nor does one in a clause that goes on `rhetorical` ("这不是恐吓是什么"),
        nor a "不是" answered by an `either_or` word ("不是闪退就是黑屏": both happen).
        """
        lookback = _clause_before(text, start, self._window + 6)
        near: list[re.Match[str]] = []
        if self._adjacent is not None and (last := self._adjacent.search(lookback)):
            near.append(last)
        if self._re is not None:
            # Overlapping matches: in "从没收过什么服务费" it is "没收过" that reaches the term.
            starts = (self._re.match(lookback, i) for i in range(len(lookback)))
            near += [m for m in starts if m and len(lookback) - m.end() <= self._window]
        # Most terms have no negation near them; only then is the rest of the clause read.
        if not near or (self._rhetorical is not None and self._rhetorical.match(text, start)):
            return False
        either_or = self._either_or is not None and self._either_or.match(text, start) is not None
        spared = (
            [m.span() for m in self._not_denials.finditer(lookback)] if self._not_denials else []
        )
        return any(
            not (either_or and m.group() == "不是")
            and not any(m.start() < b and a < m.end() for a, b in spared)
            for m in near
        )

    def reported(self, text: str, start: int) -> bool:
        """A reporting or comparing word comes earlier in the same clause, and the writer
        does not go on to confirm it ("听说会打给紧急联系人，果然我妈就接到电话了")."""
        if self._reported is None or self._reported.search(_clause_before(text, start)) is None:
            return False
        return self._confirming is None or self._confirming.search(text, start) is None
