"""Traditional characters read as simplified, for the lexicon only.

The lexicon's terms are simplified Chinese as most customers write it;
"登入不了，一直閃退" must find "闪退" all the same. OpenCC's traditional-to-
simplified tables (the `opencc-python-reimplemented` package) do the folding,
phrase by phrase ("後臺" → "后台"). Text with no traditional character is
returned as it is, so the cost falls only on the posts that need it. The model
reads the text unfolded, as it was trained.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _converter() -> tuple[Any, frozenset[str]]:
    from opencc import OpenCC

    converter = OpenCC("t2s")
    import opencc

    table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    chars: set[str] = set()
    for line in table.read_text(encoding="utf-8").splitlines():
        key, _, targets = line.partition("\t")
        # Only characters that change: "著" maps to itself among others and stays.
        if len(key) == 1 and key not in targets.split():
            chars.add(key)
    return converter, frozenset(chars)


def to_simplified(text: str) -> str:
    converter, traditional = _converter()
    if traditional.isdisjoint(text):
        return text
    with _lock:  # the converter keeps state between calls
        return str(converter.convert(text))
