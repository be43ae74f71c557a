"""`koubei train` end to end on a tiny stand-in for the public data, with a tiny model shape."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.classify.model_grader import ModelGrader
from monitor.classify.onnx_model import OnnxClassifier
from monitor.config import load_settings
from monitor.domain import CATEGORIES
from monitor.training.common import Shape
from monitor.training.corpus import DataMissing, load_public
from monitor.training.pipeline import TrainSettings, train
from tests.public_data import write_public_data

TINY = Shape(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
)


def _train(tmp: Path, data: Path, name: str) -> dict[str, object]:
    ts = TrainSettings(
        name=name,
        pretrain_epochs=1.0,
        finetune_epochs=1.0,
        lending_repeats=1,
        threads=1,
        shape=TINY,
    )
    return train(data, tmp / "models", tmp / "work" / name, load_settings(env={}), ts)


def test_training_writes_a_servable_model_folder_and_reproduces_it(tmp_path: Path) -> None:
    data = write_public_data(tmp_path / "data")
    metrics = _train(tmp_path, data, "a")
    folder = tmp_path / "models" / "a"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "label_map.json",
        "model.onnx",
        "metrics.json",
    ):
        assert (folder / name).is_file(), name
    written = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert written["shipped_onnx"] in ("int8", "fp32")
    ev = written["evaluation"]
    assert 0.0 <= ev["chnsenticorp_test"] <= 1.0
    assert ev["lending_heldout"]["texts"] > 190
    assert ev["lending_fresh"]["texts"] >= 150
    assert written["data"]["lending_train"] > 400
    assert metrics["model"] == "a"

    # Served without torch-specific files: the ONNX folder grades text.
    grader = ModelGrader(
        OnnxClassifier(folder, threads=1),
        load_settings(env={}).lexicon,
        load_settings(env={}).policy.raise_one_step,
    )
    verdict = grader.grade("催收威胁要上门，我已经报警了")
    assert verdict.model == "model:a"
    assert verdict.reasons
    (pred,) = grader.classifier.predict(["扣了我两次款"])
    assert set(pred.levels) == {"P2", "P3"} and set(pred.categories) == set(CATEGORIES)

    # The same data, seed and settings give the same weights.
    _train(tmp_path, data, "b")
    digest = [
        hashlib.sha256((tmp_path / "models" / n / "model.safetensors").read_bytes()).hexdigest()
        for n in ("a", "b")
    ]
    assert digest[0] == digest[1]


def test_evaluation_texts_never_reach_training(tmp_path: Path) -> None:
    data = write_public_data(tmp_path / "data")
    public = load_public(data)
    trained = {e.text for e in public.train} | set(public.unlabelled)
    held = {e.text for e in public.chnsenticorp_test + public.chnsenticorp_dev}
    held |= {e.text for e in public.waimai_heldout}
    assert held and not (trained & held)
    assert public.counts["removed_as_eval_copies"] > 0  # the stand-in repeats test texts in train


def test_missing_public_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataMissing, match="--data-dir"):
        load_public(tmp_path / "nowhere")
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "train", "--data-dir", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert result.returncode == 2
    assert "public training data not found" in result.stderr and "--data-dir" in result.stderr
