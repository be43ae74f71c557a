"""Cohen's kappa between two labellers' label files, per field, on the posts both labelled.

Severity and sentiment are nominal fields (unweighted kappa; severity also gets
the share within one grade). Each category and each signal is a binary field
(present or not) with its own kappa; `categories (set)` is the share of posts
whose whole category set agrees exactly (raw agreement, no chance correction).

    python -m monitor.classify.real_agreement FIRST.tsv SECOND.tsv
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.real_set import GRADES, SIGNALS, RealLabel, RealSetError, read_labels
from monitor.domain import CATEGORIES


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Unweighted Cohen's kappa; 1.0 when both agree everywhere on one value (no variance)."""
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty sequences")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class FieldAgreement:
    field: str
    kappa: float | None  # None: raw agreement only
    agreement: float
    positives: int = 0  # binary fields: posts where either labeller marked it


def agreement(first: Sequence[RealLabel], second: Sequence[RealLabel]) -> list[FieldAgreement]:
    by_key = {(r.file, r.text_sha): r for r in second}
    pairs = [(r, by_key[(r.file, r.text_sha)]) for r in first if (r.file, r.text_sha) in by_key]
    if not pairs:
        raise RealSetError("the two label files share no post")
    n = len(pairs)
    out: list[FieldAgreement] = []

    def nominal(name: str, a: list[str], b: list[str]) -> None:
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / n
        out.append(FieldAgreement(name, cohen_kappa(a, b), agree))

    nominal("severity", [p.severity for p, _ in pairs], [q.severity for _, q in pairs])
    rank = {g: i for i, g in enumerate(GRADES)}
    within = sum(abs(rank[p.severity] - rank[q.severity]) <= 1 for p, q in pairs) / n
    out.append(FieldAgreement("severity within one", None, within))
    nominal("sentiment", [p.sentiment for p, _ in pairs], [q.sentiment for _, q in pairs])
    sets = sum(set(p.categories) == set(q.categories) for p, q in pairs) / n
    out.append(FieldAgreement("categories (set)", None, sets))
    for kind, names in (("category", CATEGORIES), ("signal", SIGNALS)):
        for name in names:
            a = [name in (p.categories if kind == "category" else p.signals) for p, _ in pairs]
            b = [name in (q.categories if kind == "category" else q.signals) for _, q in pairs]
            either = sum(x or y for x, y in zip(a, b, strict=True))
            agree = sum(x == y for x, y in zip(a, b, strict=True)) / n
            out.append(FieldAgreement(f"{kind}:{name}", cohen_kappa(a, b), agree, either))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monitor.classify.real_agreement")
    p.add_argument("first", type=Path)
    p.add_argument("second", type=Path)
    args = p.parse_args(argv)
    try:
        first, second = read_labels(args.first), read_labels(args.second)
        rows = agreement(first, second)
    except RealSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shared = {(r.file, r.text_sha) for r in first} & {(r.file, r.text_sha) for r in second}
    print(f"{len(shared)} posts labelled by both")
    print(f"{'field':28} {'kappa':>6} {'agree':>6} {'marked':>6}")
    for r in rows:
        kappa = "-" if r.kappa is None else f"{r.kappa:.3f}"
        marked = str(r.positives) if r.field.startswith(("category:", "signal:")) else ""
        print(f"{r.field:28} {kappa:>6} {r.agreement:>6.3f} {marked:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
