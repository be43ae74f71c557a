"""Shared fixtures: settings pointed at local fakes, SQLite and PostgreSQL stores, a fake clock.

PostgreSQL tests run when KOUBEI_TEST_PG_URL is set (CI sets it); each test gets
a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from monitor.classify.rules import RulesGrader
from monitor.clock import FakeClock
from monitor.collectors.http import HttpClient
from monitor.config import DEFAULT_CONFIG, Settings, load_settings
from monitor.fakes.appstore import FakeAppStore, Review
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services
from monitor.store.engine import make_engine, migrate

CONFIG_DIR = DEFAULT_CONFIG.parent
PG_URL = os.environ.get("KOUBEI_TEST_PG_URL", "").strip()
SLACK_CHANNELS = {
    "pr-crisis": "C0CRISIS01",
    "complaints": "C0COMPLA01",
    "complaints-digest": "C0DIGEST01",
    "koubei-ops": "C0KOUOPS01",
    "exec-reports": "C0EXECRE01",
}
SLACK_TOKEN = "xoxb-test-0000-secret"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped and not PG_URL:
        terminalreporter.write_line(
            f"{skipped} PostgreSQL tests skipped: set KOUBEI_TEST_PG_URL to run them "
            "(README, Testing)"
        )


def write_config(
    directory: Path,
    *,
    appstore_url: str = "http://127.0.0.1:9",
    slack_url: str = "http://127.0.0.1:9/api/",
    db_path: Path | None = None,
    source_options: dict[str, Any] | None = None,
    outbox: dict[str, Any] | None = None,
    sinks: list[dict[str, Any]] | None = None,
) -> Path:
    """A koubei.yaml for tests, using the repository's policy and lexicon."""
    data: dict[str, Any] = {
        "policy_file": str(CONFIG_DIR / "policy.yaml"),
        "lexicon_file": str(CONFIG_DIR / "lexicon.yaml"),
        "store": {"sqlite_path": str(db_path or directory / "koubei.db")},
        "http": {
            "timeout_s": 5,
            "max_retries": 2,
            "backoff_base_s": 0.01,
            "default_rate_per_s": 1000,
        },
        "slack": {
            "base_url": slack_url,
            "channels": {
                "crisis": "#pr-crisis",
                "complaints": "#complaints",
                "digest": "#complaints-digest",
                "ops": "#koubei-ops",
                "executives": "#exec-reports",
            },
            "alerts_jsonl": str(directory / "alerts.jsonl"),
        },
        "outbox": {"interval_seconds": 1, "batch_size": 500, "lease_seconds": 60, **(outbox or {})},
        "sources": [
            {
                "name": "appstore-cn",
                "kind": "appstore",
                "base_url": appstore_url,
                "options": {
                    "app_id": "1440195432",
                    "empty_page_delay_s": 0,
                    **(source_options or {}),
                },
            }
        ],
    }
    if sinks is not None:
        data["sinks"] = sinks
    path = directory / "koubei.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# The Slack sink and a WeCom robot for P1 posts, its webhook from PR_WECOM_URL.
SLACK_AND_WECOM: list[dict[str, Any]] = [
    {"name": "slack", "kind": "slack"},
    {"name": "pr-wecom", "kind": "wecom", "url_env": "PR_WECOM_URL", "grades": ["P1"]},
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'koubei.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests skipped: set KOUBEI_TEST_PG_URL (see README, Testing)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    _shared_trgm(admin)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _shared_trgm(admin: Engine) -> None:
    """pg_trgm once in `public`: created by a test's migration it would live in that test's
    schema, and dropping the schema would drop it under every other test."""
    try:
        with admin.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    except DBAPIError:  # another worker created it at the same moment
        with admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
            assert found.first() is not None, "pg_trgm could not be created for the tests"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def appstore() -> Iterator[FakeAppStore]:
    with FakeAppStore([]) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN, channels=dict(SLACK_CHANNELS), burst=1000) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, appstore: FakeAppStore, slack: FakeSlack) -> Settings:
    path = write_config(tmp_path, appstore_url=appstore.url, slack_url=slack.url + "/api/")
    return load_settings(path, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def svc(
    settings: Settings, engine: Engine, clock: FakeClock, sleeps: RecordingSleep
) -> Iterator[Services]:
    http = HttpClient(settings.app.http, sleep=sleeps)
    yield Services(
        settings=settings,
        engine=engine,
        http=http,
        grader=RulesGrader(settings.lexicon, settings.policy.raise_one_step),
        clock=clock,
    )
    http.close()


def review(
    n: int,
    *,
    rating: int = 1,
    content: str = "一直闪退，登录不了",
    title: str = "",
    author: str = "",
) -> Review:
    """A review numbered n; higher numbers are newer (published later)."""
    minute = n % 60
    hour = (n // 60) % 24
    day = 1 + n // 1440
    return Review(
        id=str(12_000_000_000 + n),
        author=author or f"用户{n}",
        rating=rating,
        title=title or f"标题{n}",
        content=f"{content}（{signature_of(n)}）",
        updated=f"2026-10-{day:02d}T{hour:02d}:{minute:02d}:00-07:00",
    )


def signature_of(n: int) -> str:
    """Eight rare characters unique to review n: different customers write differently,
    so test reviews sharing a complaint text are not near-duplicates of each other."""
    digest = hashlib.sha256(str(n).encode()).digest()
    return "".join(
        chr(0x9A00 + int.from_bytes(digest[i : i + 2], "big") % 1400) for i in range(0, 16, 2)
    )


def reviews(count: int, start: int = 1, **kwargs: Any) -> list[Review]:
    """`count` reviews, newest first, as the feed serves them."""
    return [review(n, **kwargs) for n in range(start + count - 1, start - 1, -1)]
