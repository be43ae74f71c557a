"""Credentials in a source's URL and customers' data in SQL parameters never leave in clear.

A `base_url` may carry a user and password or a token in its query string; the
fetch error quoting it is stored on the run and the source's state, logged,
alerted to ops and shown by `koubei sources`. A database error quotes the row it
choked on; a crash prints it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

import monitor.cli
from monitor.classify.pii import mask_pii
from monitor.classify.rules import RulesGrader
from monitor.clock import FakeClock
from monitor.collectors.http import HttpClient
from monitor.config import load_settings
from monitor.errors import FetchError, ParseError
from monitor.fakes.appstore import FakeAppStore
from monitor.health import table
from monitor.logs import RedactingFilter
from monitor.pipeline import Services, run_source
from monitor.redact import redact, redact_url
from monitor.store.tables import SourceStateRow
from tests.conftest import RecordingSleep, reviews, write_config

PASSWORD = "s3cr3t-pw"
TOKEN = "tok-9f8e7d6c"
PHONE, IDN = "13812345678", "110101199003074578"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://koubei:s3cr3t@feeds.example.cn/rss", "https://koubei:***@feeds.example.cn/rss"),
        ("https://tok-abc@api.example.cn/x", "https://***@api.example.cn/x"),
        ("https://api.example.cn/x?token=abc&page=2", "https://api.example.cn/x?token=***&page=2"),
        ("https://a.example.cn/?KEY=abc", "https://a.example.cn/?KEY=***"),
        ("https://a.example.cn/?sign=abc&ts=1", "https://a.example.cn/?sign=***&ts=1"),
        ("https://a.example.cn/cb#access_token=abc", "https://a.example.cn/cb#access_token=***"),
        (
            "https://a.example.cn/?api_key=abc&monkey=1",
            "https://a.example.cn/?api_key=***&monkey=1",
        ),
        ("https://a.example.cn/x?q=a@b.cn&id=7", "https://a.example.cn/x?q=a@b.cn&id=7"),
        ("https://a.example.cn/complaint/view/17380020001/", None),
    ],
)
def test_a_url_loses_its_credentials_and_keeps_the_rest(url: str, shown: str | None) -> None:
    assert redact_url(url) == (shown or url)


def test_fetch_and_parse_errors_never_quote_a_credential() -> None:
    url = f"https://koubei:{PASSWORD}@h.example.cn/api?access_token={TOKEN}&page=1"
    for exc in (
        FetchError("heimao", url, f"HTTP 500 at {url}"),
        ParseError("heimao", url, "not JSON"),
    ):
        assert PASSWORD not in str(exc) and TOKEN not in str(exc)
        assert "h.example.cn/api?access_token=***&page=1" in str(exc)


@pytest.fixture
def failing_source(tmp_path: Path, engine: Engine, db_url: str) -> Iterator[tuple[Services, Path]]:
    """A source whose base_url carries a password and a token, failing every time."""
    with FakeAppStore(reviews(3)) as store:
        host = store.url.removeprefix("http://")
        url = f"http://koubei:{PASSWORD}@{host}/feed?access_token={TOKEN}"
        config = write_config(tmp_path, appstore_url=url)
        settings = load_settings(config, env={"DATABASE_URL": db_url})
        http = HttpClient(settings.app.http, sleep=RecordingSleep())
        clock = FakeClock(datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
        yield (
            Services(
                settings=settings,
                engine=engine,
                http=http,
                grader=RulesGrader(settings.lexicon, settings.policy.raise_one_step),
                clock=clock,
            ),
            config,
        )
        http.close()


def _everything_stored(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(
            repr(row) for t in SQLModel.metadata.sorted_tables for row in conn.execute(select(t))
        )


def test_a_credential_in_base_url_reaches_no_log_row_alert_or_table(
    failing_source: tuple[Services, Path], db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    svc, config = failing_source
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RedactingFilter())  # as `koubei run` sets logging up
    source = svc.settings.app.sources[0]
    results = [run_source(svc, source) for _ in range(3)]
    assert all(not r.ok for r in results) and results[-1].health is not None
    assert "failed: HTTP 404" in (results[-1].error or "")
    assert "koubei:***@" in (results[-1].error or "")
    # Our own log lines quote the error, its credentials redacted.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]
    assert ours and all("koubei:***@" in line for line in ours)
    shown = [r.error or "" for r in results] + [results[-1].health or "", caplog.text, *ours]
    stored = _everything_stored(svc.engine)
    assert "access_token=***" in stored and "连续 3 次采集失败" in stored  # the ops alert
    for where in [*shown, stored]:
        assert PASSWORD not in where and TOKEN not in where

    env = {**os.environ, "DATABASE_URL": db_url, "SLACK_BOT_TOKEN": ""}
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "sources", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "BLIND" in out.stdout and PASSWORD not in out.stdout and TOKEN not in out.stdout


def test_koubei_sources_redacts_errors_stored_before_redaction(
    failing_source: tuple[Services, Path],
) -> None:
    svc, _config = failing_source
    run_source(svc, svc.settings.app.sources[0])
    leaked = f"fetching http://koubei:{PASSWORD}@h/x?token={TOKEN} failed"
    with svc.engine.begin() as conn:  # as an older version wrote it, past the column type
        conn.execute(text("UPDATE source_state SET last_error = :e"), {"e": leaked})
        assert conn.execute(text("SELECT last_error FROM source_state")).scalar_one() == leaked
    [health] = table(svc.engine, svc.settings)
    assert health.last_error and "koubei:***@h/x?token=***" in health.last_error


PII_ROW = f"电话{PHONE}，身份证{IDN}"


def _duplicate_state(engine: Engine) -> DBAPIError:
    for _ in range(2):
        with Session(engine) as session:
            session.add(SourceStateRow(source="dup", last_error=PII_ROW, blind_reason=PII_ROW))
            try:
                session.commit()
            except DBAPIError as exc:
                return exc
    raise AssertionError("the second insert of one primary key should fail")


def test_a_database_error_never_quotes_the_bound_parameters(engine: Engine) -> None:
    exc = _duplicate_state(engine)
    assert PHONE not in str(exc) and IDN not in str(exc)
    assert "hidden" in str(exc)  # the statement is shown, its values are not


def test_a_logged_database_error_masks_what_the_driver_quotes(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RedactingFilter(scrub=mask_pii))
    log = logging.getLogger("koubei.test.store")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                # PostgreSQL quotes the offending value in the error itself.
                conn.execute(text("SELECT CAST(:v AS integer)"), {"v": PII_ROW})
            else:
                raise _duplicate_state(engine)
    except DBAPIError:
        log.exception("job failed, last error %s", PII_ROW)
    assert "job failed" in caplog.text and "Traceback" in caplog.text
    assert PHONE not in caplog.text and IDN not in caplog.text
    assert "138****5678" in caplog.text


def test_a_crash_prints_its_traceback_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash() -> None:
        raise RuntimeError(
            f"(psycopg.errors.DataError) invalid input: {PII_ROW!r} "
            f"at postgresql://koubei:{PASSWORD}@db/koubei"
        )

    monkeypatch.setattr(monitor.cli, "app", crash)
    with pytest.raises(SystemExit) as exited:
        monitor.cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err and "koubei:***@db" in err
    for secret in (PHONE, IDN, PASSWORD):
        assert secret not in err


def test_redact_keeps_plain_error_text() -> None:
    text_ = "source 'heimao': fetching https://tousu.sina.com.cn/api failed: HTTP 503"
    assert redact(text_) == text_
