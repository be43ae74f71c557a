"""Stage 2: fine-tune the pretrained encoder on sentiment (3-way) and categories (multi-label).

One output vector (labels.DEFAULT_LABELS): softmax over the three sentiment
outputs, a sigmoid per category. Each example trains the parts it has labels
for: public reviews only sentiment (negative or positive; the bank comments
also neutral), the lending set both.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import BertForSequenceClassification
from transformers.utils import logging as hf_logging

from monitor.classify.labels import DEFAULT_LABELS
from monitor.domain import CATEGORIES
from monitor.training.common import encode, train_steps
from monitor.training.corpus import Example

N_SENT = 3


def targets(examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sent = torch.tensor(
        [e.sentiment if e.sentiment is not None else -100 for e in examples], dtype=torch.long
    )
    cats = torch.zeros((len(examples), len(CATEGORIES)))
    has_cats = torch.zeros(len(examples))
    for i, e in enumerate(examples):
        if e.categories is not None:
            has_cats[i] = 1.0
            for c in e.categories:
                cats[i, CATEGORIES.index(c)] = 1.0
    return sent, cats, has_cats


def finetune(
    pretrained: Path,
    tok: Tokenizer,
    examples: Sequence[Example],
    out: Path,
    rng: random.Random,
    *,
    epochs: float,
    batch_size: int = 32,
    lr: float = 2e-4,
    category_weight: float = 1.0,
) -> dict[str, float]:
    # The pretrained folder has an MLM head and no classifier: the load report saying so is noise.
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    model = BertForSequenceClassification.from_pretrained(
        str(pretrained),
        num_labels=len(DEFAULT_LABELS),
        id2label=dict(enumerate(DEFAULT_LABELS)),
        label2id={name: i for i, name in enumerate(DEFAULT_LABELS)},
        problem_type="multi_label_classification",  # informational: the loss below is our own
    )
    model.train()
    started = time.monotonic()
    rows = encode(tok, [e.text for e in examples])
    sent, cats, has_cats = targets(examples)

    def loss_of(batch: list[int], ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, attention_mask=attn).logits
        idx = torch.tensor(batch)
        loss = torch.nn.functional.cross_entropy(logits[:, :N_SENT], sent[idx], ignore_index=-100)
        weight = has_cats[idx]
        if weight.sum() > 0:
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[:, N_SENT:], cats[idx], reduction="none"
            ).mean(dim=1)
            loss = loss + category_weight * (per * weight).sum() / weight.sum()
        return loss

    ema, step = train_steps(
        model,
        rows,
        rng,
        loss_of,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        desc="fine-tune (sentiment + categories)",
    )
    model.eval()  # type: ignore[no-untyped-call]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    minutes = round((time.monotonic() - started) / 60, 1)
    return {
        "finetune_loss": round(ema, 4),
        "steps": step,
        "examples": len(rows),
        "minutes": minutes,
    }
