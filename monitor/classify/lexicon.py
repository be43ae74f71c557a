"""Fast lexicon matching with negation, shared by the rules grader and the model's policy."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CLAUSE_BREAK = re.compile(r"[，。！？、；：,.!?;:\n~～…]")


@dataclass(frozen=True)
class Hit:
    term: str
    start: int
    end: int
    negated: bool


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        escaped = re.escape(term)
        # "110" must not match inside "1100元"; digits need digit-free edges.
        if term[0].isdigit():
            escaped = r"(?<!\d)" + escaped
        if term[-1].isdigit():
            escaped += r"(?!\d)"
        parts.append(escaped)
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class TermGroup:
    """A named set of terms compiled into one alternation (longest term wins)."""

    def __init__(self, name: str, terms: Iterable[str], negatable: bool = True) -> None:
        self.name = name
        self.negatable = negatable
        self._re = _pattern(terms)

    def find(self, text: str, negation: NegationRule) -> list[Hit]:
        if self._re is None:
            return []
        return [
            Hit(m.group(), m.start(), m.end(), self.negatable and negation.applies(text, m.start()))
            for m in self._re.finditer(text)
        ]


class NegationRule:
    def __init__(self, negations: Iterable[str], window: int) -> None:
        self._re = _pattern(negations)
        self._window = window

    def applies(self, text: str, start: int) -> bool:
        """A negation ends at most `window` characters before `start`, in the same clause."""
        if self._re is None:
            return False
        lookback = text[max(0, start - self._window - 6) : start]
        breaks = list(_CLAUSE_BREAK.finditer(lookback))
        if breaks:
            lookback = lookback[breaks[-1].end() :]
        return any(len(lookback) - m.end() <= self._window for m in self._re.finditer(lookback))
