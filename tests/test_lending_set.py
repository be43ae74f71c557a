"""The hand-written lending set: big enough, covering every grade and category, split fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify.lending_set import (
    LENDING_DIR,
    LendingSetError,
    evaluation_sets,
    read_lending,
)
from monitor.domain import CATEGORIES


def test_the_set_covers_every_grade_and_category_on_both_sides() -> None:
    train = read_lending(LENDING_DIR / "train.tsv")
    heldout = read_lending(LENDING_DIR / "heldout.tsv")
    evaluation = [r for rows in evaluation_sets().values() for r in rows]
    assert len(train) + len(heldout) >= 600
    # About a third is never trained on: the held-out third and the fresh set.
    assert 0.28 <= len(evaluation) / (len(train) + len(evaluation)) <= 0.38
    assert not {r.text for r in train} & {r.text for r in heldout}
    for rows in (train, heldout):
        assert {r.severity for r in rows} == {"P1", "P2", "P3", "P4", "none"}
        assert {r.sentiment for r in rows} == {"negative", "neutral", "positive"}
        assert {c for r in rows for c in r.categories} == set(CATEGORIES)
    texts = " ".join(r.text for r in train + heldout)
    for feature in ("不是骗子", "没有暴力催收", "12378", "你們", "😡"):
        assert feature in texts


def test_the_fresh_set_is_new_text_of_every_grade() -> None:
    fresh = read_lending(LENDING_DIR / "fresh.tsv")
    older = read_lending(LENDING_DIR / "train.tsv") + read_lending(LENDING_DIR / "heldout.tsv")
    assert len(fresh) >= 150
    assert {r.severity for r in fresh} == {"P1", "P2", "P3", "P4", "none"}
    assert not {r.text for r in fresh} & {r.text for r in older}


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text(
        "severity\tsentiment\tcategories\ttext\nP1\tpositive\tfees\t好评\n", encoding="utf-8"
    )
    with pytest.raises(LendingSetError, match=r"bad\.tsv:2: only negative texts are graded"):
        read_lending(bad)
    bad.write_text("severity\tsentiment\tcategories\ttext\nP9\tnegative\tfees\t差\n", "utf-8")
    with pytest.raises(LendingSetError, match=r"bad\.tsv:2: severity 'P9'"):
        read_lending(bad)
