"""Choose the grader the config asks for; the model is loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

from monitor.classify import Grader
from monitor.classify.cascade import CascadeGrader
from monitor.classify.model_grader import ModelGrader, TextModel
from monitor.classify.onnx_model import OnnxClassifier
from monitor.classify.rules import RulesGrader
from monitor.config import Settings
from monitor.errors import ModelError

# Where the cascade's second model is missing: the cheapest fix first.
ENCODER_HINT = (
    "For the shipped encoder: `koubei train --encoder e5 --e5-dir DIR` rebuilds it, or "
    "`git checkout -- models/` restores it; or set classifier.encoder: none to grade with "
    "classifier.model alone."
)

_loaded: dict[tuple[Path, int | None], OnnxClassifier] = {}
_lock = threading.Lock()


def load_classifier(path: Path, threads: int | None = None) -> OnnxClassifier:
    with _lock:
        key = (path.resolve(), threads)
        if key not in _loaded:
            _loaded[key] = OnnxClassifier(path, threads=threads)
        return _loaded[key]


def model_grader(settings: Settings, classifier: TextModel) -> ModelGrader:
    return ModelGrader(
        classifier,
        settings.lexicon,
        settings.policy.raise_one_step,
        settings.app.classifier.category_threshold,
        {str(k): str(v) for k, v in settings.policy.category_floor.items()},
        settings.app.classifier.level_threshold,
    )


def build_grader(settings: Settings, threads: int | None = None) -> Grader:
    """The configured grader; `threads` overrides classifier.threads (benchmarks)."""
    cfg = settings.app.classifier
    if cfg.kind == "rules":
        return RulesGrader(settings.lexicon, settings.policy.raise_one_step)
    threads = threads or cfg.threads
    first = model_grader(settings, load_classifier(settings.model_dir(), threads))
    encoder = settings.encoder_dir()
    if encoder is None:
        return first
    try:
        second = load_classifier(encoder, threads)
    except ModelError as exc:
        raise ModelError(f"classifier.encoder: {exc} {ENCODER_HINT}") from exc
    return CascadeGrader(first, model_grader(settings, second))
