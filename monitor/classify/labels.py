"""The model's output layout: one logit vector, sentiment first, then categories.

A model directory's config.json `id2label` names every output, e.g.
"sentiment:negative" or "category:fees". A model with only the three sentiment
outputs (a user's own fine-tune) works too: categories then come from the lexicon.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain import CATEGORIES

SENTIMENTS = ("negative", "neutral", "positive")
DEFAULT_LABELS = tuple(f"sentiment:{s}" for s in SENTIMENTS) + tuple(
    f"category:{c}" for c in CATEGORIES
)


class LabelMapError(ValueError):
    pass


@dataclass(frozen=True)
class LabelMap:
    sentiment_index: tuple[int, int, int]  # positions of negative, neutral, positive
    categories: tuple[tuple[str, int], ...]  # (name, position)
    size: int

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
        cats = tuple(
            (name.split(":", 1)[1], i)
            for name, i in sorted(names.items(), key=lambda kv: kv[1])
            if name.startswith("category:") and name.split(":", 1)[1] in CATEGORIES
        )
        return cls((sent[0], sent[1], sent[2]), cats, len(names))
