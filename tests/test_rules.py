"""The rules grader over named cases and over the demo's hand-labelled reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.classify.rules import RulesGrader
from monitor.config import load_settings
from monitor.demo import load_demo_reviews

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "cases" / "grader.yaml").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def grader() -> RulesGrader:
    settings = load_settings(env={})
    return RulesGrader(settings.lexicon, settings.policy.raise_one_step)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_named_case(grader: RulesGrader, case: dict[str, Any]) -> None:
    verdict = grader.grade(case["text"], rating=case.get("rating"), votes=case.get("votes", 0))
    assert verdict.severity.value == case["severity"], verdict.reasons
    if "sentiment" in case:
        assert verdict.sentiment.value == case["sentiment"]
    assert set(case.get("signals", [])) <= set(verdict.signals)
    assert set(case.get("categories", [])) <= set(verdict.categories)
    assert verdict.reasons, "every verdict explains itself"
    assert 0.0 <= verdict.sentiment_score <= 1.0


def test_every_grade_is_explained_by_its_reasons(grader: RulesGrader) -> None:
    verdict = grader.grade("暴力催收，我已经打12378投诉了", rating=1)
    assert any("P1 regulator signal" in r and "12378" in r for r in verdict.reasons)
    raised = grader.grade("客服电话打不通", rating=2, votes=50)
    assert any(r.startswith("raised P3→P2") for r in raised.reasons)


def test_demo_reviews_cover_every_grade_and_grade_as_labelled(grader: RulesGrader) -> None:
    _, reviews = load_demo_reviews()
    assert len(reviews) >= 60
    assert {r.expect for r in reviews} == {"P1", "P2", "P3", "P4", "none"}
    wrong = []
    for r in reviews:
        text = f"{r.review.title}。{r.review.content}"
        verdict = grader.grade(text, rating=r.review.rating, votes=r.review.votes)
        if verdict.severity.value != r.expect:
            wrong.append((r.review.id, r.expect, verdict.severity.value, verdict.reasons))
    assert wrong == []
