"""Figures on real posts: the labelled real set's split and CCF's own 3-class sentiment.

The real set's figures are the ones its targets are stated in: severity exact and
within one grade, P3 failures alerted at once (graded P3 or higher), calm posts
(labelled `none`) graded P1 or P2, posts graded P1 that are no P1, and each
category's precision and recall. They are given for the random sample, the
keyword sample (biased towards crisis words on purpose) and both together.

CCF's train file is split by the same hash rule as the real set (the held-out
third is `split_of(text_sha) == "heldout"`); its test file is never read.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.classify.real_set import CCF_TRAIN, Joined, RealSetError, normalise, split_of, text_sha
from monitor.domain import CATEGORIES, Verdict

_RANK = {"none": 0, "P4": 1, "P3": 2, "P2": 3, "P1": 4}
# CCF's class column: 0 negative, 1 positive, 2 neutral; here 0/1/2 = negative/neutral/positive.
_CCF_CLASS = {"0": 0, "1": 2, "2": 1}
SAMPLE_GROUPS = ("all", "random", "keyword")


@dataclass(frozen=True)
class CcfRow:
    text: str
    sentiment: int  # 0 negative, 1 neutral, 2 positive


def read_ccf(data_dir: Path) -> tuple[list[CcfRow], list[CcfRow]]:
    """CCF train rows split by the real set's hash rule: (train, held out), one row per text."""
    path = data_dir / CCF_TRAIN
    if not path.is_file():
        raise RealSetError(
            f"{path}: CCF train file not found. Point --data-dir (or KOUBEI_DATA_DIR) at a "
            "copy of the shared public data folder."
        )
    train: list[CcfRow] = []
    heldout: list[CcfRow] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            text = normalise(row.get("text") or "")
            cls = _CCF_CLASS.get((row.get("class") or "").strip())
            if not text or cls is None or text in seen:
                continue
            seen.add(text)
            side = heldout if split_of(text_sha(text)) == "heldout" else train
            side.append(CcfRow(text, cls))
    return train, heldout


def macro_f1(
    truth: Sequence[int], guess: Sequence[int], classes: Sequence[int] = (0, 1, 2)
) -> float:
    """Mean over classes of F1 (a class never predicted nor present scores 0)."""
    scores = []
    for c in classes:
        tp = sum(1 for t, g in zip(truth, guess, strict=True) if t == c and g == c)
        fp = sum(1 for t, g in zip(truth, guess, strict=True) if t != c and g == c)
        fn = sum(1 for t, g in zip(truth, guess, strict=True) if t == c and g != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return round(sum(scores) / len(scores), 4)


def _group(rows: Sequence[tuple[Joined, Verdict]]) -> dict[str, Any]:
    n = len(rows)
    pairs = [(j.label.severity, v.severity.value) for j, v in rows]
    p3 = [g for t, g in pairs if t == "P3"]
    per_cat: dict[str, dict[str, Any]] = {}
    for c in CATEGORIES:
        tp = sum(1 for j, v in rows if c in j.label.categories and c in v.categories)
        true = sum(1 for j, _ in rows if c in j.label.categories)
        pred = sum(1 for _, v in rows if c in v.categories)
        if true or pred:
            per_cat[c] = {
                "labelled": true,
                "precision": round(tp / pred, 4) if pred else None,
                "recall": round(tp / true, 4) if true else None,
            }
    return {
        "texts": n,
        "severity_exact": round(sum(t == g for t, g in pairs) / max(1, n), 4),
        "severity_within_one": round(
            sum(abs(_RANK[t] - _RANK[g]) <= 1 for t, g in pairs) / max(1, n), 4
        ),
        "sentiment_accuracy": round(
            sum(j.label.sentiment == v.sentiment.value for j, v in rows) / max(1, n), 4
        ),
        "p3_labelled": len(p3),
        "p3_alerted": round(sum(_RANK[g] >= _RANK["P3"] for g in p3) / max(1, len(p3)), 4),
        "calm_graded_p1_p2": sum(1 for t, g in pairs if t == "none" and g in ("P1", "P2")),
        "graded_p1_not_p1": sum(1 for t, g in pairs if g == "P1" and t != "P1"),
        "p1_labelled": sum(1 for t, _ in pairs if t == "P1"),
        "p1_found": sum(1 for t, g in pairs if t == "P1" and g == "P1"),
        "categories": per_cat,
        "confusion": dict(sorted(Counter(f"{t}->{g}" for t, g in pairs).items())),
    }


def real_figures(
    grade: Callable[[Sequence[str]], list[Verdict]], joined: Sequence[Joined]
) -> dict[str, dict[str, Any]]:
    """The real set's figures over `joined` (one split), for each sample and both together."""
    verdicts = grade([j.text for j in joined])
    rows = list(zip(joined, verdicts, strict=True))
    return {
        "all": _group(rows),
        "random": _group([r for r in rows if r[0].label.sample == "random"]),
        "keyword": _group([r for r in rows if r[0].label.sample == "keyword"]),
    }
