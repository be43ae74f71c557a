"""The architecture's floors (DESIGN.md), checked on the source: a module imports only
from floors below its own (or its own), and collectors never reach the store.

Floors, lowest first: domain, clock, errors · config · store, collectors, classify ·
pipeline, cases, case actions · outbox and sinks, reports · web, scheduler, cli, demo.
The imports listed in KNOWN break the rule today. The work floor builds channel-neutral
notices (monitor.notices) and queues them at the store floor (monitor.store.notices);
it imports nothing from alerting. The list only shrinks: a new upward import fails, and
so does an entry that no longer exists, so that fixing one removes it from here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"

FLOORS: dict[str, int] = {
    **dict.fromkeys(("__init__", "domain", "clock", "errors", "redact", "logs"), 0),
    "config": 1,
    **dict.fromkeys(("store", "collectors", "classify", "normalize", "training"), 2),
    **dict.fromkeys(
        (
            "pipeline",
            "notices",
            "bursts",
            "page_store",
            "page_writer",
            "cases",
            "case_actions",
            "platform",
            "health",
            "followups",
            "replies",
            "watchdog",
            "stories_digest",
        ),
        3,
    ),
    **dict.fromkeys(("alerting", "reports", "metrics", "counters"), 4),
    **dict.fromkeys(
        ("web", "scheduler", "cli", "cli_cases", "demo", "app", "fakes", "__main__"), 5
    ),
}

KNOWN = {
    # config validates each source's options with its collector (imported lazily)
    ("config", "monitor.collectors"),
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports() -> dict[str, set[str]]:
    """Each floor part (a top-level module or package) -> the monitor modules it imports."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        me = parts[1] if len(parts) > 1 else "__init__"
        found = out.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("monitor")
            ):
                if node.module == "monitor":
                    found.update(f"monitor.{a.name}" for a in node.names)
                else:
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("monitor"))
    return out


def test_every_module_has_a_floor() -> None:
    missing = sorted(set(imports()) - set(FLOORS))
    assert not missing, f"give these a floor in FLOORS (DESIGN.md, Layout): {missing}"


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    upward = set()
    for me, targets in imports().items():
        for target in targets:
            part = _part(target)
            if part in FLOORS and me in FLOORS and FLOORS[part] > FLOORS[me]:
                upward.add((me, target))
            if me == "collectors" and part == "store":
                upward.add((me, target))
    assert not upward - KNOWN, f"new upward imports: {sorted(upward - KNOWN)}"
    assert not KNOWN - upward, f"fixed, remove from KNOWN: {sorted(KNOWN - upward)}"


def test_the_outbox_loads_no_sink_renderer_or_collector() -> None:
    """`import monitor.alerting.outbox` alone: no slack-sdk, no Slack code, no collector."""
    import subprocess
    import sys

    probe = (
        "import sys, monitor.alerting.outbox\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('slack_sdk', "
        "'monitor.collectors', 'monitor.alerting.slack', "
        "'monitor.alerting.sinks')))\n"
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert done.stdout.strip() == "", f"the outbox loads {done.stdout.strip()}"


def test_no_module_below_the_outbox_writes_slack_markup() -> None:
    """The work floor writes no Slack mentions or links (`<@U…>`, `<!here>`, `<url|label>`)."""
    import re

    markup = re.compile(r"""<@\{|<!(?:here|channel|subteam)|\|[^"'|]*>["']""")
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        me = parts[1] if len(parts) > 1 else "__init__"
        if FLOORS.get(me) != 3:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if markup.search(line) and '== "<!here>"' not in line:
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert not found, found
