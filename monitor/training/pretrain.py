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
from tqdm import tqdm
from transformers import BertConfig, BertForMaskedLM

from monitor.training.batches import bucketed
from monitor.training.common import Shape, encode, linear_schedule, pad

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
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    per_epoch = -(-len(rows) // batch_size)
    total = max(1, int(per_epoch * epochs))
    sched = linear_schedule(opt, total)
    lengths = [len(r) for r in rows]
    step, ema = 0, 0.0
    bar = tqdm(total=total, desc="pretrain (masked LM)", unit="batch", dynamic_ncols=True)
    while step < total:
        for batch in bucketed(lengths, batch_size, rng):
            if step >= total:
                break
            ids, attn = pad([rows[i] for i in batch])
            inputs, chosen = mask_tokens(ids, attn, config.vocab_size, gen)
            hidden = model.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
            logits = model.cls(hidden[chosen])
            loss = torch.nn.functional.cross_entropy(logits, ids[chosen])
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            ema = loss.item() if step == 1 else 0.98 * ema + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}")
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    minutes = round((time.monotonic() - started) / 60, 1)
    return {"mlm_loss": round(ema, 4), "steps": step, "texts": len(rows), "minutes": minutes}
