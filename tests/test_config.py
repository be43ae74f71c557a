"""Config validation: good files load; bad ones name the file, the key path and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config import load_settings
from monitor.errors import ConfigError
from tests.conftest import CONFIG_DIR, write_config


def koubei(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def edit(path: Path, change: dict[str, object]) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in change.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_config_is_valid() -> None:
    settings = load_settings(CONFIG_DIR / "koubei.yaml", env={})
    assert [s.name for s in settings.app.sources] == ["appstore-cn"]
    assert settings.policy.grades["P1"].ack_minutes == 15


def test_check_config_exits_0_on_a_good_file() -> None:
    result = koubei("check-config", "--config", str(CONFIG_DIR / "koubei.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout and "appstore-cn (appstore)" in result.stdout


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"sources.0.options.app_id": "abc"}, "sources[0].options.app_id", "should match pattern"),
        ({"sources.0.kind": "weibo"}, "sources[0].kind", "unknown source kind 'weibo'"),
        ({"sources.0.base_url": "itunes.apple.com"}, "sources[0].base_url", "should match"),
        ({"sources.0.interval_minutes": -5}, "sources[0].interval_minutes", "greater than 0"),
        ({"slack.chanels": {}}, "slack.chanels", "Extra inputs are not permitted"),
        ({"http.timeout_s": "soon"}, "http.timeout_s", "valid number"),
    ],
)
def test_check_config_exits_2_naming_file_key_and_problem(
    tmp_path: Path, change: dict[str, object], key: str, problem: str
) -> None:
    path = edit(write_config(tmp_path), change)
    result = koubei("check-config", "--config", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and key in result.stderr and problem in result.stderr


def test_duplicate_source_names_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"].append(dict(data["sources"][0]))
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="repeated: appstore-cn"):
        load_settings(path, env={})


def test_policy_channel_must_exist_in_koubei_yaml(tmp_path: Path) -> None:
    policy = yaml.safe_load((CONFIG_DIR / "policy.yaml").read_text(encoding="utf-8"))
    policy["grades"]["P2"]["channel"] = "war-room"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True), "utf-8")
    path = edit(write_config(tmp_path), {"policy_file": str(tmp_path / "policy.yaml")})
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.file.endswith("policy.yaml")
    assert "grades.P2.channel: 'war-room' is not a channel key" in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "koubei.yaml"
    path.write_text("slack:\n  channels: [a, b\nsources: []\n", encoding="utf-8")
    result = koubei("check-config", "--config", str(path))
    assert (
        result.returncode == 2 and "line 3" in result.stderr and "not valid YAML" in result.stderr
    )


def test_missing_file_says_how_to_choose_one(tmp_path: Path) -> None:
    result = koubei("check-config", env={"KOUBEI_CONFIG": str(tmp_path / "nope.yaml")})
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "file not found" in result.stderr


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    settings = load_settings(path, env={"SLACK_BOT_TOKEN": "xoxb-1-2", "DATABASE_URL": ""})
    assert settings.secrets.slack_bot_token is not None
    assert "xoxb-1-2" not in repr(settings)  # SecretStr never prints
    assert settings.database_url().startswith("sqlite:///")
    with pytest.raises(ConfigError, match="Extra inputs"):
        load_settings(edit(path, {"slack.token": "xoxb-in-a-file"}), env={})


def assert_clean_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, a message naming what is wrong, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_an_unknown_time_zone_is_refused_by_check_config_and_by_run(tmp_path: Path) -> None:
    path = edit(
        write_config(tmp_path), {"timezone": "Asia/Shangai", "classifier": {"kind": "rules"}}
    )
    for command in ("check-config", "run"):
        result = koubei(command, "--config", str(path))
        assert_clean_exit_2(
            result, str(path), "timezone", "unknown time zone 'Asia/Shangai'", "Asia/Shanghai"
        )


def test_a_missing_model_folder_is_refused_by_check_config(tmp_path: Path) -> None:
    path = edit(write_config(tmp_path), {"classifier": {"model": "no-such-model"}})
    result = koubei("check-config", "--config", str(path))
    assert_clean_exit_2(
        result, str(path), "classifier.model", str(tmp_path / "no-such-model"), "does not exist"
    )
    (tmp_path / "half-model").mkdir()
    (tmp_path / "half-model" / "config.json").write_text("{}", encoding="utf-8")
    result = koubei("check-config", "--config", str(edit(path, {"classifier.model": "half-model"})))
    assert_clean_exit_2(result, "classifier.model", "lacks model.onnx")
    rules = edit(path, {"classifier.kind": "rules"})  # no model needed then
    assert koubei("check-config", "--config", str(rules)).returncode == 0


@pytest.mark.parametrize("which", ["koubei.yaml", "policy.yaml"])
def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path, which: str) -> None:
    policy = (CONFIG_DIR / "policy.yaml").read_text(encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    path = edit(write_config(tmp_path), {"policy_file": str(tmp_path / "policy.yaml")})
    target = tmp_path / which
    # Saved by an editor in GBK: the Chinese comment on line 2 is not UTF-8.
    target.write_bytes(b"# koubei\n# \xc5\xe4\xd6\xc3\n" + target.read_bytes())
    result = koubei("check-config", "--config", str(path))
    assert_clean_exit_2(result, str(target), "line 2", "not UTF-8", "save the file as UTF-8")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres//koubei:hunter2@db/koubei", "not a database URL"),
        ("postgresql://koubei:hunter2@db:fivefour/koubei", "not a database URL"),
        ("mysql://koubei:hunter2@db/koubei", "'mysql' databases are not supported"),
    ],
)
def test_a_bad_database_url_is_refused_without_showing_it(
    tmp_path: Path, url: str, problem: str
) -> None:
    path = write_config(tmp_path)
    for command in ("check-config", "migrate"):
        result = koubei(command, "--config", str(path), env={"DATABASE_URL": url})
        assert_clean_exit_2(result, "environment", "DATABASE_URL", problem, "postgresql://")
        assert "hunter2" not in result.stderr + result.stdout


def test_duplicate_yaml_keys_are_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    text = write_config(tmp_path).read_text(encoding="utf-8")
    # A second `timezone:` and, inside slack.channels, a second `crisis:`.
    text = text.replace("slack:\n", "timezone: Asia/Shanghai\nslack:\n", 1)
    text += "timezone: Europe/London\n"
    lines = text.splitlines()
    crisis = next(i for i, line in enumerate(lines) if line.strip().startswith("crisis:"))
    lines.insert(crisis + 1, lines[crisis])
    path = tmp_path / "koubei.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first_tz = next(i for i, line in enumerate(lines) if line.startswith("timezone:")) + 1
    result = koubei("check-config", "--config", str(path))
    assert_clean_exit_2(
        result,
        str(path),
        f"timezone: duplicate key at line {len(lines)} (first at line {first_tz})",
        f"slack.channels.crisis: duplicate key at line {crisis + 2} (first at line {crisis + 1})",
    )


def test_a_broken_failure_pattern_names_the_file_and_the_pattern(tmp_path: Path) -> None:
    lexicon = yaml.safe_load((CONFIG_DIR / "lexicon.yaml").read_text(encoding="utf-8"))
    lexicon["failure_patterns"] = ["(?:登|进)不了", "(?:登|进不了"]
    (tmp_path / "lexicon.yaml").write_text(yaml.safe_dump(lexicon, allow_unicode=True), "utf-8")
    path = edit(write_config(tmp_path), {"lexicon_file": str(tmp_path / "lexicon.yaml")})
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.file.endswith("lexicon.yaml")
    assert "failure_patterns" in str(info.value) and "(?:登|进不了" in str(info.value)
    assert "not a valid regular expression" in str(info.value)
