"""Stage 1: masked-language-model pretraining on all the text we may train on.

Only masked positions go through the output layer: on a CPU the 8,000-way
softmax over every position would cost more than the encoder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import BertConfig, BertForMaskedLM

from monitor.training.common import Shape, encode, train_steps

SPECIAL_IDS = 5  # [PAD] [UNK] [CLS] [SEP] [MASK] are ids 0-4
MASK_ID = 4


def mask_tokens(
    ids: torch.Tensor, attn: torch.Tensor, vocab_size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's recipe: 15% of real tokens; of those 80% [MASK], 10% random, 10% kept."""
    can = (ids >= SPECIAL_IDS) & (attn == 1)
    chosen = (torch.rand(ids.shape, generator=gen) < 0.15) & can
    if not chosen.any():
        chosen = can & (torch.cumsum(can.long(), dim=1) == 1)
    roll = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = MASK_ID
    rand_pos = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[rand_pos] = torch.randint(SPECIAL_IDS, vocab_size, ids.shape, generator=gen)[rand_pos]
    return inputs, chosen


def pretrain(
    texts: Sequence[str],
    tok: Tokenizer,
    shape: Shape,
    out: Path,
    rng: random.Random,
    *,
    epochs: float,
    batch_size: int = 64,
    lr: float = 5e-4,
    seed: int = 0,
) -> dict[str, float]:
    started = time.monotonic()
    rows = encode(tok, texts)
    rows = [r for r in rows if len(r) > 3]
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
    )
    model = BertForMaskedLM(config)
    model.train()
    gen = torch.Generator().manual_seed(seed)

    def loss_of(_: list[int], ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        inputs, chosen = mask_tokens(ids, attn, config.vocab_size, gen)
        hidden = model.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
        logits = model.cls(hidden[chosen])
        return torch.nn.functional.cross_entropy(logits, ids[chosen])

    ema, step = train_steps(
        model,
        rows,
        rng,
        loss_of,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        desc="pretrain (masked LM)",
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    minutes = round((time.monotonic() - started) / 60, 1)
    return {"mlm_loss": round(ema, 4), "steps": step, "texts": len(rows), "minutes": minutes}
