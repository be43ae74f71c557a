"""The public data of ../shared/data, read with its traps handled (see its README).

- Every text in ChnSentiCorp dev or test is removed from all training data
  (the standard split repeats 331 test texts in train; the hotel set has 227).
- waimai_10k is split by a hash of the text: one sixth is held out for the
  benchmark and never trained on; identical texts land on the same side.
- The lending set's held-out third is removed from everything trained on.
Texts are compared after `textprep.normalize`, so a copy differing only in
width or spacing is still a copy.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from monitor.classify.textprep import normalize

NEG, NEU, POS = 0, 1, 2
SENTIMENTS = ("negative", "neutral", "positive")


class DataMissing(Exception):
    """The public data folder (or one of its files) is not where we looked."""


@dataclass(frozen=True)
class Example:
    text: str
    sentiment: int | None  # NEG / NEU / POS, None when the source has no sentiment label
    categories: tuple[str, ...] | None  # None when the source has no category labels
    source: str
    severity: str | None = None  # P1-P4 or "none" where graded (the lending set)


@dataclass
class PublicData:
    train: list[Example]
    unlabelled: list[str]
    chnsenticorp_dev: list[Example]
    chnsenticorp_test: list[Example]
    waimai_heldout: list[Example]
    counts: dict[str, int] = field(default_factory=dict)


REQUIRED = (
    "chnsenticorp_ymcui/train.tsv",
    "chnsenticorp_ymcui/dev.tsv",
    "chnsenticorp_ymcui/test.tsv",
    "sophonplus/ChnSentiCorp_htl_all.csv",
    "sophonplus/waimai_10k.csv",
    "sophonplus/online_shopping_10_cats.csv",
    "ccf_bdci2021_bank_reviews/train_data_public.csv",
    "ccf_bdci2021_bank_reviews/test_public.csv",
    "bankapp_icbc_reviews/apple_icbc.txt",
    "bankapp_icbc_reviews/360_icbc.txt",
)


def check_data_dir(data_dir: Path) -> None:
    missing = [name for name in REQUIRED if not (data_dir / name).is_file()]
    if missing:
        raise DataMissing(
            f"public training data not found under {data_dir} (missing: {', '.join(missing)}). "
            "Point --data-dir (or KOUBEI_DATA_DIR) at a copy of the shared data folder "
            "described in ../shared/data/README.md."
        )


def _rows(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from csv.DictReader(f, delimiter=delimiter)


def _binary(path: Path, text_key: str, delimiter: str, source: str) -> Iterator[Example]:
    for row in _rows(path, delimiter):
        text = normalize(row.get(text_key) or "")
        label = (row.get("label") or "").strip()
        if text and label in ("0", "1"):
            yield Example(text, POS if label == "1" else NEG, None, source)


def waimai_is_heldout(text: str) -> bool:
    return hashlib.sha1(text.encode("utf-8")).digest()[0] % 6 == 0


_CCF_CLASS = {"0": NEG, "1": POS, "2": NEU}


def load_public(data_dir: Path, exclude: Iterable[str] = ()) -> PublicData:
    check_data_dir(data_dir)
    d = data_dir
    dev = list(_binary(d / "chnsenticorp_ymcui/dev.tsv", "text_a", "\t", "chnsenticorp-dev"))
    test = list(_binary(d / "chnsenticorp_ymcui/test.tsv", "text_a", "\t", "chnsenticorp-test"))
    waimai_all = list(_binary(d / "sophonplus/waimai_10k.csv", "review", ",", "waimai"))
    waimai_heldout = [e for e in waimai_all if waimai_is_heldout(e.text)]
    banned = {e.text for e in dev} | {e.text for e in test} | {e.text for e in waimai_heldout}
    banned |= {normalize(t) for t in exclude}

    labelled: list[Example] = []
    labelled += _binary(d / "chnsenticorp_ymcui/train.tsv", "text_a", "\t", "chnsenticorp")
    labelled += _binary(d / "sophonplus/ChnSentiCorp_htl_all.csv", "review", ",", "hotel")
    labelled += [e for e in waimai_all if not waimai_is_heldout(e.text)]
    labelled += _binary(d / "sophonplus/online_shopping_10_cats.csv", "review", ",", "shopping")
    for row in _rows(d / "ccf_bdci2021_bank_reviews/train_data_public.csv"):
        text = normalize(row.get("text") or "")
        cls = _CCF_CLASS.get((row.get("class") or "").strip())
        if text and cls is not None:
            labelled.append(Example(text, cls, None, "ccf-bank"))

    seen: set[str] = set()
    train: list[Example] = []
    counts: dict[str, int] = {}
    removed = 0
    for e in labelled:
        if e.text in banned:
            removed += 1
            continue
        if e.text in seen:
            continue
        seen.add(e.text)
        train.append(e)
        counts[e.source] = counts.get(e.source, 0) + 1

    unlabelled: list[str] = []
    raw: list[str] = [
        row.get("text") or "" for row in _rows(d / "ccf_bdci2021_bank_reviews/test_public.csv")
    ]
    for name in ("apple_icbc.txt", "360_icbc.txt"):
        raw += (d / "bankapp_icbc_reviews" / name).read_text(encoding="utf-8").splitlines()
    for line in raw:
        text = normalize(line)
        if text and text not in banned and text not in seen:
            seen.add(text)
            unlabelled.append(text)
    counts["unlabelled"] = len(unlabelled)
    counts["removed_as_eval_copies"] = removed
    return PublicData(train, unlabelled, dev, test, waimai_heldout, counts)
