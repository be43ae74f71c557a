"""Stage outputs cached under a work folder, keyed by everything that shapes them.

Pretraining takes most of the time; rerunning `koubei train` after changing the
lending set or the fine-tuning settings reuses it when its inputs are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def key(**inputs: Any) -> str:
    blob = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def done(folder: Path, stage_key: str) -> dict[str, Any] | None:
    marker = folder / "stage.json"
    if not marker.is_file():
        return None
    info: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
    return info if info.get("key") == stage_key else None


def mark(folder: Path, stage_key: str, result: dict[str, Any]) -> None:
    (folder / "stage.json").write_text(
        json.dumps({"key": stage_key, **result}, indent=2, ensure_ascii=False), encoding="utf-8"
    )


def run(
    folder: Path, stage_key: str, what: str, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The stage's info (with its key): computed and marked, or read back when the key matches."""
    info = done(folder, stage_key)
    if info is None:
        info = compute()
        mark(folder, stage_key, info)
    else:
        print(f"reusing {what} in {folder} (same data, seed and settings)")
    return {**info, "key": stage_key}
