"""Evaluation figures, computed the same way by `koubei train` and bench/classify.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor.classify.lending_set import LabelledText
from monitor.domain import Verdict
from monitor.training.corpus import NEG, POS, Example

_RANK = {"none": 0, "P4": 1, "P3": 2, "P2": 3, "P1": 4}


def binary_accuracy(probs: Sequence[Sequence[float]], examples: Sequence[Example]) -> float:
    """Positive vs negative, as published ChnSentiCorp figures are: neutral is not an answer."""
    right = 0
    for p, e in zip(probs, examples, strict=True):
        guess = POS if p[2] > p[0] else NEG
        right += guess == e.sentiment
    return right / max(1, len(examples))


def lending_figures_by_file(
    grade: Callable[[Sequence[str]], list[Verdict]],
    sets: Mapping[str, Sequence[LabelledText]],
) -> dict[str, dict[str, Any]]:
    """`lending_figures` for each evaluation file, by its figure name."""
    return {name: lending_figures(grade, rows) for name, rows in sets.items()}


def lending_figures(
    grade: Callable[[Sequence[str]], list[Verdict]], rows: Sequence[LabelledText]
) -> dict[str, Any]:
    verdicts = grade([r.text for r in rows])
    n = len(rows)
    pairs = [(r.severity, v.severity.value) for r, v in zip(rows, verdicts, strict=True)]
    tp = sum(1 for t, g in pairs if t == "P1" and g == "P1")
    graded_p1 = sum(1 for _, g in pairs if g == "P1")
    true_p1 = sum(1 for t, _ in pairs if t == "P1")
    calm_alarmed = [
        r.text
        for r, v in zip(rows, verdicts, strict=True)
        if r.sentiment != "negative" and v.severity.value in ("P1", "P2")
    ]
    cat_hits = cat_true = cat_pred = 0
    for r, v in zip(rows, verdicts, strict=True):
        truth, guess = set(r.categories), set(v.categories)
        cat_hits += len(truth & guess)
        cat_true += len(truth)
        cat_pred += len(guess)
    confusion = Counter(f"{t}->{g}" for t, g in pairs)
    return {
        "texts": n,
        "sentiment_accuracy": round(
            sum(r.sentiment == v.sentiment.value for r, v in zip(rows, verdicts, strict=True))
            / max(1, n),
            4,
        ),
        "severity_exact": round(sum(t == g for t, g in pairs) / max(1, n), 4),
        "severity_within_one": round(
            sum(abs(_RANK[t] - _RANK[g]) <= 1 for t, g in pairs) / max(1, n), 4
        ),
        "p1_recall": round(tp / max(1, true_p1), 4),
        "p1_precision": round(tp / max(1, graded_p1), 4),
        "neutral_or_positive_graded_p1_p2": len(calm_alarmed),
        "calm_texts_alarmed": calm_alarmed,
        "category_precision": round(cat_hits / max(1, cat_pred), 4),
        "category_recall": round(cat_hits / max(1, cat_true), 4),
        "confusion": dict(sorted(confusion.items())),
    }
