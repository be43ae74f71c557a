"""`koubei classify`: texts in, one JSON verdict per line out, streamed in batches."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from monitor.classify import GradeInput
from monitor.classify.factory import build_grader
from monitor.classify.pii import mask_pii
from monitor.config import Settings
from monitor.domain import Verdict

CHUNK = 256  # lines graded together: big enough to batch, small enough to stream


def _empty() -> dict[str, object]:
    return {
        "sentiment": "neutral",
        "sentiment_score": 1.0,
        "severity": "none",
        "categories": [],
        "signals": [],
        "reasons": ["empty text: nothing to grade"],
    }


def _as_dict(v: Verdict) -> dict[str, object]:
    return {
        "sentiment": v.sentiment.value,
        "sentiment_score": v.sentiment_score,
        "severity": v.severity.value,
        "categories": list(v.categories),
        "signals": list(v.signals),
        "reasons": list(v.reasons),
    }


def classify_lines(settings: Settings, lines: Iterable[str]) -> Iterator[str]:
    """One JSON object per input line, in order. The echoed text is PII-masked: it leaves here."""
    grader = build_grader(settings)
    batch_size = settings.app.classifier.batch_size
    chunk: list[str] = []

    def flush() -> Iterator[str]:
        texts = [t for t in chunk if t.strip()]
        graded = iter(grader.grade_many([GradeInput(t) for t in texts], batch_size))
        for text in chunk:
            body = _as_dict(next(graded)) if text.strip() else _empty()
            yield json.dumps({"text": mask_pii(text), **body}, ensure_ascii=False)
        chunk.clear()

    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) >= CHUNK:
            yield from flush()
    if chunk:
        yield from flush()
