"""Stage 2: fine-tune the pretrained encoder on sentiment, categories and grade levels.

One output vector (labels.DEFAULT_LABELS): softmax over the three sentiment
outputs, a sigmoid per category and per grade level ("at least P2", "at least
P3"). Each example trains the parts it has labels for: public reviews only
sentiment (negative or positive; the bank comments also neutral), the lending
set all three.
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

from monitor.classify.labels import DEFAULT_LABELS, LEVELS
from monitor.domain import CATEGORIES, Severity
from monitor.training.common import encode, train_steps
from monitor.training.corpus import Example

N_SENT = 3


def targets(examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sentiment classes (-100: unlabelled), and the sigmoid outputs' targets with their mask."""
    sent = torch.tensor(
        [e.sentiment if e.sentiment is not None else -100 for e in examples], dtype=torch.long
    )
    width = len(CATEGORIES) + len(LEVELS)
    aspects = torch.zeros((len(examples), width))
    known = torch.zeros((len(examples), width))
    for i, e in enumerate(examples):
        if e.categories is not None:
            known[i, : len(CATEGORIES)] = 1.0
            for c in e.categories:
                aspects[i, CATEGORIES.index(c)] = 1.0
        if e.severity is not None:
            for j, level in enumerate(LEVELS, start=len(CATEGORIES)):
                known[i, j] = 1.0
                aspects[i, j] = float(Severity(e.severity).rank >= Severity(level).rank)
    return sent, aspects, known


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
    freeze_word_embeddings: bool = False,
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
    if freeze_word_embeddings:
        # A pretrained table keeps the pieces the labelled text never shows where the
        # encoder expects them; it is also most of the parameters AdamW would update.
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.train()
    started = time.monotonic()
    rows = encode(tok, [e.text for e in examples])
    sent, aspects, known = targets(examples)

    def loss_of(batch: list[int], ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, attention_mask=attn).logits
        idx = torch.tensor(batch)
        loss = torch.nn.functional.cross_entropy(logits[:, :N_SENT], sent[idx], ignore_index=-100)
        mask = known[idx]
        labelled = mask.sum(dim=1)
        if labelled.sum() > 0:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[:, N_SENT:], aspects[idx], reduction="none"
            )
            # A mean over each example's labelled outputs, then over the examples that have any.
            per = (bce * mask).sum(dim=1) / labelled.clamp(min=1.0)
            loss = loss + category_weight * per.sum() / (labelled > 0).sum()
        return loss

    ema, step = train_steps(
        model,
        rows,
        rng,
        loss_of,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        desc="fine-tune (sentiment, categories, levels)",
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
