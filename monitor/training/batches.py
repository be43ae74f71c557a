"""Length-bucketed batches: on two CPU cores, padding is most of the cost of short reviews."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


def bucketed(
    lengths: Sequence[int], batch_size: int, rng: random.Random, bucket: int = 50
) -> Iterator[list[int]]:
    """Indices in batches of similar length, in a random order that `rng` fixes.

    Shuffle, cut into chunks of `bucket` batches, sort each chunk by length,
    batch it, then shuffle the batches: similar lengths without a fixed curriculum.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    chunk = batch_size * bucket
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    yield from batches
