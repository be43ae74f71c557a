"""The real labelled set: labels on public posts, kept without their text.

`data/real/labels.tsv` holds one row per labelled post, tab-separated with a
header: file (relative to the data folder), text_sha, severity, sentiment,
categories (comma list, never empty), signals (comma list, may be empty),
labeller, sample (`random` or `keyword`, see SAMPLES). The text itself is never
stored here (the public data's licence is unclear): `load_real` reads the posts
from the data folder and joins each label to its text by (file, text_sha),
reporting labels whose text it cannot find.

Normalisation, defined once for the hash and for deduplication: Unicode NFKC,
strip, every run of whitespace collapsed to one space. `text_sha` is the first
16 hex digits of the SHA-256 of the normalised text's UTF-8 bytes.

The split is fixed by the hash: `int(text_sha, 16) % 3 == 0` is held out for
evaluation only (about a third), the rest is train. It was fixed before any
model was trained on these labels and must not change.

Some public text is reserved for evaluation outside the project: the App Store
file after line 16,000 and the CCF test file. Nothing from them is labelled or
loaded with labels; `check_allowed` refuses them.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from monitor.domain import CATEGORIES

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS_PATH = REPO_ROOT / "data" / "real" / "labels.tsv"
AGREEMENT_PATH = REPO_ROOT / "data" / "real" / "agreement_sample.tsv"

APPLE = "bankapp_icbc_reviews/apple_icbc.txt"
STORE_360 = "bankapp_icbc_reviews/360_icbc.txt"
CCF_TRAIN = "ccf_bdci2021_bank_reviews/train_data_public.csv"
CCF_TEST = "ccf_bdci2021_bank_reviews/test_public.csv"
# file -> last line that may be labelled (None: every line).
ALLOWED: dict[str, int | None] = {APPLE: 16_000, STORE_360: None, CCF_TRAIN: None}
RESERVED_FILES = frozenset({CCF_TEST})

GRADES = ("P1", "P2", "P3", "P4", "none")
SENTIMENTS = ("negative", "neutral", "positive")
SIGNALS = ("self_harm", "threat", "third_party", "regulator", "media", "legal", "collective")
HEADER = [
    "file",
    "text_sha",
    "severity",
    "sentiment",
    "categories",
    "signals",
    "labeller",
    "sample",
]
# How a post came to be labelled: "random", the fixed random order over the three files;
# "keyword", posts holding the words the crisis and money grades turn on (biased on purpose:
# report figures on the two apart, or on the random sample for the natural mix).
SAMPLES = ("random", "keyword")

Split = Literal["train", "heldout"]
_SPACE = re.compile(r"\s+")


class RealSetError(ValueError):
    pass


class ReservedForEvaluation(RealSetError):
    """Text kept for evaluation outside the project: it is never labelled."""


def normalise(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def text_sha(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


def split_of(sha: str) -> Split:
    return "heldout" if int(sha, 16) % 3 == 0 else "train"


def is_dev_fold(sha: str) -> bool:
    """A fifth of the train split that no fine-tune trains on, to make decisions on."""
    return int(sha[-6:], 16) % 5 == 0


def default_data_dir() -> Path:
    env = os.environ.get("KOUBEI_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def check_allowed(file: str, line: int | None = None) -> None:
    """Raise unless `file` (and its 1-based `line`, where given) may be labelled."""
    if file in RESERVED_FILES:
        raise ReservedForEvaluation(
            f"{file} is reserved for evaluation outside the project: it is never labelled"
        )
    if file not in ALLOWED:
        raise RealSetError(
            f"{file}: not a labelled file; labels come from {', '.join(sorted(ALLOWED))}"
        )
    last = ALLOWED[file]
    if last is not None and line is not None and line > last:
        raise ReservedForEvaluation(
            f"{file}:{line}: lines after {last:,} are reserved for evaluation outside the "
            "project: they are never labelled"
        )


@dataclass(frozen=True)
class SourcePost:
    file: str
    line: int  # 1-based physical line (text files) or data row (CSV, header excluded)
    text: str  # normalised
    sha: str


@dataclass(frozen=True)
class RealLabel:
    file: str
    text_sha: str
    severity: str
    sentiment: str
    categories: tuple[str, ...]
    signals: tuple[str, ...]
    labeller: str
    sample: str = "random"

    @property
    def split(self) -> Split:
        return split_of(self.text_sha)


def _missing(data_dir: Path, file: str) -> RealSetError:
    return RealSetError(
        f"{data_dir / file}: public data not found. Point --data-dir (or KOUBEI_DATA_DIR) "
        "at a copy of the shared public data folder."
    )


def _raw_lines(data_dir: Path, file: str) -> Iterator[tuple[int, str]]:
    path = data_dir / file
    if not path.is_file():
        raise _missing(data_dir, file)
    if file.endswith(".csv"):
        with path.open(encoding="utf-8", newline="") as f:
            for i, row in enumerate(csv.DictReader(f), start=1):
                yield i, row.get("text") or ""
    else:
        # split on "\n" only: line numbers match `sed -n` and the reserved boundary.
        for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            yield i, line


def read_posts(data_dir: Path, file: str) -> list[SourcePost]:
    """The labellable posts of one file (reserved lines are never read)."""
    check_allowed(file)
    last = ALLOWED[file]
    out: list[SourcePost] = []
    for line, raw in _raw_lines(data_dir, file):
        if last is not None and line > last:
            break
        text = normalise(raw)
        if text:
            out.append(SourcePost(file, line, text, text_sha(text)))
    return out


def reserved_hashes(data_dir: Path) -> set[str]:
    """Hashes of the reserved texts: a labelled post must not be a copy of one."""
    out: set[str] = set()
    for file in RESERVED_FILES:
        if (data_dir / file).is_file():
            out |= {text_sha(t) for _, t in _raw_lines(data_dir, file) if normalise(t)}
    for file, last in ALLOWED.items():
        if last is not None and (data_dir / file).is_file():
            out |= {text_sha(t) for i, t in _raw_lines(data_dir, file) if i > last and normalise(t)}
    return out


def _list(value: str, known: Iterable[str], what: str, where: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    allowed = set(known)
    bad = [v for v in items if v not in allowed]
    if bad:
        raise RealSetError(f"{where}: unknown {what} {bad}; known: {', '.join(known)}")
    return items


def make_label(
    file: str,
    sha: str,
    severity: str,
    sentiment: str,
    categories: str,
    signals: str,
    labeller: str,
    where: str,
    sample: str = "random",
) -> RealLabel:
    """A validated label; `where` names the line for the error message."""
    check_allowed(file)
    if not re.fullmatch(r"[0-9a-f]{16}", sha):
        raise RealSetError(f"{where}: text_sha must be 16 lower-case hex digits, got {sha!r}")
    if severity not in GRADES:
        raise RealSetError(f"{where}: severity {severity!r} is not one of {', '.join(GRADES)}")
    if sentiment not in SENTIMENTS:
        raise RealSetError(f"{where}: sentiment {sentiment!r} is not one of {SENTIMENTS}")
    if severity != "none" and sentiment != "negative":
        raise RealSetError(f"{where}: a {severity} post is a complaint; its sentiment is negative")
    cats = _list(categories, CATEGORIES, "categories", where)
    if not cats:
        raise RealSetError(f"{where}: categories must name at least one (use 'other')")
    sigs = _list(signals, SIGNALS, "signals", where)
    if not labeller.strip():
        raise RealSetError(f"{where}: labeller is empty")
    if sample not in SAMPLES:
        raise RealSetError(f"{where}: sample {sample!r} is not one of {', '.join(SAMPLES)}")
    return RealLabel(file, sha, severity, sentiment, cats, sigs, labeller.strip(), sample)


def read_labels(path: Path = LABELS_PATH) -> list[RealLabel]:
    if not path.is_file():
        raise RealSetError(f"{path}: label file not found")
    out: list[RealLabel] = []
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines[0].split("\t") != HEADER:
        raise RealSetError(f"{path}:1: header must be {', '.join(HEADER)}")
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        row = line.split("\t")
        if len(row) != len(HEADER):
            raise RealSetError(f"{where}: expected {len(HEADER)} tab-separated fields")
        file, sha, severity, sentiment, cats, sigs, labeller, sample = row
        label = make_label(file, sha, severity, sentiment, cats, sigs, labeller, where, sample)
        key = (label.file, label.text_sha)
        if key in seen:
            raise RealSetError(f"{where}: {key} is labelled twice in one file")
        seen.add(key)
        out.append(label)
    return out


def write_labels(path: Path, labels: Iterable[RealLabel]) -> None:
    """Write labels sorted by (file, text_sha), so a re-import gives the same file."""
    rows = sorted(labels, key=lambda r: (r.file, r.text_sha))
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ["\t".join(HEADER)]
    for r in rows:
        body.append(
            "\t".join(
                (
                    r.file,
                    r.text_sha,
                    r.severity,
                    r.sentiment,
                    ",".join(r.categories),
                    ",".join(r.signals),
                    r.labeller,
                    r.sample,
                )
            )
        )
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(body) + "\n", encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class Joined:
    label: RealLabel
    text: str


@dataclass(frozen=True)
class RealSet:
    joined: list[Joined]
    missing: list[RealLabel]  # labels whose text is not in the data folder

    def split(self, name: Split) -> list[Joined]:
        return [j for j in self.joined if j.label.split == name]


def load_real(data_dir: Path, labels: Iterable[RealLabel]) -> RealSet:
    """Join labels to their texts; a label on a reserved text is refused."""
    labels = list(labels)
    reserved = reserved_hashes(data_dir)
    texts: dict[str, dict[str, str]] = {}
    joined: list[Joined] = []
    missing: list[RealLabel] = []
    for label in labels:
        check_allowed(label.file)
        if label.text_sha in reserved:
            raise ReservedForEvaluation(
                f"{label.file} {label.text_sha}: this text is also in the text reserved for "
                "evaluation outside the project; remove its label"
            )
        if label.file not in texts:
            texts[label.file] = {p.sha: p.text for p in read_posts(data_dir, label.file)}
        text = texts[label.file].get(label.text_sha)
        if text is None:
            missing.append(label)
        else:
            joined.append(Joined(label, text))
    return RealSet(joined, missing)
