"""Work batches for labelling real posts: draw them, import them filled, check the set.

`draw` orders every labellable post by a seeded hash of its text (so the order
is the same on every machine and every run), deduplicates by normalised text,
skips empty and one-character posts and posts that are copies of text reserved
for evaluation, interleaves the three files, and writes batches of `--size`
posts as TSV (id, file, text_sha, text) into a folder OUTSIDE the repository:
the texts must not enter it. An existing batch file is left alone.

`import` reads a filled batch (id, severity, sentiment, categories, signals),
checks every id against its batch, every hash against the text in the data
folder, and every grade, category and signal against the guide's lists, then
merges the rows into the label file (a re-import replaces that post's row).
While the agreement sample has fewer than 200 posts, imported posts join it.

    python -m monitor.classify.real_batches draw --data-dir DIR --out /work/wt/labelwork
    python -m monitor.classify.real_batches import FILLED.labels.tsv --labeller NAME
    python -m monitor.classify.real_batches check --data-dir DIR
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.real_agreement import cohen_kappa
from monitor.classify.real_set import (
    AGREEMENT_PATH,
    ALLOWED,
    CCF_TRAIN,
    LABELS_PATH,
    REPO_ROOT,
    RealLabel,
    RealSetError,
    SourcePost,
    check_allowed,
    default_data_dir,
    load_real,
    make_label,
    read_labels,
    read_posts,
    reserved_hashes,
    text_sha,
    write_labels,
)

BATCH_HEADER = ["id", "file", "text_sha", "text"]
# The keyword sample: posts that carry the words the crisis and money grades turn on
# (and the idioms and forum facts that only look like them), rarest tier first.
KEYWORD_TIERS: tuple[tuple[str, ...], ...] = (
    (
        "12378",
        "银保监",
        "银监",
        "监管",
        "人民银行",
        "人行",
        "金融办",
        "消协",
        "12315",
        "315",
        "记者",
        "媒体",
        "曝光",
        "央视",
        "新闻",
        "报警",
        "110",
        "派出所",
        "立案",
        "经侦",
        "起诉",
        "律师",
        "法院",
        "诉讼",
        "集体",
        "维权",
        "不想活",
        "自杀",
        "跳楼",
        "轻生",
        "威胁",
        "恐吓",
        "去死",
        "盗刷",
        "被刷",
        "诈骗",
        "泄露",
        "隐私",
        "通讯录",
        "冒用",
        "催收",
        "催款",
        "骚扰",
        "退款",
    ),
    ("投诉", "上门", "扣", "收费", "手续费", "年费", "骗", "征信", "逾期", "保险", "利息"),
    ("死",),
)
FILLED_HEADER = ["id", "severity", "sentiment", "categories", "signals"]
AGREEMENT_SIZE = 200
SEED = "koubei-real-v1"


def _order_key(post: SourcePost) -> str:
    return hashlib.sha256(f"{SEED}:{post.file}:{post.sha}".encode()).hexdigest()


def draw_order(data_dir: Path) -> list[SourcePost]:
    """Every labellable post once, in the fixed labelling order."""
    reserved = reserved_hashes(data_dir)
    seen: set[str] = set()
    queues: list[list[SourcePost]] = []
    for file in sorted(ALLOWED):
        keep: list[SourcePost] = []
        for post in sorted(read_posts(data_dir, file), key=_order_key):
            if len(post.text) < 2 or post.sha in reserved or post.sha in seen:
                continue
            seen.add(post.sha)
            keep.append(post)
        queues.append(keep)
    out: list[SourcePost] = []
    for i in range(max(len(q) for q in queues)):
        out += [q[i] for q in queues if i < len(q)]
    return out


def _tier(text: str) -> int | None:
    for i, words in enumerate(KEYWORD_TIERS):
        if any(w in text for w in words):
            return i
    return None


def keyword_order(
    data_dir: Path, exclude: set[str], files: Collection[str] = ()
) -> list[SourcePost]:
    """Posts holding a keyword and not in `exclude` (only from `files`, where given),
    rarest tier first, each tier in draw order."""
    for file in files:
        check_allowed(file)
    tiers: list[list[SourcePost]] = [[] for _ in KEYWORD_TIERS]
    for post in draw_order(data_dir):
        tier = _tier(post.text)
        if files and post.file not in files:
            continue
        if tier is not None and post.sha not in exclude:
            tiers[tier].append(post)
    return [p for tier_posts in tiers for p in tier_posts]


def _batch_files(out_dir: Path) -> list[Path]:
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.glob("batch_*.tsv") if not p.name.endswith(".labels.tsv"))


def draw(
    data_dir: Path,
    out_dir: Path,
    batches: int,
    size: int = 150,
    keyword: bool = False,
    files: Collection[str] = (),
    labels_path: Path | None = None,
) -> list[Path]:
    """Write `batches` new batches after the existing ones: `batch_NN.tsv` from the random
    sample, `batch_kNN.tsv` (with `keyword`) from the keyword sample.

    A post already in any batch in `out_dir` is never drawn again, so the two samples
    share no post and no batch file is ever rewritten. With only random batches drawn,
    batch NN holds posts (NN-1)*size+1 .. NN*size of the fixed order. `files` narrows
    the keyword sample to some of the three files. A post already in `labels_path` is not
    drawn either: the work folder lives outside the repository and is lost with the
    machine, the label file is not.
    """
    if out_dir.resolve().is_relative_to(REPO_ROOT):
        raise RealSetError(f"{out_dir}: batches hold public text; write them outside the repo")
    existing = _batch_files(out_dir)
    drawn = {row.sha for path in existing for row in read_batch(path).values()}
    if labels_path is not None and labels_path.is_file():
        drawn |= {r.text_sha for r in read_labels(labels_path)}
    prefix = "k" if keyword else ""
    numbers = [
        int(p.stem.removeprefix("batch_").removeprefix("k"))
        for p in existing
        if p.stem.removeprefix("batch_").startswith("k") == keyword
    ]
    if files and not keyword:
        raise RealSetError("--file narrows the keyword sample only (add --keyword)")
    source = keyword_order(data_dir, drawn, files) if keyword else draw_order(data_dir)
    order = [p for p in source if p.sha not in drawn]
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    first = max(numbers, default=0) + 1
    for k in range(batches):
        chunk = order[k * size : (k + 1) * size]
        if not chunk:
            break
        name = f"{prefix}{first + k:02d}"
        path = out_dir / f"batch_{name}.tsv"
        lines = ["\t".join(BATCH_HEADER)]
        lines += [f"{name}-{i:03d}\t{p.file}\t{p.sha}\t{p.text}" for i, p in enumerate(chunk, 1)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


@dataclass(frozen=True)
class BatchRow:
    id: str
    file: str
    sha: str


def _tsv(path: Path, header: list[str]) -> list[tuple[str, list[str]]]:
    if not path.is_file():
        raise RealSetError(f"{path}: not found")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0].split("\t") != header:
        raise RealSetError(f"{path}:1: header must be {', '.join(header)}")
    rows: list[tuple[str, list[str]]] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        row = line.split("\t")
        if len(row) != len(header):
            raise RealSetError(f"{path}:{n}: expected {len(header)} tab-separated fields")
        rows.append((f"{path}:{n}", row))
    return rows


def read_batch(path: Path) -> dict[str, BatchRow]:
    return {r[0]: BatchRow(r[0], r[1], r[2]) for _, r in _tsv(path, BATCH_HEADER)}


def batch_of(filled: Path) -> Path:
    name = filled.name
    if not name.endswith(".labels.tsv"):
        raise RealSetError(f"{filled}: a filled batch is named batch_NN.labels.tsv")
    return filled.with_name(name.removesuffix(".labels.tsv") + ".tsv")


def import_filled(
    filled: Path, labeller: str, data_dir: Path, labels_path: Path = LABELS_PATH
) -> list[RealLabel]:
    """Validate a filled batch and merge it into `labels_path`; returns the new rows."""
    batch = read_batch(batch_of(filled))
    texts: dict[str, set[str]] = {}
    new: list[RealLabel] = []
    ids: set[str] = set()
    for where, (rid, sev, sent, cats, sigs) in _tsv(filled, FILLED_HEADER):
        if rid not in batch:
            raise RealSetError(f"{where}: id {rid!r} is not in {batch_of(filled).name}")
        if rid in ids:
            raise RealSetError(f"{where}: id {rid!r} is labelled twice")
        ids.add(rid)
        row = batch[rid]
        check_allowed(row.file)
        if row.file not in texts:
            texts[row.file] = {p.sha for p in read_posts(data_dir, row.file)}
        if row.sha not in texts[row.file]:
            raise RealSetError(
                f"{where}: no post in {row.file} has text_sha {row.sha} (is it the right "
                "data folder, and a labellable line?)"
            )
        sample = "keyword" if rid.startswith("k") else "random"
        new.append(
            make_label(row.file, row.sha, sev, sent, cats, sigs, labeller, where, sample=sample)
        )
    old = read_labels(labels_path) if labels_path.is_file() else []
    keys = {(r.file, r.text_sha) for r in new}
    write_labels(labels_path, [r for r in old if (r.file, r.text_sha) not in keys] + new)
    return new


def extend_agreement(path: Path, labels: Sequence[RealLabel], size: int = AGREEMENT_SIZE) -> int:
    """Add posts to the agreement sample until it holds `size`; returns how many it holds."""
    rows = path.read_text(encoding="utf-8").split("\n")[1:] if path.is_file() else []
    have = [r for r in rows if r.strip()]
    keys = set(have)
    for label in labels:
        if len(have) >= size:
            break
        key = f"{label.file}\t{label.text_sha}"
        if key not in keys:
            have.append(key)
            keys.add(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("file\ttext_sha\n" + "".join(k + "\n" for k in have), encoding="utf-8")
    return len(have)


_CCF_CLASS = {"0": "negative", "1": "positive", "2": "neutral"}


def ccf_sentiment_check(data_dir: Path, labels: Sequence[RealLabel]) -> tuple[int, float, float]:
    """(posts, raw agreement, kappa) of the labelled sentiment against the CCF file's class."""
    theirs: dict[str, str] = {}
    with (data_dir / CCF_TRAIN).open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            cls = _CCF_CLASS.get((row.get("class") or "").strip())
            if cls:
                theirs.setdefault(text_sha(row.get("text") or ""), cls)
    pairs = [
        (r.sentiment, theirs[r.text_sha])
        for r in labels
        if r.file == CCF_TRAIN and r.text_sha in theirs
    ]
    if not pairs:
        return 0, 0.0, 0.0
    ours, ccf = [p[0] for p in pairs], [p[1] for p in pairs]
    agree = sum(a == b for a, b in pairs) / len(pairs)
    return len(pairs), agree, cohen_kappa(ours, ccf)


def summary(data_dir: Path, labels_path: Path) -> str:
    real = load_real(data_dir, read_labels(labels_path))
    lines = [f"{len(real.joined)} labels joined to their texts, {len(real.missing)} missing"]
    for m in real.missing[:10]:
        lines.append(f"  missing: {m.file} {m.text_sha}")
    labels = [j.label for j in real.joined]
    for name, count in (
        ("file", Counter(r.file for r in labels)),
        ("split", Counter(r.split for r in labels)),
        ("sample", Counter(r.sample for r in labels)),
        ("severity", Counter(r.severity for r in labels)),
        ("sentiment", Counter(r.sentiment for r in labels)),
        ("category", Counter(c for r in labels for c in r.categories)),
        ("signal", Counter(s for r in labels for s in r.signals)),
    ):
        lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(count.items())))
    n, agree, kappa = ccf_sentiment_check(data_dir, labels)
    if n:
        lines.append(
            f"sentiment vs the CCF file's own class: {n} posts, agreement {agree:.3f}, "
            f"kappa {kappa:.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monitor.classify.real_batches")
    p.add_argument("--data-dir", type=Path, default=None, help="public data folder")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw", help="write work batches outside the repository")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--batches", type=int, default=20)
    d.add_argument("--size", type=int, default=150)
    d.add_argument("--keyword", action="store_true", help="the keyword sample (batch_kNN)")
    d.add_argument("--file", action="append", default=[], help="keyword sample from this file")
    d.add_argument("--labels", type=Path, default=LABELS_PATH, help="posts here are not drawn")
    i = sub.add_parser("import", help="merge a filled batch into the label file")
    i.add_argument("filled", type=Path)
    i.add_argument("--labeller", required=True)
    i.add_argument("--labels", type=Path, default=LABELS_PATH)
    i.add_argument("--agreement", type=Path, default=AGREEMENT_PATH)
    c = sub.add_parser("check", help="join the labels to their texts and count them")
    c.add_argument("--labels", type=Path, default=LABELS_PATH)
    args = p.parse_args(argv)
    data_dir: Path = args.data_dir or default_data_dir()
    try:
        if args.cmd == "draw":
            for path in draw(
                data_dir, args.out, args.batches, args.size, args.keyword, args.file, args.labels
            ):
                print(f"wrote {path}")
        elif args.cmd == "import":
            new = import_filled(args.filled, args.labeller, data_dir, args.labels)
            held = extend_agreement(args.agreement, new) if args.labels == LABELS_PATH else 0
            print(f"imported {len(new)} labels into {args.labels}; agreement sample {held}")
        else:
            print(summary(data_dir, args.labels))
    except RealSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
