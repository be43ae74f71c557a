"""A tiny stand-in for ../shared/data in the real file formats, written for these tests.

Texts are generated from short phrases so every file has enough rows for the
training pipeline to run end to end in seconds; none is a row of the public data.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

GOOD = ["服务很好", "放款很快", "非常满意", "味道不错", "房间干净", "物流很快", "客服耐心"]
BAD = ["太差了", "非常失望", "态度恶劣", "又慢又贵", "房间很脏", "质量很差", "再也不来"]
TOPIC = ["这家店", "这次", "酒店", "外卖", "手机", "这个平台", "快递"]


def _pairs(words: list[str]) -> list[str]:
    return [f"{t}{w}，{v}" for t, w, v in itertools.product(TOPIC, words, words) if w != v]


def write_public_data(root: Path) -> Path:
    good, bad = _pairs(GOOD), _pairs(BAD)
    labelled = [(1, t) for t in good] + [(0, t) for t in bad]
    (root / "chnsenticorp_ymcui").mkdir(parents=True)
    for name, rows in (
        ("train.tsv", labelled[::2]),
        ("dev.tsv", labelled[1::8]),
        ("test.tsv", labelled[3::8]),
    ):
        with (root / "chnsenticorp_ymcui" / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["label", "text_a"])
            w.writerows(rows)
    (root / "sophonplus").mkdir()
    for name, rows in (
        ("ChnSentiCorp_htl_all.csv", labelled[5::6]),
        ("waimai_10k.csv", labelled[1::3]),
    ):
        with (root / "sophonplus" / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "review"])
            w.writerows(rows)
    with (root / "sophonplus" / "online_shopping_10_cats.csv").open(
        "w", encoding="utf-8", newline=""
    ) as f:
        w = csv.writer(f)
        w.writerow(["cat", "label", "review"])
        w.writerows(("手机", label, text) for label, text in labelled[2::5])
    bank = root / "ccf_bdci2021_bank_reviews"
    bank.mkdir()
    with (bank / "train_data_public.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "BIO_anno", "class"])
        for i, (label, text) in enumerate(labelled[::7]):
            w.writerow([i, text, "O", 1 if label else 0])
        w.writerow([999, "信用卡额度是多少", "O", 2])
    with (bank / "test_public.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((i, t) for i, (_, t) in enumerate(labelled[4::9]))
    app = root / "bankapp_icbc_reviews"
    app.mkdir()
    (app / "apple_icbc.txt").write_text("\n".join(bad[::4]) + "\n", encoding="utf-8")
    (app / "360_icbc.txt").write_text("\n".join(good[::5]) + "\n", encoding="utf-8")
    return root
