"""`koubei demo`: the real pipeline against local fake App Store and Slack servers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.fakes.appstore import Review

REVIEWS_FILE = Path(__file__).resolve().parent / "appstore_reviews.yaml"


@dataclass(frozen=True)
class DemoReview:
    review: Review
    expect: str


def load_demo_reviews(path: Path = REVIEWS_FILE) -> tuple[str, list[DemoReview]]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for r in data["reviews"]:
        expect = str(r.pop("expect"))
        fields: dict[str, Any] = {k: (str(v) if k == "id" else v) for k, v in r.items()}
        out.append(DemoReview(Review(**fields), expect))
    return str(data["app_id"]), out
