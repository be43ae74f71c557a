"""A pretrained checkpoint cut down for serving: its first K layers and the pieces the data uses.

multilingual-e5-small has 250,002 unigram pieces (96M of its 117M parameters are the
word-embedding table), most of them in scripts a Chinese complaint never uses. Keeping
the pieces that tokenising the project's text needs, plus every single-character piece
(so an unseen word still falls back to its characters rather than to `<unk>`), shrinks
the table tenfold. The unigram tokenizer picks the most probable segmentation among the
pieces it has: a text whose best segmentation uses only kept pieces segments the same
way after pruning, so its ids are the old ids renumbered (`prune_tokenizer` keeps the
old order, so the special pieces keep their low ids).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from monitor.errors import KoubeiError


class PruneError(KoubeiError):
    """The tokenizer is not a unigram tokenizer this module can prune."""


def _unigram(spec: dict[str, Any]) -> list[list[Any]]:
    model = spec.get("model") or {}
    if model.get("type") != "Unigram":
        raise PruneError(
            f"only unigram tokenizers can be pruned; this one is {model.get('type')!r}"
        )
    vocab: list[list[Any]] = model["vocab"]
    return vocab


def used_pieces(
    spec: dict[str, Any], texts: Iterable[str], *, single_chars: bool = True
) -> list[int]:
    """Sorted ids of the pieces that tokenising `texts` uses, the special pieces, and (with
    `single_chars`) every one-character piece."""
    vocab = _unigram(spec)
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.no_truncation()
    tok.no_padding()
    keep: set[int] = {int(t["id"]) for t in spec.get("added_tokens", []) if t.get("special")}
    unk = spec["model"].get("unk_id")
    if unk is not None:
        keep.add(int(unk))
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 4096:
            keep.update(i for e in tok.encode_batch(batch) for i in e.ids)
            batch = []
    if batch:
        keep.update(i for e in tok.encode_batch(batch) for i in e.ids)
    if single_chars:
        keep.update(i for i, (piece, _) in enumerate(vocab) if len(piece.lstrip("▁")) <= 1)
    # Added tokens past the model's vocabulary (e5's <mask>) are not pieces of the model.
    return sorted(i for i in keep if i < len(vocab))


def prune_tokenizer(spec: dict[str, Any], keep: Sequence[int]) -> dict[str, Any]:
    """The tokenizer JSON with only the pieces `keep` (old ids, ascending), renumbered 0..n-1."""
    vocab = _unigram(spec)
    if list(keep) != sorted(set(keep)) or not keep or keep[-1] >= len(vocab):
        raise PruneError("keep must be distinct piece ids, ascending, inside the vocabulary")
    new_id = {old: new for new, old in enumerate(keep)}
    out = copy.deepcopy(spec)
    out["model"]["vocab"] = [vocab[i] for i in keep]
    unk = spec["model"].get("unk_id")
    if unk is not None:
        if unk not in new_id:
            raise PruneError(f"the unknown piece (id {unk}) must be kept")
        out["model"]["unk_id"] = new_id[unk]
    out["added_tokens"] = [
        {**t, "id": new_id[int(t["id"])]} for t in spec.get("added_tokens", []) if t["id"] in new_id
    ]
    post = out.get("post_processor")
    if post and post.get("type") == "TemplateProcessing":
        for special in post.get("special_tokens", {}).values():
            missing = [i for i in special["ids"] if i not in new_id]
            if missing:
                raise PruneError(f"special token {special['id']!r} (ids {missing}) must be kept")
            special["ids"] = [new_id[i] for i in special["ids"]]
    return out


def prune_checkpoint(
    src: Path, out: Path, texts: Iterable[str], layers: int, max_positions: int = 128
) -> dict[str, int]:
    """A BERT checkpoint from `src` with its first `layers` layers, `max_positions` positions
    and the word pieces `texts` use; the pruned tokenizer.json beside it."""
    import torch
    from transformers import BertModel

    spec = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    keep = used_pieces(spec, texts)
    model = BertModel.from_pretrained(str(src), add_pooling_layer=False)
    if not 1 <= layers <= model.config.num_hidden_layers:
        raise PruneError(f"layers must be 1-{model.config.num_hidden_layers}, got {layers}")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    config.vocab_size = len(keep)
    max_positions = min(max_positions, config.max_position_embeddings)
    config.max_position_embeddings = max_positions
    if config.pad_token_id is not None:
        config.pad_token_id = keep.index(config.pad_token_id)
    small = BertModel(config, add_pooling_layer=False)
    state = model.state_dict()
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][
        torch.tensor(keep)
    ]
    for name in ("embeddings.position_embeddings.weight",):
        state[name] = state[name][:max_positions]
    state.pop("embeddings.position_ids", None)
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < layers
    }
    missing, unexpected = small.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise PruneError(f"weights do not fit the cut model: missing {missing}, extra {unexpected}")
    out.mkdir(parents=True, exist_ok=True)
    small.save_pretrained(str(out))
    pruned = prune_tokenizer(spec, keep)
    (out / "tokenizer.json").write_text(json.dumps(pruned, ensure_ascii=False), encoding="utf-8")
    if (src / "tokenizer_config.json").is_file():
        (out / "tokenizer_config.json").write_bytes((src / "tokenizer_config.json").read_bytes())
    return {"pieces": len(keep), "pieces_before": len(_unigram(spec)), "layers": layers}
