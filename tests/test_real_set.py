"""The real labelled set's format, split, reserved-text refusal, batches and agreement.

Every text here is written for these tests; the public data is read only by the
last test, which skips when the data folder is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from monitor.classify import real_batches as rb
from monitor.classify.real_agreement import agreement, cohen_kappa
from monitor.classify.real_set import (
    APPLE,
    CCF_TEST,
    CCF_TRAIN,
    LABELS_PATH,
    STORE_360,
    RealLabel,
    RealSetError,
    ReservedForEvaluation,
    check_allowed,
    default_data_dir,
    load_real,
    normalise,
    read_labels,
    read_posts,
    split_of,
    text_sha,
    write_labels,
)

FAIL = "更新后一直闪退，根本进不去"
ASK = "请问年费怎么免？"


def _data(root: Path, apple: list[str], app360: list[str], ccf: list[str], test: list[str]) -> Path:
    (root / "bankapp_icbc_reviews").mkdir(parents=True)
    (root / APPLE).write_text("\n".join(apple) + "\n", encoding="utf-8")
    (root / STORE_360).write_text("\n".join(app360) + "\n", encoding="utf-8")
    (root / "ccf_bdci2021_bank_reviews").mkdir()
    for name, texts in ((CCF_TRAIN, ccf), (CCF_TEST, test)):
        with (root / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "BIO_anno", "class"])
            w.writerows((i, t, "O", 2) for i, t in enumerate(texts))
    return root


def _apple_lines(n: int) -> list[str]:
    return [f"第{i}条评论：登录失败" for i in range(1, n + 1)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    apple = _apple_lines(16_005)
    apple[9] = FAIL
    apple[16_002] = "只在保留部分的评论"  # line 16,003: reserved
    apple[16_003] = "好"  # one character (also a copy of a 360 line)
    return _data(
        tmp_path / "data",
        apple,
        [FAIL, "好", "", "界面　清爽，  转账很快", "被保留文件抄走的评论"],
        [ASK, "这张卡首年免年费", "额度被降到两千"],
        ["被保留文件抄走的评论", "测试集的评论"],
    )


def test_normalisation_folds_width_and_whitespace() -> None:
    assert normalise("  登录\t失败 ＡＢＣ１２３\n") == "登录 失败 ABC123"
    assert text_sha("登录　　失败") == text_sha("登录 失败 ")
    assert len(text_sha(FAIL)) == 16
    assert text_sha(FAIL) != text_sha(ASK)


def test_split_is_fixed_by_hash_and_holds_out_a_third() -> None:
    shas = [text_sha(f"评论{i}") for i in range(3000)]
    held = [s for s in shas if split_of(s) == "heldout"]
    assert 0.30 < len(held) / len(shas) < 0.37
    assert all(split_of(s) == ("heldout" if int(s, 16) % 3 == 0 else "train") for s in shas)


def test_reserved_text_is_refused() -> None:
    check_allowed(APPLE, 16_000)
    with pytest.raises(ReservedForEvaluation, match="after 16,000"):
        check_allowed(APPLE, 16_001)
    with pytest.raises(ReservedForEvaluation, match="reserved"):
        check_allowed(CCF_TEST)
    with pytest.raises(RealSetError, match="not a labelled file"):
        check_allowed("sophonplus/waimai_10k.csv")


def test_posts_after_line_16000_are_never_read(data: Path) -> None:
    posts = read_posts(data, APPLE)
    assert max(p.line for p in posts) == 16_000
    assert "只在保留部分的评论" not in {p.text for p in posts}
    assert next(p.line for p in posts if p.text == normalise(FAIL)) == 10
    with pytest.raises(ReservedForEvaluation):
        read_posts(data, CCF_TEST)


def _label(file: str, text: str, severity: str = "P3", sentiment: str = "negative") -> RealLabel:
    return RealLabel(file, text_sha(text), severity, sentiment, ("app",), (), "t")


def test_loader_joins_labels_and_reports_missing_ones(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.tsv"
    write_labels(
        path,
        [
            _label(APPLE, FAIL),
            _label(CCF_TRAIN, ASK, "none", "neutral"),
            _label(APPLE, "数据里没有的评论"),
        ],
    )
    real = load_real(data, read_labels(path))
    assert {j.text for j in real.joined} == {normalise(FAIL), normalise(ASK)}
    assert [m.text_sha for m in real.missing] == [text_sha("数据里没有的评论")]


def test_loader_refuses_labels_on_reserved_text(data: Path) -> None:
    with pytest.raises(ReservedForEvaluation):
        load_real(data, [_label(CCF_TEST, "测试集的评论")])
    with pytest.raises(ReservedForEvaluation):
        load_real(data, [_label(APPLE, "只在保留部分的评论")])  # line 16,003
    # A labellable line whose text is also in the reserved file is refused too.
    with pytest.raises(ReservedForEvaluation, match="also in the text reserved"):
        load_real(data, [_label(STORE_360, "被保留文件抄走的评论")])


def test_label_file_rejects_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "labels.tsv"
    head = "file\ttext_sha\tseverity\tsentiment\tcategories\tsignals\tlabeller\tsample\n"
    sha = text_sha(FAIL)
    for row, message in (
        (f"{APPLE}\t{sha}\tP5\tnegative\tapp\t\tt\trandom", "severity 'P5'"),
        (f"{APPLE}\t{sha}\tP3\tpositive\tapp\t\tt\trandom", "sentiment is negative"),
        (f"{APPLE}\t{sha}\tP3\tnegative\tbugs\t\tt\trandom", "unknown categories"),
        (f"{APPLE}\t{sha}\tP1\tnegative\tapp\tpanic\tt\trandom", "unknown signals"),
        (f"{APPLE}\t{sha}\tP3\tnegative\t\t\tt\trandom", "at least one"),
        (f"{CCF_TEST}\t{sha}\tnone\tneutral\tother\t\tt\trandom", "reserved"),
        (f"{APPLE}\t{sha}\tP3\tnegative\tapp\t\tt\tpicked", "sample 'picked'"),
    ):
        path.write_text(head + row + "\n", encoding="utf-8")
        with pytest.raises(RealSetError, match=message):
            read_labels(path)


def test_draw_dedupes_skips_and_is_deterministic(data: Path, tmp_path: Path) -> None:
    order = rb.draw_order(data)
    texts = [p.text for p in order]
    assert len(texts) == len(set(texts))
    assert "好" not in texts and "" not in texts
    assert "被保留文件抄走的评论" not in texts  # a copy of a reserved text
    assert "只在保留部分的评论" not in texts
    assert "界面 清爽, 转账很快" in texts
    assert [p.file for p in order[:3]] == sorted([APPLE, STORE_360, CCF_TRAIN])
    assert [p.sha for p in rb.draw_order(data)] == [p.sha for p in order]
    out = tmp_path / "work"
    paths = rb.draw(data, out, batches=2, size=4)
    assert [p.name for p in paths] == ["batch_01.tsv", "batch_02.tsv"]
    rows = rb.read_batch(paths[0])
    assert list(rows) == ["01-001", "01-002", "01-003", "01-004"]
    assert [p.sha for p in rows.values()] == [p.sha for p in order[:4]]
    before = paths[0].read_text(encoding="utf-8")
    # A later draw writes new batches after the old ones and never draws a post twice.
    (more,) = rb.draw(data, out, batches=1, size=4)
    assert more.name == "batch_03.tsv" and paths[0].read_text(encoding="utf-8") == before
    assert [p.sha for p in rb.read_batch(more).values()] == [p.sha for p in order[8:12]]
    with pytest.raises(RealSetError, match="outside the repo"):
        rb.draw(data, LABELS_PATH.parent / "work", batches=1)


def test_keyword_sample_takes_rare_words_first_and_skips_drawn_posts(tmp_path: Path) -> None:
    posts = ["已经打了12378投诉", "年费被扣了两百", "卡死了打不开", "界面很好看", "又被扣了年费"]
    data = _data(tmp_path / "data", posts, ["转账很快"], ["逾期会上征信吗"], ["测试"])
    out = tmp_path / "work"
    (random,) = rb.draw(data, out, batches=1, size=1)
    taken = next(iter(rb.read_batch(random).values())).sha
    (kw,) = rb.draw(data, out, batches=1, size=10, keyword=True)
    assert kw.name == "batch_k01.tsv"
    rows = list(rb.read_batch(kw).values())
    assert next(iter(rb.read_batch(kw))) == "k01-001"
    texts = {p.sha: p.text for p in rb.draw_order(data)}
    got = [texts[r.sha] for r in rows]
    assert taken not in {r.sha for r in rows}
    assert "界面很好看" not in got and "转账很快" not in got
    tiers = [rb._tier(t) for t in got]
    assert None not in tiers and tiers == sorted(tiers, key=lambda t: t or 0)  # rarest first
    with_words = {normalise(t) for t in [*posts, "逾期会上征信吗"]} - {"界面很好看"}
    assert set(got) == with_words - {texts[taken]}
    # Narrowed to one file, a later keyword draw takes only that file's remaining posts.
    (none_left,) = rb.draw(
        data, tmp_path / "work2", batches=1, size=10, keyword=True, files=[CCF_TRAIN]
    )
    assert {r.file for r in rb.read_batch(none_left).values()} == {CCF_TRAIN}
    with pytest.raises(ReservedForEvaluation):
        rb.draw(data, out, batches=1, keyword=True, files=[CCF_TEST])
    labels = tmp_path / "labels.tsv"
    _filled(kw, [f"{rows[0].id}\tnone\tneutral\tother\t"])
    rb.import_filled(kw.with_name("batch_k01.labels.tsv"), "me", data, labels)
    assert [r.sample for r in read_labels(labels)] == ["keyword"]
    # A fresh work folder (a new machine) does not draw an already-labelled post again.
    again = rb.draw(data, tmp_path / "work3", batches=1, size=10, keyword=True, labels_path=labels)
    drawn_again = {r.sha for r in rb.read_batch(again[0]).values()}
    assert drawn_again == {p.sha for p in rb.keyword_order(data, set())} - {rows[0].sha}


def _filled(batch: Path, rows: list[str]) -> Path:
    path = batch.with_name(batch.name.replace(".tsv", ".labels.tsv"))
    path.write_text("\n".join(["id\tseverity\tsentiment\tcategories\tsignals", *rows]) + "\n")
    return path


def test_import_validates_and_merges(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "work"
    (batch,) = rb.draw(data, out, batches=1, size=3)
    ids = list(rb.read_batch(batch))
    labels = tmp_path / "labels.tsv"
    filled = _filled(batch, [f"{ids[0]}\tP3\tnegative\tapp\t", f"{ids[1]}\tnone\tneutral\tfees\t"])
    assert len(rb.import_filled(filled, "me", data, labels)) == 2
    assert len(read_labels(labels)) == 2
    # A re-import replaces the post's row instead of adding a second one.
    _filled(batch, [f"{ids[0]}\tP4\tnegative\tapp\t"])
    rb.import_filled(filled, "me", data, labels)
    got = {r.text_sha: r.severity for r in read_labels(labels)}
    assert len(got) == 2 and rb.read_batch(batch)[ids[0]].sha in got
    assert got[rb.read_batch(batch)[ids[0]].sha] == "P4"
    with pytest.raises(RealSetError, match=r"not in batch_01\.tsv"):
        rb.import_filled(_filled(batch, ["99-001\tP3\tnegative\tapp\t"]), "me", data, labels)
    with pytest.raises(RealSetError, match="unknown categories"):
        rb.import_filled(_filled(batch, [f"{ids[0]}\tP3\tnegative\tbug\t"]), "me", data, labels)
    # A batch row whose hash does not match any text of its file is refused.
    text = batch.read_text(encoding="utf-8")
    sha = rb.read_batch(batch)[ids[0]].sha
    batch.write_text(text.replace(sha, "0" * 16), encoding="utf-8")
    with pytest.raises(RealSetError, match="no post in"):
        rb.import_filled(_filled(batch, [f"{ids[0]}\tP3\tnegative\tapp\t"]), "me", data, labels)
    # A batch row naming a reserved file is refused before anything is written.
    batch.write_text(text.replace(rb.read_batch(batch)[ids[1]].file, CCF_TEST), encoding="utf-8")
    before = labels.read_text(encoding="utf-8")
    with pytest.raises(ReservedForEvaluation):
        rb.import_filled(_filled(batch, [f"{ids[1]}\tnone\tneutral\tfees\t"]), "me", data, labels)
    assert labels.read_text(encoding="utf-8") == before


def test_check_compares_sentiment_with_the_ccf_class(data: Path, tmp_path: Path) -> None:
    # The fixture's CCF rows all carry class 2 (neutral).
    labels = [
        _label(CCF_TRAIN, ASK, "none", "neutral"),
        _label(CCF_TRAIN, "这张卡首年免年费", "none", "positive"),
        _label(APPLE, FAIL),
    ]
    n, agree, _ = rb.ccf_sentiment_check(data, labels)
    assert (n, agree) == (2, 0.5)
    path = tmp_path / "labels.tsv"
    write_labels(path, labels)
    assert "sentiment vs the CCF file's own class: 2 posts, agreement 0.500" in rb.summary(
        data, path
    )


def test_agreement_sample_stops_at_its_size(tmp_path: Path) -> None:
    path = tmp_path / "agreement.tsv"
    first = [_label(APPLE, f"评论{i}") for i in range(5)]
    assert rb.extend_agreement(path, first, size=3) == 3
    assert rb.extend_agreement(path, [_label(APPLE, "又一条")], size=3) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file\ttext_sha" and lines[1] == f"{APPLE}\t{first[0].text_sha}"


def test_kappa() -> None:
    assert cohen_kappa("aabb", "aabb") == 1.0
    # observed 0.5, expected 0.5: no better than chance
    assert cohen_kappa("aabb", "abab") == 0.0
    # 20 items: observed 0.7, expected 0.5 -> 0.4
    a = list("y" * 10 + "n" * 10)
    b = list("y" * 7 + "n" * 3 + "y" * 3 + "n" * 7)
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_agreement_per_field() -> None:
    texts = [f"评论{i}" for i in range(4)]
    one = [_label(APPLE, t, "P3") for t in texts]
    two = [_label(APPLE, t, "P3" if i % 2 else "P4") for i, t in enumerate(texts)]
    rows = {r.field: r for r in agreement(one, two)}
    assert rows["severity"].agreement == 0.5
    assert rows["severity within one"].agreement == 1.0
    assert rows["sentiment"].kappa == 1.0
    assert rows["category:app"].positives == 4
    with pytest.raises(RealSetError, match="share no post"):
        agreement(one, [_label(APPLE, "别的评论")])


def test_shipped_labels_join_to_the_public_data() -> None:
    data_dir = default_data_dir()
    if not (data_dir / APPLE).is_file():
        pytest.skip(
            f"public data not found at {data_dir}: set KOUBEI_DATA_DIR to the shared data folder"
        )
    if not LABELS_PATH.is_file():
        pytest.skip(f"{LABELS_PATH} not written yet")
    real = load_real(data_dir, read_labels(LABELS_PATH))
    assert real.missing == []
    assert len(real.split("heldout")) >= len(real.joined) * 0.3
