"""The cascade: the first model decides crisis pages, the second grades every other post."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from monitor.classify import GradeInput
from monitor.classify.cascade import CascadeGrader
from monitor.classify.factory import build_grader, model_grader
from monitor.classify.onnx_model import Prediction
from monitor.config import DEFAULT_ENCODER, DEFAULT_MODEL, Settings, load_settings
from monitor.domain import CATEGORIES, Severity
from monitor.errors import ModelError
from tests.conftest import write_config

NEGATIVE = (0.97, 0.02, 0.01)
CALM = (0.03, 0.9, 0.07)
QUIET = dict.fromkeys(CATEGORIES, 0.01)

CRISIS = "催收威胁要上门，我已经报警了"  # a named signal ("报警") in a complaint: P1
STUCK = "更新后一直闪退，根本进不去"  # a failure that blocks the customer: P3
FEES = "乱收会员费，钱被扣了"  # money harm: P2
QUESTION = "会员费怎么退"  # calm question


class Reader:
    """A model that reads each text as its table says and records what it was asked."""

    def __init__(self, version: str, table: Mapping[str, tuple[float, ...]]) -> None:
        self.version, self.table, self.asked = version, table, list[str]()

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        self.asked += texts
        return [Prediction(self.table[t], QUIET, {"P2": 0.01, "P3": 0.01}) for t in texts]


def cascade(first: Reader, second: Reader) -> CascadeGrader:
    settings = load_settings(env={})
    return CascadeGrader(model_grader(settings, first), model_grader(settings, second))


def test_a_crisis_page_is_the_first_models_and_it_reads_only_what_may_page() -> None:
    first = Reader("small", {CRISIS: NEGATIVE, QUESTION: CALM})
    second = Reader("encoder", {CRISIS: CALM, QUESTION: CALM})
    crisis, calm = cascade(first, second).grade_many([GradeInput(CRISIS), GradeInput(QUESTION)])
    assert crisis.severity is Severity.P1
    assert "cascade: crisis page by small" in crisis.reasons
    assert any("报警" in r for r in crisis.reasons)  # the words that decided it are still named
    # No signal word, no votes or amount to raise it: the question can never page.
    assert first.asked == [CRISIS]
    assert calm.severity is Severity.NONE
    assert crisis.model == calm.model == "cascade:small+encoder"


def test_every_other_post_takes_the_second_models_grade() -> None:
    # The first reads the question as an angry complaint, the second as calm: no alert.
    first = Reader("small", {QUESTION: NEGATIVE, STUCK: CALM})
    second = Reader("encoder", {QUESTION: CALM, STUCK: NEGATIVE})
    settings = load_settings(env={})
    alone = model_grader(settings, first).grade(QUESTION)
    assert alone.severity is not Severity.NONE
    question, stuck = cascade(first, second).grade_many([GradeInput(QUESTION), GradeInput(STUCK)])
    assert question.severity is Severity.NONE
    assert question.sentiment.value == "neutral"
    assert "cascade: graded by encoder" in question.reasons
    assert stuck.severity is Severity.P3


def test_the_second_model_alone_never_pages_the_crisis_channel() -> None:
    # The first reads the regulator's name as calm talk; the second would page it: the
    # first's grade stands, since crisis pages are the first model's to make.
    text = "我已经向银保监投诉了"
    first = Reader("small", {text: CALM, FEES: NEGATIVE})
    second = Reader("encoder", {text: NEGATIVE, FEES: NEGATIVE})
    settings = load_settings(env={})
    assert model_grader(settings, second).grade(text).severity is Severity.P1
    graded, fees = cascade(first, second).grade_many([GradeInput(text), GradeInput(FEES)])
    assert graded.severity is model_grader(settings, first).grade(text).severity
    assert graded.severity is not Severity.P1
    assert "cascade: encoder would page P1, small does not" in graded.reasons
    assert fees.severity is Severity.P2


def test_a_spreading_money_complaint_is_paged_only_on_the_first_models_reading() -> None:
    # 20 votes raise a P2 to P1: the first reads it, though no signal word is in it.
    first = Reader("small", {FEES: CALM})
    second = Reader("encoder", {FEES: NEGATIVE})
    settings = load_settings(env={})
    assert model_grader(settings, second).grade(FEES, votes=20).severity is Severity.P1
    quiet, spreading = cascade(first, second).grade_many(
        [GradeInput(FEES), GradeInput(FEES, votes=20)]
    )
    assert first.asked == [FEES]
    assert quiet.severity is Severity.P2  # the encoder's grade: no raise, nothing to page
    assert spreading.severity is Severity.NONE  # the first reads it calm: no page
    both = Reader("small", {FEES: NEGATIVE})
    paged = cascade(both, second).grade(FEES, votes=20)
    assert paged.severity is Severity.P1
    assert "cascade: crisis page by small" in paged.reasons


def test_a_large_amount_is_read_by_the_first_model_and_a_small_one_is_not() -> None:
    first = Reader("small", {FEES: CALM})
    second = Reader("encoder", {FEES: NEGATIVE})
    graded = cascade(first, second).grade_many(
        [
            GradeInput(FEES, amount=10000),  # the policy's amount raises a P2 to P1
            GradeInput(FEES, amount=9999),
            GradeInput(FEES, votes=19),
        ]
    )
    assert [v.severity for v in graded] == [Severity.NONE, Severity.P2, Severity.P2]
    assert first.asked == [FEES]  # the large amount only


def test_a_name_too_long_to_store_is_refused() -> None:
    long = "a-model-exported-with-a-long-descriptive-folder-name"
    with pytest.raises(ModelError, match="over 64 characters"):
        cascade(Reader("small", {}), Reader(long, {}))


def _config(tmp_path: Path, encoder: str) -> Path:
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["classifier"] = {"kind": "model", "model": str(DEFAULT_MODEL), "encoder": encoder}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_the_config_names_the_second_model(tmp_path: Path) -> None:
    # Two real ONNX models from the repository, one as each stage.
    base = DEFAULT_MODEL.parent / "koubei-bert-small"
    grader = build_grader(load_settings(_config(tmp_path, str(base)), env={}))
    assert isinstance(grader, CascadeGrader)
    v = grader.grade("更新以后一直闪退，登不上去", rating=1)
    assert v.severity is Severity.P3
    assert v.model == "cascade:koubei-bert-small-l8+koubei-bert-small"
    assert "cascade: graded by koubei-bert-small" in v.reasons


def test_a_missing_second_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError) as err:
        build_grader(load_settings(_config(tmp_path, str(missing)), env={}))
    assert str(missing) in str(err.value)
    assert str(err.value).startswith("classifier.encoder: ")
    assert "classifier.encoder: none" in str(err.value)


def test_check_config_names_a_missing_second_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-encoder"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "check-config",
            "--config",
            str(_config(tmp_path, str(missing))),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"classifier.encoder: model folder {missing} does not exist" in result.stderr
    assert "or set classifier.encoder: none" in result.stderr


def test_the_shipped_pair_is_the_default_and_your_own_model_grades_alone(tmp_path: Path) -> None:
    def settings_with(classifier: dict[str, str]) -> Settings:
        path = write_config(tmp_path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["classifier"] = {"kind": "model", **classifier}
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return load_settings(path, env={})

    assert settings_with({}).encoder_dir() == DEFAULT_ENCODER
    own = str(DEFAULT_MODEL.parent / "koubei-bert-small")
    assert settings_with({"model": own}).encoder_dir() is None
    assert settings_with({"encoder": "none"}).encoder_dir() is None
    assert settings_with({"encoder": ""}).encoder_dir() == DEFAULT_ENCODER
    alone = build_grader(settings_with({"encoder": "none"}))
    assert alone.name == "model:koubei-bert-small-l8"


def test_koubei_train_rebuilds_the_shipped_encoder_with_its_recorded_settings() -> None:
    pytest.importorskip("torch")
    from dataclasses import asdict

    from monitor.training.e5_finetune import encoder_recipe

    recorded = json.loads((DEFAULT_ENCODER / "metrics.json").read_text(encoding="utf-8"))
    # `koubei train --encoder e5 --e5-dir DIR` with its defaults (2 passes, 4 specialise).
    recipe = asdict(encoder_recipe("koubei-e5-small6f", 6, 2.0, 4.0, 2))
    trained = {k: v for k, v in recorded["training"].items() if k in recipe}
    assert trained == recipe
