"""`koubei fake-sources` serves every source kind for `collect --dry-run`, with failure modes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_config


@pytest.fixture
def fakes(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    modes = getattr(request, "param", [])
    args = [a for m in modes for a in ("--fail", m)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "fake-sources", *args], stdout=subprocess.PIPE, text=True
    )
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"name: ([\w-]+), kind: \w+, base_url: (\S+),", line)
        if m:
            urls[m.group(1)] = m.group(2)
        if len(urls) == 6:
            break
    yield urls
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def config_with(tmp_path: Path, urls: dict[str, str]) -> Path:
    path = write_config(tmp_path, appstore_url=urls["appstore-cn"])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"] += [
        {
            "name": "heimao",
            "kind": "heimao",
            "base_url": urls["heimao"],
            "options": {"couid": "5650743478"},
        },
        {
            "name": "weibo-rss",
            "kind": "rss",
            "base_url": urls["weibo-rss"],
            "options": {
                "path": "/weibo/keyword/借款App",
                "include": ["借款App"],
                "exclude": ["招聘"],
            },
        },
        {
            "name": "jutousu",
            "kind": "jutousu",
            "base_url": urls["jutousu"],
            "options": {"keyword": "借款App"},
        },
        {
            "name": "huawei",
            "kind": "huawei",
            "base_url": urls["huawei"],
            "options": {"appid": "C100148961"},
        },
        {
            "name": "yingyongbao",
            "kind": "yingyongbao",
            "base_url": urls["yingyongbao"],
            "options": {"package": "com.example.loan"},
        },
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def dry_run(config: Path, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "collect", source, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KOUBEI_CONFIG": str(config)},
    )


def test_dry_run_prints_posts_for_every_kind(fakes: dict[str, str], tmp_path: Path) -> None:
    config = config_with(tmp_path, fakes)
    counts = {}
    for source in ("appstore-cn", "heimao", "weibo-rss", "jutousu", "huawei", "yingyongbao"):
        result = dry_run(config, source)
        assert result.returncode == 0, result.stderr
        lines = [json.loads(x) for x in result.stdout.splitlines()]
        assert lines and all(x["source"] == source for x in lines)
        counts[source] = len(lines)
    assert counts == {
        "appstore-cn": 66,
        "heimao": 3,
        "weibo-rss": 1,
        "jutousu": 2,
        "huawei": 2,
        "yingyongbao": 2,
    }


@pytest.mark.parametrize("fakes", [["heimao-login", "rss-broken"]], indirect=True)
def test_failure_modes_are_reported(fakes: dict[str, str], tmp_path: Path) -> None:
    config = config_with(tmp_path, fakes)
    heimao = dry_run(config, "heimao")
    assert heimao.returncode == 1 and "login page" in heimao.stderr
    rss = dry_run(config, "weibo-rss")
    assert rss.returncode == 1 and "not an RSS or Atom feed" in rss.stderr
