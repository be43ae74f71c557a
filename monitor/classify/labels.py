"""The model's output layout: one logit vector, sentiment first, then categories, then levels.

A model directory's config.json `id2label` names every output, e.g.
"sentiment:negative", "category:fees" or "level:P2". A level output is the
model's reading of "a complaint at least this grave" (P2: money or rights
harmed; P3: a failure that blocks the customer), learnt from the graded
lending set; the severity policy may raise a grade to it (model_grader.py).
A model with only the three sentiment outputs (a user's own fine-tune) works
too: categories and grades then come from the lexicon alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain import CATEGORIES

SENTIMENTS = ("negative", "neutral", "positive")
# Cumulative: "level:P3" is P3 or graver, so the two outputs never contradict the order.
LEVELS = ("P2", "P3")
DEFAULT_LABELS = (
    tuple(f"sentiment:{s}" for s in SENTIMENTS)
    + tuple(f"category:{c}" for c in CATEGORIES)
    + tuple(f"level:{g}" for g in LEVELS)
)


class LabelMapError(ValueError):
    pass


@dataclass(frozen=True)
class LabelMap:
    sentiment_index: tuple[int, int, int]  # positions of negative, neutral, positive
    categories: tuple[tuple[str, int], ...]  # (name, position)
    size: int
    levels: tuple[tuple[str, int], ...] = ()  # (grade, position)

    @classmethod
    def parse(cls, id2label: dict[int, str]) -> LabelMap:
        names = {str(v).lower(): int(k) for k, v in id2label.items()}
        try:
            sent = tuple(names[f"sentiment:{s}"] for s in SENTIMENTS)
        except KeyError:
            # A plain three-way sentiment fine-tune, labelled by name.
            try:
                sent = tuple(names[s] for s in SENTIMENTS)
            except KeyError:
                raise LabelMapError(
                    "config.json id2label must name the outputs 'sentiment:negative', "
                    "'sentiment:neutral', 'sentiment:positive' (and optionally 'category:<name>'); "
                    f"found {sorted(names)}"
                ) from None
        ordered = sorted(names.items(), key=lambda kv: kv[1])
        cats = tuple(
            (name.split(":", 1)[1], i)
            for name, i in ordered
            if name.startswith("category:") and name.split(":", 1)[1] in CATEGORIES
        )
        # id2label names were lower-cased above; grades are spelt "P2".
        levels = tuple(
            (name.split(":", 1)[1].upper(), i)
            for name, i in ordered
            if name.startswith("level:") and name.split(":", 1)[1].upper() in LEVELS
        )
        return cls((sent[0], sent[1], sent[2]), cats, len(names), levels)
