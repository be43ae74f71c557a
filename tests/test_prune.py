"""Vocabulary pruning and layer cutting on a tiny checkpoint in the converted e5 layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from monitor.training.e5s1 import convert
from monitor.training.prune import PruneError, prune_tokenizer, used_pieces
from tests.test_e5s1 import LAYERS, _tensors, write_e5s1


@pytest.fixture
def hf(tmp_path: Path) -> Path:
    src = tmp_path / "tiny.bin"
    write_e5s1(src, _tensors(np.random.default_rng(11)))
    convert(src, tmp_path / "hf")
    return tmp_path / "hf"


def _spec(folder: Path) -> dict[str, object]:
    spec: dict[str, object] = json.loads((folder / "tokenizer.json").read_text("utf-8"))
    return spec


def _tok(spec: dict[str, object]) -> Tokenizer:
    return Tokenizer.from_str(json.dumps(spec))


def test_covered_text_gets_the_full_tokenizers_ids_renumbered(hf: Path) -> None:
    spec = _spec(hf)
    keep = used_pieces(spec, ["ab 中文"], single_chars=False)
    full, pruned = _tok(spec), _tok(prune_tokenizer(spec, keep))
    assert pruned.get_vocab_size() == len(keep) < full.get_vocab_size()
    new_id = {old: new for new, old in enumerate(keep)}
    for text in ("ab 中文", "中文 ab ab", "ａb"):  # full-width a folds to a: still covered
        want = [new_id[i] for i in full.encode(text).ids]
        assert pruned.encode(text).ids == want
        assert pruned.encode(text).tokens == full.encode(text).tokens
    # The special pieces keep their ids, so the pad id in config.json stays right.
    assert [pruned.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]


def test_a_word_whose_piece_was_dropped_falls_back_to_its_characters(hf: Path) -> None:
    spec = _spec(hf)
    keep = used_pieces(spec, ["中文"])  # "▁ab" is never used, single characters are kept
    pruned = _tok(prune_tokenizer(spec, keep))
    assert "▁ab" not in pruned.get_vocab()
    assert pruned.encode("ab").tokens == ["<s>", "▁", "a", "b", "</s>"]
    # A character no piece covers is the unknown piece, as before pruning.
    assert pruned.encode("x").ids == [0, pruned.token_to_id("▁"), 3, 2]


def test_cut_checkpoint_computes_what_the_full_model_computes(hf: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the train extra (torch) loads the checkpoint")
    from transformers import BertModel

    from monitor.training.prune import prune_checkpoint

    texts = ["中文"]  # "▁ab" goes
    info = prune_checkpoint(hf, tmp_path / "cut", texts, layers=LAYERS, max_positions=8)
    assert info["pieces"] < info["pieces_before"]
    full = BertModel.from_pretrained(str(hf), add_pooling_layer=False)
    cut = BertModel.from_pretrained(str(tmp_path / "cut"), add_pooling_layer=False)
    full.eval(), cut.eval()  # type: ignore[no-untyped-call]
    assert cut.config.vocab_size == info["pieces"] and cut.config.max_position_embeddings == 8
    full_ids = _tok(_spec(hf)).encode("中文 中文").ids
    cut_ids = Tokenizer.from_file(str(tmp_path / "cut" / "tokenizer.json")).encode("中文 中文").ids
    with torch.no_grad():
        want = full(input_ids=torch.tensor([full_ids])).last_hidden_state
        got = cut(input_ids=torch.tensor([cut_ids])).last_hidden_state
    torch.testing.assert_close(got, want)

    prune_checkpoint(hf, tmp_path / "one", texts, layers=1)
    one = BertModel.from_pretrained(str(tmp_path / "one"), add_pooling_layer=False)
    assert one.config.num_hidden_layers == len(one.encoder.layer) == 1
    assert torch.equal(
        one.state_dict()["encoder.layer.0.output.dense.weight"],
        full.state_dict()["encoder.layer.0.output.dense.weight"],
    )
    with pytest.raises(PruneError, match="layers must be 1-2"):
        prune_checkpoint(hf, tmp_path / "none", texts, layers=0)


def test_only_unigram_tokenizers_are_pruned(hf: Path) -> None:
    spec = _spec(hf)
    spec["model"] = {"type": "WordPiece", "vocab": {}}
    with pytest.raises(PruneError, match="only unigram tokenizers"):
        used_pieces(spec, ["ab"])
    with pytest.raises(PruneError, match="ascending"):
        prune_tokenizer(_spec(hf), [3, 1])
    with pytest.raises(PruneError, match="unknown piece"):
        prune_tokenizer(_spec(hf), [0, 1, 2])
