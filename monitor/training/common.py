"""What every training stage shares: the model shape, seeding, schedules and encoding."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from tokenizers import Tokenizer

from monitor.classify.textprep import prepare


@dataclass(frozen=True)
class Shape:
    """Small enough for 1,000+ texts/s on two cores, big enough to learn from 100k reviews."""

    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 3
    intermediate_size: int = 768
    max_position_embeddings: int = 128

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def seed_everything(seed: int, threads: int | None = None) -> random.Random:
    # The same seed and thread count give the same weights: `koubei train` reproduces the model.
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads or min(os.cpu_count() or 1, 8))
    return random.Random(seed)


def encode(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch([prepare(t) for t in texts])]


def pad(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def linear_schedule(
    opt: torch.optim.Optimizer, total_steps: int, warmup: float = 0.06
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
