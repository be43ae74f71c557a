"""The transformer served by ONNX Runtime: loaded once per process, batched, no torch.

A model directory holds what `koubei train` writes (or `koubei export-onnx`
adds to any Hugging Face sequence-classification checkpoint): config.json with
`id2label`, tokenizer.json (or a BERT vocab.txt) and model.onnx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from monitor.classify.labels import LabelMap, LabelMapError
from monitor.classify.textprep import MAX_CHARS, prepare
from monitor.errors import ModelError

ONNX_FILE = "model.onnx"


def _rebuild_hint(path: Path) -> str:
    return (
        f"Rebuild it with `koubei train` (writes {path}), restore it with "
        f"`git checkout -- {path}`, or for your own Hugging Face checkpoint run "
        f"`koubei export-onnx {path}`; or set classifier.kind: rules in config/koubei.yaml."
    )


def _load_tokenizer(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    if (path / "vocab.txt").is_file():  # an older BERT checkpoint: WordPiece over vocab.txt
        from tokenizers import BertWordPieceTokenizer

        bert = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True)
        tok: Tokenizer = bert._tokenizer
        return tok
    raise FileNotFoundError("tokenizer.json or vocab.txt")


class OnnxClassifier:
    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        if not path.is_dir():
            raise ModelError(f"model directory {path} does not exist. {_rebuild_hint(path)}")
        missing = [n for n in ("config.json", ONNX_FILE) if not (path / n).is_file()]
        if missing:
            raise ModelError(
                f"model directory {path} lacks {', '.join(missing)}. {_rebuild_hint(path)}"
            )
        try:
            config: dict[str, Any] = json.loads((path / "config.json").read_text("utf-8"))
            self.labels = LabelMap.parse(
                {int(k): v for k, v in (config.get("id2label") or {}).items()}
            )
        except (ValueError, LabelMapError) as exc:
            raise ModelError(f"{path / 'config.json'}: {exc}. {_rebuild_hint(path)}") from exc
        self.max_len = min(int(config.get("max_position_embeddings", 512)), MAX_CHARS + 2)
        self.version = str(config.get("koubei_version") or path.name)
        try:
            self.tokenizer = _load_tokenizer(path)
        except Exception as exc:
            raise ModelError(
                f"{path}: cannot read the tokenizer ({exc}). {_rebuild_hint(path)}"
            ) from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path / ONNX_FILE), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(
                f"{path / ONNX_FILE} is not a readable ONNX model ({type(exc).__name__}). "
                f"{_rebuild_hint(path)}"
            ) from exc
        self._inputs = {i.name for i in self.session.get_inputs()}
        out_width = self.session.get_outputs()[0].shape[-1]
        if isinstance(out_width, int) and out_width != self.labels.size:
            raise ModelError(
                f"{path}: the ONNX model has {out_width} outputs but config.json names "
                f"{self.labels.size}. {_rebuild_hint(path)}"
            )

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Raw outputs, one row per text, in input order. Texts are batched by length."""
        prepared = [prepare(t) for t in texts]
        encodings = self.tokenizer.encode_batch(prepared)
        rows = [e.ids for e in encodings]
        out = np.zeros((len(rows), self.labels.size), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            width = max(len(rows[i]) for i in part)
            ids = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for j, i in enumerate(part):
                ids[j, : len(rows[i])] = rows[i]
                mask[j, : len(rows[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            out[part] = self.session.run(None, feed)[0]
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        raw = self.logits(texts, batch_size)
        neg, neu, pos = self.labels.sentiment_index
        sent = raw[:, [neg, neu, pos]]
        sent = np.exp(sent - sent.max(axis=1, keepdims=True))
        sent /= sent.sum(axis=1, keepdims=True)
        preds = []
        for r in range(raw.shape[0]):
            cats = {name: _sigmoid(raw[r, i]) for name, i in self.labels.categories}
            levels = {grade: _sigmoid(raw[r, i]) for grade, i in self.labels.levels}
            preds.append(Prediction(tuple(float(x) for x in sent[r]), cats, levels))
        return preds


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


class Prediction:
    __slots__ = ("categories", "levels", "sentiment")

    def __init__(
        self,
        sentiment: tuple[float, ...],
        categories: dict[str, float],
        levels: dict[str, float] | None = None,
    ) -> None:
        self.sentiment = sentiment  # probabilities of negative, neutral, positive
        self.categories = categories  # name -> probability (empty for sentiment-only models)
        self.levels = levels or {}  # "P2"/"P3" -> probability the complaint is at least that grave
