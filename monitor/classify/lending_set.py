"""The hand-written lending set (data/lending/*.tsv): reviews and complaints labelled for grading.

Each file is tab-separated with a header: severity (P1-P4 or none), sentiment,
categories (comma-separated), text. `train.tsv` is trained on. The files in
`EVALUATION_FILES` never are: `heldout.tsv`, the fixed third split off when the
set was written; `fresh.tsv`, written later, after the model then shipped was
frozen (the held-out third had by then been read for error analysis, so its
figures are optimistic); `boundary.tsv`, calm posts that carry complaint words
and complaints that look calm. A malformed line is an error naming file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.labels import SENTIMENTS
from monitor.domain import CATEGORIES

LENDING_DIR = Path(__file__).resolve().parents[2] / "data" / "lending"
_GRADES = ("P1", "P2", "P3", "P4", "none")
EVALUATION_FILES = {
    "lending_heldout": "heldout.tsv",
    "lending_fresh": "fresh.tsv",
    "lending_boundary": "boundary.tsv",
}


class LendingSetError(ValueError):
    pass


@dataclass(frozen=True)
class LabelledText:
    text: str
    severity: str
    sentiment: str
    categories: tuple[str, ...]


def read_lending(path: Path) -> list[LabelledText]:
    if not path.is_file():
        raise LendingSetError(
            f"{path}: lending set not found; it ships in the repository under data/lending/"
        )
    out: list[LabelledText] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["severity", "sentiment", "categories", "text"]:
            raise LendingSetError(f"{path}:1: header must be severity, sentiment, categories, text")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{lineno}"
            if len(row) != 4:
                raise LendingSetError(f"{where}: expected 4 tab-separated fields, found {len(row)}")
            severity, sentiment, cats, text = row
            categories = tuple(c for c in cats.split(",") if c)
            if severity not in _GRADES:
                raise LendingSetError(f"{where}: severity {severity!r} is not one of {_GRADES}")
            if sentiment not in SENTIMENTS:
                raise LendingSetError(
                    f"{where}: sentiment {sentiment!r} is not one of {SENTIMENTS}"
                )
            if (severity == "none") == (sentiment == "negative"):
                raise LendingSetError(f"{where}: only negative texts are graded P1-P4")
            unknown = [c for c in categories if c not in CATEGORIES]
            if unknown or not categories:
                raise LendingSetError(f"{where}: categories {cats!r}; use some of {CATEGORIES}")
            if not text.strip():
                raise LendingSetError(f"{where}: empty text")
            out.append(LabelledText(text, severity, sentiment, categories))
    return out


def evaluation_sets(lending_dir: Path = LENDING_DIR) -> dict[str, list[LabelledText]]:
    """The evaluation-only files by figure name; training removes their texts everywhere."""
    return {name: read_lending(lending_dir / file) for name, file in EVALUATION_FILES.items()}


def texts_of(sets: Mapping[str, list[LabelledText]]) -> list[str]:
    """Every text in these files: what training must never see."""
    return [r.text for rows in sets.values() for r in rows]
