"""The model's grade levels: how they are learnt and how the policy lets them raise a grade."""

from __future__ import annotations

import pytest

from monitor.classify import GradeInput
from monitor.classify.labels import DEFAULT_LABELS, LabelMap
from monitor.classify.model_grader import ModelGrader
from monitor.classify.onnx_model import OnnxClassifier, Prediction
from monitor.config import DEFAULT_MODEL, load_settings
from monitor.domain import CATEGORIES, Severity, Verdict
from monitor.training.corpus import NEG, POS, Example
from monitor.training.finetune import targets

# negative, neutral, positive; then every category at a low probability.
NEGATIVE = (0.97, 0.02, 0.01)
QUIET = dict.fromkeys(CATEGORIES, 0.01)


@pytest.fixture(scope="module")
def grader() -> ModelGrader:
    settings = load_settings(env={})
    return ModelGrader(
        OnnxClassifier(DEFAULT_MODEL, threads=1),
        settings.lexicon,
        settings.policy.raise_one_step,
        category_floor={"deduction": "P2"},
        level_threshold=0.5,
    )


def verdict(grader: ModelGrader, text: str, pred: Prediction) -> Verdict:
    return grader._verdict(GradeInput(text), pred)


def test_the_models_reading_of_harm_raises_a_wordless_complaint(grader: ModelGrader) -> None:
    # No harm or blocking word in the lexicon, yet money is plainly at stake.
    text = "催收打到我单位，同事都知道了，太丢人了"
    mild = verdict(grader, text, Prediction(NEGATIVE, QUIET, {"P2": 0.2, "P3": 0.3}))
    assert mild.severity is Severity.P4
    harmed = verdict(grader, text, Prediction(NEGATIVE, QUIET, {"P2": 0.81, "P3": 0.93}))
    assert harmed.severity is Severity.P2
    assert "P2 money or rights harmed: the model reads 0.81" in harmed.reasons
    blocked = verdict(grader, text, Prediction(NEGATIVE, QUIET, {"P2": 0.3, "P3": 0.7}))
    assert blocked.severity is Severity.P3
    assert any("blocks the customer: the model reads 0.70" in r for r in blocked.reasons)


def test_the_model_never_lowers_a_grade_nor_makes_a_crisis(grader: ModelGrader) -> None:
    low = {"P2": 0.01, "P3": 0.01}
    crisis = verdict(grader, "催收威胁要上门，我已经报警了", Prediction(NEGATIVE, QUIET, low))
    assert crisis.severity is Severity.P1  # named signal words decide P1, not the model
    harm = verdict(grader, "未经同意扣款，卡里的钱被划走了", Prediction(NEGATIVE, QUIET, low))
    assert harm.severity is Severity.P2
    high = {"P2": 0.99, "P3": 0.99}
    money = verdict(grader, "钱怎么少了，界面还有点丑", Prediction(NEGATIVE, QUIET, high))
    assert money.severity is Severity.P2  # the model may raise up to P2, never to a crisis page


def test_the_models_p2_reading_needs_money_or_rights_in_the_post(grader: ModelGrader) -> None:
    # Real app reviews: anger at a failed login reads as P2 to a model that learnt anger
    # from fee complaints; with no money, fee or personal-data word it stays at P3.
    high = {"P2": 0.99, "P3": 0.99}
    angry = verdict(grader, "什么破软件，界面有点丑", Prediction(NEGATIVE, QUIET, high))
    assert angry.severity is Severity.P3
    assert "model's P2 reading (0.99) unused: no money or rights topic" in angry.reasons
    fees = verdict(grader, "什么破软件，乱收年费", Prediction(NEGATIVE, QUIET, high))
    assert fees.severity is Severity.P2


def test_levels_do_not_grade_calm_text(grader: ModelGrader) -> None:
    calm = (0.05, 0.9, 0.05)
    v = verdict(grader, "自动扣款是几点扣", Prediction(calm, QUIET, {"P2": 0.9, "P3": 0.9}))
    assert v.severity is Severity.NONE


def test_a_model_without_level_outputs_still_grades(grader: ModelGrader) -> None:
    v = verdict(grader, "界面有点丑", Prediction(NEGATIVE, QUIET))
    assert v.severity is Severity.P4


def test_level_targets_are_cumulative_and_only_where_graded() -> None:
    rows = [
        Example("a", NEG, ("collection",), "lending", "P1"),
        Example("b", NEG, ("fees",), "lending", "P2"),
        Example("c", NEG, ("app",), "lending", "P3"),
        Example("d", NEG, ("app",), "lending", "P4"),
        Example("e", POS, ("other",), "lending", "none"),
        Example("f", POS, None, "waimai"),
    ]
    _, aspects, known = targets(rows)
    p2, p3 = len(CATEGORIES), len(CATEGORIES) + 1
    assert [(aspects[i, p2].item(), aspects[i, p3].item()) for i in range(5)] == [
        (1.0, 1.0),
        (1.0, 1.0),
        (0.0, 1.0),
        (0.0, 0.0),
        (0.0, 0.0),
    ]
    assert known[5].sum().item() == 0  # public reviews train sentiment only
    assert known[0].sum().item() == len(CATEGORIES) + 2


def test_label_map_reads_level_outputs_by_name() -> None:
    labels = LabelMap.parse(dict(enumerate(DEFAULT_LABELS)))
    assert [g for g, _ in labels.levels] == ["P2", "P3"]
    assert labels.size == len(DEFAULT_LABELS)
    plain = LabelMap.parse({0: "negative", 1: "neutral", 2: "positive"})
    assert plain.levels == ()


def test_an_unsure_complaint_is_not_raised_on_the_models_word_alone(grader: ModelGrader) -> None:
    unsure = (0.8, 0.15, 0.05)
    levels = {"P2": 0.3, "P3": 0.9}
    v = verdict(grader, "额度就那么一点，还天天让我去借", Prediction(unsure, QUIET, levels))
    assert v.severity is Severity.P4
    assert any("P3 reading (0.90) unused" in r for r in v.reasons)
    # A lexicon word backs the complaint: the model's reading counts again.
    backed = verdict(grader, "垃圾，额度就那么一点", Prediction(unsure, QUIET, levels))
    assert backed.severity is Severity.P3


def test_praise_without_complaint_words_is_not_a_complaint(grader: ModelGrader) -> None:
    unsure = (0.8, 0.1, 0.1)
    high = {"P2": 0.9, "P3": 0.9}
    v = verdict(grader, "没有砍头息，用着放心，很满意", Prediction(unsure, QUIET, high))
    assert v.sentiment.value == "positive" and v.severity is Severity.NONE
    assert any(r.startswith("praise") for r in v.reasons)
    sure = verdict(grader, "用着放心，很满意", Prediction((0.95, 0.03, 0.02), QUIET, high))
    assert sure.sentiment.value == "negative"  # the model sure of a complaint stands


def test_a_denial_outweighs_even_a_sure_model(grader: ModelGrader) -> None:
    high = {"P2": 0.93, "P3": 0.9}
    sure = (0.97, 0.02, 0.01)  # the from-scratch model misreads negation
    for text in ("用了两年了，从来没有乱扣过钱", "我没逾期，也没接到过催收电话"):
        v = verdict(grader, text, Prediction(sure, QUIET, high))
        assert v.severity is Severity.NONE, text
        assert any("denied or reported" in r for r in v.reasons)
    # Someone else's story or another lender is no complaint either...
    heard = verdict(
        grader, "看到别人说这家暴力催收，我逾期那次只是收到短信", Prediction(sure, QUIET, high)
    )
    assert heard.severity is Severity.NONE
    # ...unless the writer confirms it, or turns after the denial.
    confirmed = verdict(
        grader,
        "听说你们会打给紧急联系人，果然今天我妈就接到电话了",
        Prediction((0.58, 0.3, 0.12), QUIET, high),
    )
    assert confirmed.severity is Severity.P2
    turned = verdict(grader, "没有暴力催收，但是利息实在太高了", Prediction(sure, QUIET, high))
    assert turned.severity is Severity.P2
    assert "P2 money or rights harmed: the model reads 0.93" in turned.reasons


def test_a_question_that_only_names_a_topic_is_not_a_complaint(grader: ModelGrader) -> None:
    unsure = (0.6, 0.3, 0.1)
    asks = verdict(grader, "会员费可以退吗，我还没用过", Prediction(unsure, QUIET, {}))
    assert asks.severity is Severity.NONE and asks.sentiment.value == "neutral"
    claims = verdict(grader, "乱扣的会员费可以退吗", Prediction(unsure, QUIET, {}))
    assert claims.severity is Severity.P2  # "乱扣" says something went wrong


def test_escalation_words_are_a_complaint_unless_the_post_asks_or_praises(
    grader: ModelGrader,
) -> None:
    calm = (0.05, 0.35, 0.6)  # the model misreads a threat as praise
    threat = verdict(grader, "凌晨两点打电话恐吓我，说今晚上门", Prediction(calm, QUIET, {}))
    assert threat.severity is Severity.P1
    assert any("neither asking nor praising" in r for r in threat.reasons)
    assert threat.sentiment_score == 0.05  # the model's probability of a complaint, not a guess
    asks = verdict(
        grader, "看到新闻说央视报道了网贷，你们是正规平台吗", Prediction(calm, QUIET, {})
    )
    assert asks.severity is Severity.NONE
    thanks = verdict(grader, "打12378投诉后客服解决了，很满意", Prediction(calm, QUIET, {}))
    assert thanks.severity is Severity.NONE


def test_a_named_institution_is_a_complaint_only_when_the_model_is_unsure(
    grader: ModelGrader,
) -> None:
    text = "律师朋友说借款合同要仔细看，我看看"
    sure_calm = verdict(grader, text, Prediction((0.04, 0.9, 0.06), QUIET, {}))
    assert sure_calm.severity is Severity.NONE  # no P1 page for a friend who is a lawyer
    unsure = verdict(grader, "我要把你们的合同发给央视", Prediction((0.3, 0.6, 0.1), QUIET, {}))
    assert unsure.severity is Severity.P1
    assert unsure.signals == ("media",)
    # A threat is harm done, not a place named: even a model sure of calm does not hide it.
    threat = verdict(grader, "催收说让我出门小心点", Prediction((0.04, 0.9, 0.06), QUIET, {}))
    assert threat.severity is Severity.P1
    # Nor does it hide a named regulator beside a word that says something went wrong...
    claimed = verdict(
        grader, "利息太高了，已经向人行反映了", Prediction((0.04, 0.1, 0.86), QUIET, {})
    )
    assert claimed.severity is Severity.P1
    # ...but "投诉" names the act of complaining, as chatter about regulators does.
    chatter = verdict(
        grader, "还是觉得银监会猛，投诉过一次就有人回电", Prediction((0.04, 0.9, 0.06), QUIET, {})
    )
    assert chatter.severity is Severity.NONE
