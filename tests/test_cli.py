"""The `koubei` command on its real paths: dry-run collection, classify, the demo, logging."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.fakes.appstore import FakeAppStore
from monitor.logs import RedactingFilter
from tests.conftest import review, reviews, write_config

KEYS = [
    "source",
    "kind",
    "external_id",
    "url",
    "author",
    "title",
    "body",
    "rating",
    "app_version",
    "published_at",
]


def koubei(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        input=stdin,
        timeout=120,
    )


def test_collect_dry_run_prints_normalized_posts_and_stores_nothing(
    tmp_path: Path, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(60)
    config = write_config(tmp_path, appstore_url=appstore.url)
    result = koubei("collect", "appstore-cn", "--dry-run", env={"KOUBEI_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 60
    assert all(list(line) == KEYS for line in lines)
    assert lines[0]["published_at"].endswith("Z") and lines[0]["kind"] == "appstore"
    assert not (tmp_path / "koubei.db").exists()


def test_collect_reports_a_failing_source_with_exit_1(
    tmp_path: Path, appstore: FakeAppStore
) -> None:
    appstore.reviews = reviews(3)
    appstore.quirks.statuses[1] = [503] * 5
    config = write_config(tmp_path, appstore_url=appstore.url)
    result = koubei("collect", "appstore-cn", env={"KOUBEI_CONFIG": str(config)})
    assert result.returncode == 1
    assert "appstore-cn" in result.stderr and "HTTP 503" in result.stderr


def test_unknown_source_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = koubei("collect", "huawei", env={"KOUBEI_CONFIG": str(config)})
    assert result.returncode == 2 and "no source named 'huawei'" in result.stderr


def test_classify_reads_lines_and_writes_json(tmp_path: Path) -> None:
    texts = "请问12378是什么电话\n\n催收威胁要上门 &amp; 恐吓😡\n一直闪退，登录不了\n"
    result = koubei("classify", env={"KOUBEI_CONFIG": str(write_config(tmp_path))}, stdin=texts)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["severity"] for r in rows] == ["none", "none", "P1", "P3"]
    assert all(
        set(r)
        == {"text", "sentiment", "sentiment_score", "severity", "categories", "signals", "reasons"}
        for r in rows
    )


def test_demo_shows_every_grade_reaching_slack(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_BOT_TOKEN", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for grade in ("P1", "P2", "P3", "P4"):
        assert f"== {grade}: " in result.stdout
        assert f"== {grade}: 0 message" not in result.stdout
    assert "MISSING" not in result.stdout
    assert "Second collection: 0 new posts, 0 alerts" in result.stdout
    assert re.search(
        r"Cross-platform: 工单 #\d+ joins posts from appstore-cn, heimao", result.stdout
    )
    assert "🚨 升级 L1" in result.stdout and "signed click on 确认 → HTTP 200" in result.stdout
    assert "no further escalation (0 new thread messages)" in result.stdout
    # The first-party channels: App Store Connect, the app's own feedback, follow-up calls.
    assert re.search(r"Collected appstore-connect .*: 4 reviews, 4 new", result.stdout)
    assert re.search(
        r"Public reply on 工单 #\d+: .*PENDING_PUBLISH \(1 POST\).*1 status change", result.stdout
    )
    assert "In-app feedback: HTTP 202, 3 events accepted" in result.stdout
    assert "1 duplicate, nothing stored twice" in result.stdout
    assert "客户不认可，工单已重开" in result.stdout and "回访率" in result.stdout
    # Sources are collected as the demo's clock moves on, so the report has no coverage gap.
    assert "监测自" in result.stdout and "数据缺口" not in result.stdout
    board = re.search(r"(\d+) of (\d+) open cases shown, (\d+) countdowns", result.stdout)
    assert board and board.group(1) == board.group(2) == board.group(3) != "0"
    assert re.search(
        r"first response on 工单 #\d+ \(P1\): board shows 处理中; Slack thread: 💬", result.stdout
    )
    assert re.search(r"reopened 工单 #\d+: board shows 重新打开; Slack: 🔁", result.stdout)
    messages = json.loads((out / "slack_messages.json").read_text(encoding="utf-8"))
    dump = json.dumps(messages, ensure_ascii=False)
    assert "13812345678" not in dump and "qingtian88@example.com" not in dump
    # Each new P1 case reached the PR team's 企业微信 group beside Slack, once, masked.
    p1 = [
        m["text"]
        for m in messages
        if m["thread_ts"] is None
        and (m["metadata"] or {}).get("event_payload", {}).get("severity") == "P1"
    ]
    robot = json.loads((out / "wecom_messages.json").read_text(encoding="utf-8"))
    contents = [r["body"]["markdown"]["content"] for r in robot]
    first = re.search(r"工单 #(\d+)", p1[0])
    assert first is not None
    assert sum(f"【P1】新投诉（工单 #{first.group(1)}）" in c for c in contents) == 1
    assert len(contents) == len(p1) > 0
    robot_dump = json.dumps(robot, ensure_ascii=False)
    assert "13812345678" not in robot_dump and "110101199003074578" not in robot_dump
    assert re.search(
        r"== WeCom group pr-wecom \(企业微信\), new P1 cases: \d+ message\(s\) ==\n"
        r".*【P1】新投诉.*\n"
        r"  提醒：<@ZhangWei>.*\n  case link: http://127\.0\.0\.1:8080/cases/\d+",
        result.stdout,
    )
    assert (out / "posts.jsonl").exists()


def test_secrets_never_reach_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("koubei.test")
    caplog.handler.addFilter(RedactingFilter())
    logger.warning(
        "token %s and db %s", "xoxb-123-456-abcdef", "postgresql://koubei:hunter2@db/koubei"
    )
    assert "xoxb-123-456-abcdef" not in caplog.text and "hunter2" not in caplog.text
    assert "postgresql://koubei:***@db/koubei" in caplog.text


def test_a_single_review_flows_from_cli_collect_to_the_console(
    tmp_path: Path, appstore: FakeAppStore
) -> None:
    appstore.reviews = [review(1, content="暴力催收，威胁上门")]
    config = write_config(tmp_path, appstore_url=appstore.url)
    env = {"KOUBEI_CONFIG": str(config), "SLACK_BOT_TOKEN": ""}
    assert koubei("collect", "appstore-cn", env=env).returncode == 0
    delivered = koubei("deliver", env=env)
    assert delivered.returncode == 0, delivered.stderr
    assert "[alert → #pr-crisis]" in delivered.stdout and "sent 1" in delivered.stdout
    assert (tmp_path / "alerts.jsonl").exists()


def test_train_with_the_e5_encoder_says_what_it_needs() -> None:
    no_dir = koubei("train", "--encoder", "e5", env={})
    assert no_dir.returncode == 2
    assert "--encoder e5 needs --e5-dir" in no_dir.stderr
    assert "monitor.training.e5s1" in no_dir.stderr
    unknown = koubei("train", "--encoder", "e6", env={})
    assert unknown.returncode == 2 and "must be bert-small or e5" in unknown.stderr
