"""The grader's model against its targets and baselines, in one process on this machine.

Prints accuracy on ChnSentiCorp test and on the held-out sixth of waimai_10k;
on the held-out lending set, sentiment accuracy, severity exact and within-one,
P1 recall and precision and how many neutral or positive texts were graded P1
or P2; texts per second at batch 1 and 64; model size, load time and the peak
memory of `koubei classify`. Side by side, in the same run: SnowNLP, a
character 1-3-gram TF-IDF + logistic regression trained on the same data, the
rules grader, and a bert-base-sized model with random weights in the same
runtime (speed only). Usage:

    .venv/bin/python bench/classify.py [--data-dir ../shared/data] [--threads 2]

Needs the public data (skips with a message when absent) and, for the TF-IDF,
SnowNLP and bert-base rows, the `train` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "koubei-bert-small"


def rate(fn: Callable[[Sequence[str]], object], texts: Sequence[str], seconds: float = 8) -> float:
    """Texts per second over repeated passes until `seconds` have gone by (one warm-up first)."""
    fn(texts[: min(len(texts), 64)])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(texts)
        done += len(texts)
    return done / (time.perf_counter() - start)


def one_by_one(fn: Callable[[Sequence[str]], object]) -> Callable[[Sequence[str]], object]:
    def run(texts: Sequence[str]) -> None:
        for t in texts:
            fn([t])

    return run


def dir_mb(path: Path, names: Sequence[str] | None = None) -> float:
    files = [p for p in path.iterdir() if p.is_file() and (names is None or p.name in names)]
    return sum(p.stat().st_size for p in files) / 1e6


def peak_memory_of_classify(texts: Sequence[str], threads: int) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of `koubei classify --input` over the texts, in a child."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write("\n".join(texts) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "koubei"), "classify", "--input", f.name],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    os.unlink(f.name)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--threads", type=int, default=2, help="the CI machine has two cores")
    parser.add_argument("--seconds", type=float, default=8.0, help="per speed figure")
    parser.add_argument("--skip-bert-base", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from monitor.training.corpus import DataMissing, load_public

    data_dir = args.data_dir or Path(os.environ.get("KOUBEI_DATA_DIR") or ROOT / "../shared/data")
    from monitor.classify.lending_set import evaluation_sets, texts_of

    lending = evaluation_sets()
    heldout = lending["lending_heldout"]
    try:
        public = load_public(data_dir, exclude=texts_of(lending))
    except DataMissing as exc:
        print(f"skipped: {exc}")
        return 0

    from monitor.classify import GradeInput
    from monitor.classify.factory import model_grader
    from monitor.classify.onnx_model import OnnxClassifier
    from monitor.classify.rules import RulesGrader
    from monitor.config import load_settings
    from monitor.training.evaluate import binary_accuracy, lending_figures_by_file

    settings = load_settings(env={})
    figures: dict[str, Any] = {"threads": args.threads}
    t0 = time.perf_counter()
    clf = OnnxClassifier(args.model, threads=args.threads)
    clf.predict(["加载完成"])
    figures["load_seconds"] = round(time.perf_counter() - t0, 3)
    figures["model_dir_mb"] = round(dir_mb(args.model), 2)
    figures["served_files_mb"] = round(
        dir_mb(args.model, ["model.onnx", "tokenizer.json", "config.json"]), 2
    )
    grader = model_grader(settings, clf)

    def model_probs(texts: Sequence[str]) -> list[tuple[float, ...]]:
        return [p.sentiment for p in clf.predict(texts)]

    csc, waimai = public.chnsenticorp_test, public.waimai_heldout
    csc_texts = [e.text for e in csc]
    short_texts = [r.text for r in heldout] + [e.text for e in waimai][:824]  # 1,028 short texts
    model: dict[str, Any] = {
        "chnsenticorp_test": binary_accuracy(model_probs(csc_texts), csc),
        "waimai_heldout": binary_accuracy(model_probs([e.text for e in waimai]), waimai),
        **lending_figures_by_file(
            lambda ts: grader.grade_many([GradeInput(t) for t in ts]), lending
        ),
        "per_s_batch1": rate(one_by_one(clf.predict), short_texts[:200], args.seconds),
        "per_s_batch64": rate(lambda ts: clf.predict(ts, 64), short_texts, args.seconds),
        "per_s_batch64_chnsenticorp": rate(lambda ts: clf.predict(ts, 64), csc_texts, args.seconds),
    }
    figures["model"] = model
    rss, wall = peak_memory_of_classify(short_texts * 5, args.threads)
    figures["classify_cli"] = {"texts": len(short_texts) * 5, "peak_mb": round(rss), "wall_s": wall}

    rules = RulesGrader(settings.lexicon, settings.policy.raise_one_step)
    figures["rules"] = {
        **lending_figures_by_file(lambda ts: [rules.grade(t) for t in ts], lending),
        "per_s": rate(lambda ts: [rules.grade(t) for t in ts], short_texts, args.seconds),
    }

    try:
        figures["tfidf_lr"] = tfidf_baseline(public, lending, settings, short_texts, args.seconds)
    except ImportError as exc:
        print(f"TF-IDF baseline skipped: {exc.name} missing (pip install -e '.[train]')")
    try:
        figures["snownlp"] = snownlp_baseline(csc, waimai, short_texts)
    except ImportError:
        print("SnowNLP baseline skipped: snownlp missing (pip install -e '.[train]')")
    if not args.skip_bert_base:
        try:
            figures["bert_base_random"] = bert_base_speed(clf, short_texts, args)
        except ImportError:
            print("bert-base speed skipped: torch missing (pip install -e '.[train]')")

    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


def tfidf_baseline(
    public: Any, lending: Any, settings: Any, short_texts: Sequence[str], seconds: float
) -> dict[str, Any]:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from monitor.classify import GradeInput
    from monitor.classify.factory import model_grader
    from monitor.classify.lending_set import LENDING_DIR, read_lending
    from monitor.classify.onnx_model import Prediction
    from monitor.training.evaluate import binary_accuracy, lending_figures_by_file
    from monitor.training.pipeline import lending_examples

    lending_train = read_lending(LENDING_DIR / "train.tsv")
    train = [e for e in public.train if e.sentiment is not None]
    train += lending_examples(lending_train, 8)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    x = vec.fit_transform([e.text for e in train])
    lr = LogisticRegression(max_iter=2000, C=4.0)
    lr.fit(x, [e.sentiment for e in train])
    classes = list(lr.classes_)

    def probs(texts: Sequence[str]) -> list[tuple[float, float, float]]:
        p = lr.predict_proba(vec.transform(texts))
        out = np.zeros((len(texts), 3))
        for j, c in enumerate(classes):
            out[:, c] = p[:, j]
        return [tuple(row) for row in out]

    class Tfidf:
        """Sentiment only: categories and grades come from the lexicon, as for any such model."""

        version = "tfidf"

        def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
            return [Prediction(p, {}) for p in probs(texts)]

    # The same policy, overrides and all, as the transformer's: only the reader differs.
    grader = model_grader(settings, Tfidf())

    def grade(texts: Sequence[str]) -> list[Any]:
        return grader.grade_many([GradeInput(t) for t in texts])

    csc, waimai = public.chnsenticorp_test, public.waimai_heldout
    return {
        "chnsenticorp_test": binary_accuracy(probs([e.text for e in csc]), csc),
        "waimai_heldout": binary_accuracy(probs([e.text for e in waimai]), waimai),
        **lending_figures_by_file(grade, lending),
        "per_s_batch64": rate(lambda ts: probs(ts), short_texts, seconds),
    }


def snownlp_baseline(csc: Any, waimai: Any, short_texts: Sequence[str]) -> dict[str, Any]:
    from snownlp import SnowNLP

    def acc(examples: Any) -> float:
        right = sum((SnowNLP(e.text).sentiments >= 0.5) == (e.sentiment == 2) for e in examples)
        return float(right) / len(examples)

    start = time.perf_counter()
    sample = short_texts[:300]
    for t in sample:
        SnowNLP(t).sentiments  # noqa: B018 - the attribute computes the score
    per_s = len(sample) / (time.perf_counter() - start)
    return {
        "chnsenticorp_test": acc(csc),
        "chnsenticorp_note": "inflated: SnowNLP's bundled training text holds 961 of the 1,200",
        "waimai_heldout": acc(waimai),
        "per_s": per_s,
    }


def bert_base_speed(ours: Any, short_texts: Sequence[str], args: Any) -> dict[str, Any]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from monitor.classify.onnx_model import OnnxClassifier
    from monitor.training.export import export_onnx, quantize_int8

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
        base = BertConfig(
            vocab_size=config["vocab_size"],
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=512,
            id2label=config["id2label"],
        )
        BertForSequenceClassification(base).save_pretrained(str(folder))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).write_bytes((args.model / name).read_bytes())
        export_onnx(folder, folder / "model.fp32.onnx")
        shipped = json.loads((args.model / "metrics.json").read_text("utf-8"))["shipped_onnx"]
        if shipped == "int8":
            quantize_int8(folder / "model.fp32.onnx", folder / "model.onnx")
        else:
            (folder / "model.fp32.onnx").rename(folder / "model.onnx")
        big = OnnxClassifier(folder, threads=args.threads)
        sample = list(short_texts[:256])
        big_rate = rate(lambda ts: big.predict(ts, 64), sample, args.seconds)
        ours_rate = rate(lambda ts: ours.predict(ts, 64), sample, args.seconds)
        return {
            "per_s_batch64": big_rate,
            "ours_per_s_same_texts": ours_rate,
            "speedup": ours_rate / big_rate,
            "onnx_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
            "quantized": shipped,
        }


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _lending_files(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A grader's figures per lending evaluation file, by the file's short name."""
    return {k.removeprefix("lending_"): v for k, v in figures.items() if k.startswith("lending_")}


def _report_lending(label: str, g: dict[str, Any]) -> None:
    print(
        f"lending {label}, {g['texts']} texts: sentiment {g['sentiment_accuracy']:.1%}, "
        f"severity exact {g['severity_exact']:.1%} {_mark(g['severity_exact'] >= 0.8)}, "
        f"within one {g['severity_within_one']:.1%}"
    )
    print(
        f"  P1 recall {g['p1_recall']:.1%} {_mark(g['p1_recall'] >= 0.95)}, "
        f"P1 precision {g['p1_precision']:.1%} {_mark(g['p1_precision'] >= 0.85)}, "
        f"neutral/positive graded P1/P2: {g['neutral_or_positive_graded_p1_p2']} "
        f"{_mark(g['neutral_or_positive_graded_p1_p2'] == 0)}"
    )
    print(
        f"  categories: precision {g['category_precision']:.1%}, recall {g['category_recall']:.1%}"
    )


def _lending_line(g: dict[str, Any]) -> str:
    return (
        f"sentiment {g['sentiment_accuracy']:.1%}, severity exact {g['severity_exact']:.1%}, "
        f"P1 recall {g['p1_recall']:.1%}, precision {g['p1_precision']:.1%}, "
        f"calm graded P1/P2 {g['neutral_or_positive_graded_p1_p2']}"
    )


def report(f: dict[str, Any]) -> None:
    m = f["model"]
    print(f"\n== koubei-bert-small (ONNX Runtime, {f['threads']} threads) ==")
    print(
        f"ChnSentiCorp test accuracy      {m['chnsenticorp_test']:.1%}  target >= 93%  "
        f"{_mark(m['chnsenticorp_test'] >= 0.93)}"
    )
    print(f"waimai_10k held-out accuracy    {m['waimai_heldout']:.1%}")
    for label, g in _lending_files(m).items():
        _report_lending(label, g)
    print(
        f"texts/s batch 1: {m['per_s_batch1']:.0f}; batch 64: {m['per_s_batch64']:.0f} "
        f"{_mark(m['per_s_batch64'] >= 1000)} (lending + waimai texts); "
        f"batch 64 on ChnSentiCorp's long reviews: {m['per_s_batch64_chnsenticorp']:.0f}"
    )
    print(
        f"model folder {f['model_dir_mb']:.1f} MB (served files {f['served_files_mb']:.1f} MB) "
        f"{_mark(f['model_dir_mb'] < 30)}; load {f['load_seconds']:.2f} s "
        f"{_mark(f['load_seconds'] < 2)}"
    )
    cli = f["classify_cli"]
    print(
        f"koubei classify over {cli['texts']} texts: peak {cli['peak_mb']} MB "
        f"{_mark(cli['peak_mb'] < 500)}, {cli['wall_s']:.1f} s"
    )
    print("\n== side by side ==")
    rules = f["rules"]
    print(f"rules grader: {rules['per_s']:.0f} texts/s")
    for label, g in _lending_files(rules).items():
        print(f"  {label}: {_lending_line(g)}")
    if "tfidf_lr" in f:
        t = f["tfidf_lr"]
        print(
            f"char 1-3-gram TF-IDF + LR (same data, graded by the same policy): "
            f"ChnSentiCorp {t['chnsenticorp_test']:.1%}, waimai {t['waimai_heldout']:.1%}; "
            f"{t['per_s_batch64']:.0f} texts/s"
        )
        for label, g in _lending_files(t).items():
            print(f"  {label}: {_lending_line(g)}")
    if "snownlp" in f:
        s = f["snownlp"]
        print(
            f"SnowNLP 0.12.3: ChnSentiCorp {s['chnsenticorp_test']:.1%} "
            f"({s['chnsenticorp_note']}), "
            f"waimai {s['waimai_heldout']:.1%}; {s['per_s']:.0f} texts/s"
        )
    if "bert_base_random" in f:
        b = f["bert_base_random"]
        print(
            f"bert-base-sized, random weights ({b['quantized']} ONNX, {b['onnx_mb']} MB): "
            f"{b['per_s_batch64']:.0f} texts/s at batch 64; ours {b['ours_per_s_same_texts']:.0f} "
            f"on the same texts: {b['speedup']:.1f}x {_mark(b['speedup'] >= 10)}"
        )


if __name__ == "__main__":
    sys.exit(main())
