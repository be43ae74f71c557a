"""The shipped transformer behind `koubei classify` and the grader: served by ONNX Runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.classify import Grader
from monitor.classify.factory import build_grader
from monitor.classify.lending_set import LENDING_DIR, read_lending
from monitor.classify.onnx_model import OnnxClassifier
from monitor.classify.textprep import MAX_CHARS, prepare
from monitor.config import DEFAULT_MODEL, load_settings
from monitor.errors import ModelError
from tests.conftest import write_config

KEYS = ["text", "sentiment", "sentiment_score", "severity", "categories", "signals", "reasons"]


def koubei(*args: str, config: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KOUBEI_CONFIG": str(config)},
        input=stdin,
        timeout=120,
    )


def config_with_model(tmp: Path, model: Path, encoder: Path | None = None) -> Path:
    path = write_config(tmp)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["classifier"] = {"kind": "model", "model": str(model)}
    if encoder is not None:
        data["classifier"]["encoder"] = str(encoder)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def shipped_config(tmp: Path) -> Path:
    """A test config with the repository config's classifier (the cascade it ships)."""
    settings = load_settings(env={})
    return config_with_model(tmp, settings.model_dir(), settings.encoder_dir())


@pytest.fixture(scope="module")
def grader() -> Grader:
    """The shipped grader, as the repository's config builds it."""
    return build_grader(load_settings(env={}))


def test_classify_handles_what_customers_actually_send(tmp_path: Path) -> None:
    long_text = (
        "我在你们平台借了一笔钱，" + "后来发生了很多事情，" * 400 + "我要去12378投诉你们的暴力催收"
    )
    lines = [
        "催收天天打电话威胁要上门，已经报警了😡",
        "",
        long_text,
        "你們的服務很好，放款很快，推薦👍",
        "客服电话打&#19981;通&#65281;<br>&amp; 急死了",
        "App keeps crashing，login 一直 failed，还款日到了还不了款",
        "请问12378是什么电话？",
    ]
    config = shipped_config(tmp_path)
    result = koubei("classify", config=config, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(lines)
    assert all(list(r) == KEYS for r in rows)
    assert all(0.0 <= r["sentiment_score"] <= 1.0 for r in rows)
    crisis, empty, long_row, praise, entities, english, question = rows
    assert crisis["severity"] == "P1" and "threat" in crisis["signals"]
    assert empty["severity"] == "none" and empty["reasons"] == ["empty text: nothing to grade"]
    assert long_row["severity"] == "P1" and "regulator" in long_row["signals"]
    assert praise["sentiment"] == "positive" and praise["severity"] == "none"
    assert entities["sentiment"] == "negative" and entities["severity"] == "P3"
    assert english["sentiment"] == "negative" and english["severity"] in ("P3", "P4")
    assert question["severity"] == "none"
    assert any(r.startswith("model: ") for r in crisis["reasons"])


def test_classify_reads_a_file_and_masks_personal_data(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("扣了我两次款，联系我 13812345678\n", encoding="utf-8")
    result = koubei("classify", "--input", str(texts), config=shipped_config(tmp_path))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert "13812345678" not in result.stdout and "138****5678" in row["text"]
    missing = koubei(
        "classify", "--input", str(tmp_path / "nope.txt"), config=write_config(tmp_path)
    )
    assert missing.returncode == 2 and "nope.txt" in missing.stderr


def test_negation_and_questions_never_page_anyone(grader: Grader) -> None:
    calm = [
        "不是骗子，正规平台，用了两年了",
        "逾期了几天，催收很有礼貌，没有暴力催收",
        "请问12378是银保监会的电话吗",
        "看到新闻说人民银行出了新规，对借款有影响吗",
    ]
    for text in calm:
        verdict = grader.grade(text)
        assert verdict.severity.value in ("none", "P4"), (text, verdict.reasons)


def test_self_harm_is_never_missed(grader: Grader) -> None:
    for text in ("还不上了，不想活了", "真的撑不下去，想吃安眠药", "被逼得想跳楼"):
        verdict = grader.grade(text, rating=5)
        assert verdict.severity.value == "P1", (text, verdict.reasons)


def test_the_star_rating_moves_a_borderline_review(grader: Grader) -> None:
    low = grader.grade("还行吧", rating=1)
    high = grader.grade("还行吧", rating=5)
    assert low.sentiment_score != high.sentiment_score or low.sentiment != high.sentiment
    assert any("rating 1★" in r for r in low.reasons)


def test_batched_and_single_grades_agree(grader: Grader) -> None:
    from monitor.classify import GradeInput

    rows = read_lending(LENDING_DIR / "heldout.tsv")[:40]
    together = grader.grade_many([GradeInput(r.text) for r in rows])
    alone = [grader.grade(r.text) for r in rows]
    assert [v.severity for v in together] == [v.severity for v in alone]
    assert [v.sentiment for v in together] == [v.sentiment for v in alone]


def test_long_texts_keep_head_and_tail() -> None:
    text = "开头说明问题" + "中间" * 500 + "结尾要求赔偿"
    kept = prepare(text)
    assert len(kept) == MAX_CHARS
    assert kept.startswith("开头说明问题") and kept.endswith("结尾要求赔偿")
    assert prepare("客服&amp;人工<b>打不通</b>&#65281;") == "客服&人工 打不通 !"


def test_a_missing_model_folder_names_the_path_and_the_fix(tmp_path: Path) -> None:
    config = config_with_model(tmp_path, tmp_path / "models" / "gone")
    result = koubei("classify", config=config, stdin="扣款失败\n")
    assert result.returncode == 1
    assert str(tmp_path / "models" / "gone") in result.stderr
    assert "koubei train" in result.stderr
    with pytest.raises(ModelError, match="does not exist"):
        OnnxClassifier(tmp_path / "models" / "gone")


def test_a_corrupt_or_incomplete_model_is_refused_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(DEFAULT_MODEL, broken)
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match=r"model\.onnx is not a readable ONNX model"):
        OnnxClassifier(broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"lacks model\.onnx"):
        OnnxClassifier(broken)
    shutil.copyfile(DEFAULT_MODEL / "model.onnx", broken / "model.onnx")
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="cannot read the tokenizer"):
        OnnxClassifier(broken)
    result = koubei("classify", config=config_with_model(tmp_path, broken), stdin="你好\n")
    assert result.returncode == 1 and "cannot read the tokenizer" in result.stderr


def test_a_users_own_sentiment_checkpoint_serves_after_export(tmp_path: Path) -> None:
    """A plain three-label fine-tune (no categories) works once exported; categories fall back."""
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "their-model"
    # Their model reads the default model's tokenizer, so its table holds every id it gives.
    pieces = Tokenizer.from_file(str(DEFAULT_MODEL / "tokenizer.json")).get_vocab_size()
    config = BertConfig(
        vocab_size=pieces,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    shutil.copyfile(DEFAULT_MODEL / "tokenizer.json", folder / "tokenizer.json")
    cfg = config_with_model(tmp_path, folder)
    before = koubei("classify", config=cfg, stdin="扣款失败\n")
    assert before.returncode == 1 and "export-onnx" in before.stderr
    exported = koubei("export-onnx", str(folder), config=cfg)
    assert exported.returncode == 0, exported.stderr
    result = koubei("classify", config=cfg, stdin="重复扣款，催收打给我家人\n")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert list(row) == KEYS
    assert {"deduction", "collection"} <= set(row["categories"]) or row["sentiment"] != "negative"


def test_idioms_jokes_and_forum_facts_page_nobody(grader: Grader) -> None:
    # Each of these was a P1-P3 page or alert before: the words are there, the claim is not.
    for text, rating in (
        ("笑得我不想活了哈哈哈", None),
        ("I love this app, fast approval 👍", None),
        ("不是骗子…正规平台，客服也耐心", 5),
        ("内存泄露严重，越用越卡", None),
        ("银行会起诉逾期不还的人", None),
        ("楼主千万别轻生，人在就有希望", None),
        ("楼主直接投诉到银监会就行", None),
    ):
        verdict = grader.grade(text, rating=rating)
        assert verdict.severity.value in ("none", "P4"), (text, verdict.reasons)
        assert not verdict.signals, (text, verdict.reasons)
    courier = grader.grade("卡员上门拍照核实，一周就拿到卡了")
    assert courier.severity.value != "P1" and not courier.signals, courier.reasons
    joke = grader.grade("笑得我不想活了哈哈哈")
    assert any("“不想活了” read as an idiom or a joke" in r for r in joke.reasons)


def test_blocking_failures_alert_whatever_the_script_or_tone(grader: Grader) -> None:
    for text in (
        "根本进不去",
        "登不上",
        "卡死了",
        "用不了",
        "一直闪退",
        "登入不了，一直閃退",
        "真棒，又打不开了",
        "以前很好用，更新后就打不开了",
        "Can't log in since the update",
    ):
        verdict = grader.grade(text)
        assert verdict.severity.value == "P3", (text, verdict.reasons)
        assert any(
            r.startswith("P3 service failure blocks the customer: “") for r in verdict.reasons
        )


def test_a_crisis_still_pages_beside_a_joke_elsewhere(grader: Grader) -> None:
    verdict = grader.grade("昨天还笑得很开心。今天催收说要上门找我家人，被逼得不想活了")
    assert verdict.severity.value == "P1" and "self_harm" in verdict.signals, verdict.reasons


def test_a_bank_suing_the_writer_is_no_escalation_by_the_writer(grader: Grader) -> None:
    # The bank's warning is collection pressure; the writer going to court is a crisis.
    sued = grader.grade("他说今天不还就起诉我，网贷坑人啊")
    assert sued.severity.value != "P1" and "legal" not in sued.signals, sued.reasons
    suing = grader.grade("已经找律师了，准备起诉你们")
    assert suing.severity.value == "P1" and "legal" in suing.signals, suing.reasons
