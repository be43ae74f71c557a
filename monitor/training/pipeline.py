"""`koubei train`: public data, vocabulary, MLM pretraining, fine-tuning, ONNX, metrics."""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from monitor.classify import GradeInput
from monitor.classify.factory import model_grader
from monitor.classify.labels import DEFAULT_LABELS
from monitor.classify.lending_set import (
    EVALUATION_FILES,
    LENDING_DIR,
    LabelledText,
    evaluation_sets,
    read_lending,
    texts_of,
)
from monitor.classify.onnx_model import ONNX_FILE, OnnxClassifier
from monitor.config import Settings
from monitor.training import stages
from monitor.training.common import Shape, seed_everything
from monitor.training.corpus import NEG, NEU, POS, Example, PublicData, load_public
from monitor.training.evaluate import binary_accuracy, lending_figures_by_file
from monitor.training.export import export_onnx, quantize_int8
from monitor.training.finetune import finetune
from monitor.training.pretrain import pretrain
from monitor.training.vocab import build_vocab, make_tokenizer, save_tokenizer

_SENT = {"negative": NEG, "neutral": NEU, "positive": POS}
INT8_TOLERANCE = 0.005  # int8 ships when it loses at most half a point on the dev set


@dataclass(frozen=True)
class TrainSettings:
    name: str = "koubei-bert-small"
    seed: int = 20261128
    pretrain_epochs: float = 4.0
    finetune_epochs: float = 2.0
    lending_repeats: int = 8
    # Stage 3: a few passes over the lending set with as many public texts beside it, so the
    # category outputs (learnt from 400 texts among 80,000) are not drowned out.
    specialise_epochs: float = 8.0
    # The category loss is a mean over ten mostly-zero labels: weighted like this it is
    # comparable to the sentiment loss, and the category outputs move off their priors.
    specialise_category_weight: float = 10.0
    specialise_lr: float = 3e-4
    threads: int | None = None
    shape: Shape = field(default_factory=Shape)
    limit: int | None = None  # first N public texts only: for smoke runs and tests


def pretrain_stage(
    public: PublicData, settings: TrainSettings, work: Path
) -> tuple[Tokenizer, Path, dict[str, Any]]:
    """Vocabulary and MLM weights from the public data only (so a lending-set edit reuses them)."""
    texts = public.unlabelled + [e.text for e in public.train]
    vocab = build_vocab(texts)
    tok = make_tokenizer(vocab)
    folder = work / "pretrain"
    stage_key = stages.key(
        vocab=vocab,
        texts=len(texts),
        counts=public.counts,
        seed=settings.seed,
        epochs=settings.pretrain_epochs,
        shape=settings.shape.as_dict(),
    )

    def compute() -> dict[str, Any]:
        rng = seed_everything(settings.seed, settings.threads)
        info = pretrain(
            texts,
            tok,
            settings.shape,
            folder,
            rng,
            epochs=settings.pretrain_epochs,
            seed=settings.seed,
        )
        tok.save(str(folder / "tokenizer.json"))
        return info

    return tok, folder, stages.run(folder, stage_key, "the pretrained encoder", compute)


def finetune_stage(
    tok: Tokenizer,
    pre_dir: Path,
    pre_key: str,
    public: PublicData,
    lending_train: list[LabelledText],
    ts: TrainSettings,
    work: Path,
) -> tuple[Path, dict[str, Any]]:
    """Fine-tuned weights, reused when nothing that shapes them changed (a policy edit, say)."""
    folder = work / "finetune"
    stage_key = stages.key(
        pretrain=pre_key,
        lending=[(r.text, r.sentiment, r.categories, r.severity) for r in lending_train],
        labels=DEFAULT_LABELS,
        counts=public.counts,
        seed=ts.seed,
        epochs=ts.finetune_epochs,
        repeats=ts.lending_repeats,
    )

    def compute() -> dict[str, Any]:
        rng = seed_everything(ts.seed + 1, ts.threads)
        examples = public.train + lending_examples(lending_train, ts.lending_repeats)
        return finetune(pre_dir, tok, examples, folder, rng, epochs=ts.finetune_epochs)

    return folder, stages.run(folder, stage_key, "the fine-tuned model", compute)


def specialise_stage(
    tok: Tokenizer,
    ft_dir: Path,
    ft_key: str,
    public: PublicData,
    lending_train: list[LabelledText],
    ts: TrainSettings,
    work: Path,
) -> tuple[Path, dict[str, Any]]:
    folder = work / "specialise"
    stage_key = stages.key(
        finetune=ft_key,
        epochs=ts.specialise_epochs,
        weight=ts.specialise_category_weight,
        lr=ts.specialise_lr,
        seed=ts.seed,
    )

    def compute() -> dict[str, Any]:
        rng = seed_everything(ts.seed + 2, ts.threads)
        lending = lending_examples(lending_train, 1)
        beside = rng.sample(public.train, min(len(public.train), len(lending)))
        return finetune(
            ft_dir,
            tok,
            lending + beside,
            folder,
            rng,
            epochs=ts.specialise_epochs,
            lr=ts.specialise_lr,
            category_weight=ts.specialise_category_weight,
        )

    return folder, stages.run(folder, stage_key, "the specialised model", compute)


def lending_examples(rows: list[LabelledText], repeats: int) -> list[Example]:
    one = [Example(r.text, _SENT[r.sentiment], r.categories, "lending", r.severity) for r in rows]
    return one * repeats


def train(
    data_dir: Path,
    out_root: Path,
    work: Path,
    settings: Settings,
    ts: TrainSettings,
    lending_dir: Path = LENDING_DIR,
) -> dict[str, Any]:
    started = time.monotonic()
    lending_train = read_lending(lending_dir / "train.tsv")
    lending_eval = evaluation_sets(lending_dir)
    public = load_public(data_dir, exclude=texts_of(lending_eval))
    if ts.limit is not None:
        public.train = public.train[: ts.limit]
        public.unlabelled = public.unlabelled[: ts.limit]
        public.chnsenticorp_dev = public.chnsenticorp_dev[: ts.limit]
        public.chnsenticorp_test = public.chnsenticorp_test[: ts.limit]
        public.waimai_heldout = public.waimai_heldout[: ts.limit]
    print(f"public data: {public.counts}; lending set: {len(lending_train)} train")
    work.mkdir(parents=True, exist_ok=True)
    tok, pre_dir, pre_info = pretrain_stage(public, ts, work)

    ft_dir, ft_info = finetune_stage(tok, pre_dir, pre_info["key"], public, lending_train, ts, work)
    sp_dir, sp_info = specialise_stage(tok, ft_dir, ft_info["key"], public, lending_train, ts, work)

    out = out_root / ts.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _write_model_dir(sp_dir, tok, out, ts)
    fp32 = work / "model.fp32.onnx"
    export_onnx(out, fp32)
    _check_export(out, fp32, tok)
    int8 = work / "model.int8.onnx"
    quantize_int8(fp32, int8)

    figures: dict[str, Any] = {}
    for kind, file in (("fp32", fp32), ("int8", int8)):
        shutil.copyfile(file, out / ONNX_FILE)
        figures[kind] = evaluate(out, settings, public, lending_eval, ts.threads)
    dev32, dev8 = figures["fp32"]["chnsenticorp_dev"], figures["int8"]["chnsenticorp_dev"]
    shipped = "int8" if dev8 >= dev32 - INT8_TOLERANCE else "fp32"
    shutil.copyfile(int8 if shipped == "int8" else fp32, out / ONNX_FILE)

    metrics = {
        "model": ts.name,
        "shipped_onnx": shipped,
        "int8_rule": f"int8 ships if its ChnSentiCorp dev accuracy is within {INT8_TOLERANCE}",
        "evaluation": figures[shipped],
        "evaluation_fp32": figures["fp32"],
        "evaluation_int8": figures["int8"],
        "data": {
            "data_dir": str(data_dir),
            "public_counts": public.counts,
            "lending_train": len(lending_train),
            **{name: len(rows) for name, rows in lending_eval.items()},
            "lending_repeats": ts.lending_repeats,
            "dedupe": "ChnSentiCorp dev+test, waimai held-out sixth and the lending evaluation "
            f"files ({', '.join(EVALUATION_FILES.values())}) removed from every training text",
        },
        "training": {
            **asdict(ts),
            "pretrain": pre_info,
            "finetune": ft_info,
            "specialise": sp_info,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "minutes_this_run": round((time.monotonic() - started) / 60, 1),
        },
        "parameters": sum(p.numel() for p in _load_torch(out).parameters()),
    }
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return metrics


def _write_model_dir(ft_dir: Path, tok: Tokenizer, out: Path, ts: TrainSettings) -> None:
    config = json.loads((ft_dir / "config.json").read_text(encoding="utf-8"))
    config["koubei_version"] = ts.name
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(ft_dir / "model.safetensors", out / "model.safetensors")
    save_tokenizer(tok, out)
    labels = {str(k): v for k, v in config["id2label"].items()}
    (out / "label_map.json").write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n")


def _load_torch(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    model: torch.nn.Module = AutoModelForSequenceClassification.from_pretrained(
        str(path), attn_implementation="eager"
    )
    return model.eval()


def _check_export(model_dir: Path, onnx_file: Path, tok: Tokenizer) -> None:
    """The ONNX graph must agree with torch on a padded batch, or padding leaks into the answer."""
    import onnxruntime as ort

    model = _load_torch(model_dir)
    rows = [e.ids for e in tok.encode_batch(["还款失败", "客服态度很好，问题解决了，谢谢"])]
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    got = ort.InferenceSession(str(onnx_file)).run(None, {"input_ids": ids, "attention_mask": mask})
    if not np.allclose(want, got[0], atol=1e-3):
        raise RuntimeError(f"ONNX export of {model_dir} disagrees with torch on a padded batch")


def evaluate(
    model_dir: Path,
    settings: Settings,
    public: PublicData,
    lending_eval: Mapping[str, list[LabelledText]],
    threads: int | None = None,
) -> dict[str, Any]:
    clf = OnnxClassifier(model_dir, threads=threads)
    grader = model_grader(settings, clf)

    def probs(examples: list[Example]) -> list[tuple[float, ...]]:
        return [p.sentiment for p in clf.predict([e.text for e in examples])]

    return {
        "chnsenticorp_dev": round(
            binary_accuracy(probs(public.chnsenticorp_dev), public.chnsenticorp_dev), 4
        ),
        "chnsenticorp_test": round(
            binary_accuracy(probs(public.chnsenticorp_test), public.chnsenticorp_test), 4
        ),
        "waimai_heldout": round(
            binary_accuracy(probs(public.waimai_heldout), public.waimai_heldout), 4
        ),
        **lending_figures_by_file(
            lambda texts: grader.grade_many([GradeInput(t) for t in texts]), lending_eval
        ),
    }
