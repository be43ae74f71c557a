"""Figures on real posts: CCF's hash split, macro-F1, and the real set's target figures."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.classify.real_set import CCF_TRAIN, Joined, RealLabel, RealSetError, split_of, text_sha
from monitor.domain import Sentiment, Severity, Verdict
from monitor.training.real_eval import macro_f1, read_ccf, real_figures


def _ccf(root: Path, rows: list[tuple[str, str]]) -> Path:
    (root / "ccf_bdci2021_bank_reviews").mkdir(parents=True)
    with (root / CCF_TRAIN).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "BIO_anno", "class"])
        w.writerows((i, t, "O", c) for i, (t, c) in enumerate(rows))
    return root


def test_ccf_rows_split_by_the_real_sets_hash_once_each(tmp_path: Path) -> None:
    texts = [f"第{i}张卡的额度怎么提" for i in range(60)]
    rows = [(t, str(i % 3)) for i, t in enumerate(texts)] + [(texts[0], "0"), ("  ", "1")]
    train, held = read_ccf(_ccf(tmp_path, rows))
    assert len(train) + len(held) == 60  # the copy and the blank row are gone
    assert held and all(split_of(text_sha(r.text)) == "heldout" for r in held)
    assert all(split_of(text_sha(r.text)) == "train" for r in train)
    # class 0 negative, 1 positive, 2 neutral in the file; 0/1/2 negative/neutral/positive here
    by_text = {r.text: r.sentiment for r in train + held}
    assert by_text[texts[1]] == 2 and by_text[texts[2]] == 1 and by_text[texts[3]] == 0


def test_a_missing_ccf_file_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(RealSetError, match="--data-dir"):
        read_ccf(tmp_path)


def test_macro_f1_weighs_each_class_alike() -> None:
    assert macro_f1([0, 1, 2], [0, 1, 2]) == 1.0
    # Always "neutral" on a mostly neutral set: one class right, two never found.
    assert macro_f1([1, 1, 1, 1, 0, 2], [1] * 6) == pytest.approx((2 * 4 / (2 * 4 + 2)) / 3, 1e-3)


def _joined(severity: str, sample: str, cats: tuple[str, ...] = ("app",)) -> Joined:
    sentiment = "negative" if severity != "none" else "neutral"
    label = RealLabel("f", "0" * 16, severity, sentiment, cats, (), "t", sample)
    return Joined(label, f"{severity}-{sample}")


def _verdict(severity: str, cats: tuple[str, ...] = ("app",)) -> Verdict:
    sentiment = Sentiment.NEGATIVE if severity != "none" else Sentiment.NEUTRAL
    return Verdict(sentiment, 0.9, cats, (), Severity(severity), ("r",), "test")


def test_real_figures_count_what_the_targets_name() -> None:
    rows = [
        _joined("P3", "random"),  # graded P4: a P3 failure not alerted
        _joined("P3", "random"),  # graded P2: alerted (P3 or higher), one grade off
        _joined("none", "keyword", ("other",)),  # graded P1: a calm page and a false P1
        _joined("P1", "keyword", ("collection",)),  # graded P1
    ]
    grades = [_verdict("P4"), _verdict("P2"), _verdict("P1", ("other",)), _verdict("P1")]

    def grade(texts: Sequence[str]) -> list[Verdict]:
        assert list(texts) == [j.text for j in rows]
        return grades

    f = real_figures(grade, rows)
    both = f["all"]
    assert both["texts"] == 4 and both["severity_exact"] == 0.25
    assert both["severity_within_one"] == 0.75
    assert both["p3_labelled"] == 2 and both["p3_alerted"] == 0.5
    assert both["calm_graded_p1_p2"] == 1 and both["graded_p1_not_p1"] == 1
    assert (both["p1_found"], both["p1_labelled"]) == (1, 1)
    assert both["categories"]["collection"] == {"labelled": 1, "precision": None, "recall": 0.0}
    assert both["categories"]["app"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert f["random"]["texts"] == 2 and f["random"]["p3_alerted"] == 0.5
    assert f["keyword"]["calm_graded_p1_p2"] == 1
